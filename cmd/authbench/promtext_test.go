package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	const exposition = `# HELP authd_hash_jobs_total Hash jobs by outcome.
# TYPE authd_hash_jobs_total counter
authd_hash_jobs_total{outcome="cancelled"} 0
authd_hash_jobs_total{outcome="done"} 1234
authd_hash_jobs_total{outcome="rejected"} 5.5e+03

process_resident_memory_bytes 4.5678592e+07
odd_labels{b="x\"y",a="back\\slash\nnl",} 1 1700000000000
spaced { a = "1" }	+Inf
histo_bucket{le="+Inf"} NaN
`
	got, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		key   string
		value float64
	}{
		{`authd_hash_jobs_total{outcome="cancelled"}`, 0},
		{`authd_hash_jobs_total{outcome="done"}`, 1234},
		{`authd_hash_jobs_total{outcome="rejected"}`, 5500},
		{`process_resident_memory_bytes`, 45678592},
		{`odd_labels{a="back\\slash\nnl",b="x\"y"}`, 1},
		{`spaced{a="1"}`, math.Inf(1)},
		{`histo_bucket{le="+Inf"}`, math.NaN()},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d samples, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if k := got[i].key(); k != w.key {
			t.Errorf("sample %d key = %s, want %s", i, k, w.key)
		}
		if v := got[i].Value; v != w.value && !(math.IsNaN(v) && math.IsNaN(w.value)) {
			t.Errorf("sample %d value = %v, want %v", i, v, w.value)
		}
	}
	if got[4].Labels["a"] != "back\\slash\nnl" || got[4].Labels["b"] != `x"y` {
		t.Errorf("escapes: %q", got[4].Labels)
	}
}

func TestParseMetricsRejectsMalformed(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		`{a="b"} 1`,
		`9name 1`,
		`name`,
		`name{} `,
		`name{a="b"}1`,
		`name{a="b" 1`,
		`name{a="b} 1`,
		`name{a=b} 1`,
		`name{a="\q"} 1`,
		`name{a="1",a="2"} 1`,
		`name{:a="1"} 1`,
		`name one`,
		`name 1 notatime`,
		`name 1 2 3`,
	} {
		t.Run(line, func(t *testing.T) {
			t.Parallel()
			if s, err := parseMetrics(strings.NewReader("ok 1\n" + line + "\n")); err == nil {
				t.Fatalf("accepted %q as %+v", line, s)
			} else if !strings.Contains(err.Error(), "line 2") {
				t.Fatalf("error %q does not name line 2", err)
			}
		})
	}
}

func TestDeltas(t *testing.T) {
	t.Parallel()
	parse := func(s string) []metricSample {
		t.Helper()
		out, err := parseMetrics(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := parse(`authd_logins_total{outcome="success"} 10
authd_logins_total{outcome="invalid"} 2
authd_hash_queue_wait_seconds_count 7
authd_hash_queue_wait_seconds_bucket{le="1"} 7
other_total 100
`)
	after := parse(`authd_logins_total{outcome="success"} 25
authd_logins_total{outcome="invalid"} 2
authd_logins_total{outcome="overloaded"} 4
authd_hash_queue_wait_seconds_count 9
authd_hash_queue_wait_seconds_bucket{le="1"} 9
other_total 200
`)
	got := deltas(before, after, []string{"authd_logins_total", "authd_hash_queue_wait_seconds"})
	want := []metricDelta{
		{`authd_hash_queue_wait_seconds_count`, 7, 9, 2},
		{`authd_logins_total{outcome="invalid"}`, 2, 2, 0},
		{`authd_logins_total{outcome="overloaded"}`, 0, 4, 4},
		{`authd_logins_total{outcome="success"}`, 10, 25, 15},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("delta %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add("a 1\n")
	f.Add(`a{b="c",d="e\"\\\n"} -Inf 123` + "\n# c\n\n")
	f.Add(`x{y="` + "\xff" + `"} 1`)
	f.Fuzz(func(t *testing.T, in string) {
		samples, err := parseMetrics(strings.NewReader(in))
		if err != nil {
			return
		}
		// Whatever parses must survive its own rendering.
		for _, s := range samples {
			again, err := parseSampleLine(s.key() + " 1")
			if err != nil {
				t.Fatalf("re-parse of %q: %v", s.key(), err)
			}
			if again.key() != s.key() {
				t.Fatalf("round trip %q -> %q", s.key(), again.key())
			}
		}
	})
}
