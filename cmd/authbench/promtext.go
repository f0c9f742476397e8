package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// A small parser for the Prometheus text exposition format (version 0.0.4),
// enough to read counters and gauges off authd's admin /metrics. It is used
// instead of github.com/prometheus/common/expfmt because that module is not
// required by go.mod (only reachable through client_golang's graph), and
// pulling it in would add it and its protobuf dependencies to go.mod and go.sum.

// metricSample is one line of an exposition: a series and its value.
type metricSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// key returns the series identity: the name and its labels in sorted order,
// as Prometheus prints them.
func (s metricSample) key() string {
	return s.Name + formatLabels(s.Labels)
}

// formatLabels renders labels as {a="x",b="y"} in sorted order, "" if none.
func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(labels[n]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// parseMetrics reads a text exposition and returns its samples in order.
// Comments (# HELP, # TYPE) and blank lines are skipped; a malformed line is
// an error naming its line number. It reads r to the end or the first error.
func parseMetrics(r io.Reader) ([]metricSample, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var out []metricSample
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSampleLine(line)
		if err != nil {
			return out, fmt.Errorf("metrics line %d: %w", n, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("metrics: read: %w", err)
	}
	return out, nil
}

var errMalformed = errors.New("malformed sample")

// parseSampleLine parses `name{label="value",...} value [timestamp]`.
func parseSampleLine(line string) (metricSample, error) {
	i := 0
	for i < len(line) && isNameChar(line[i], i == 0) {
		i++
	}
	if i == 0 {
		return metricSample{}, fmt.Errorf("%w: no metric name", errMalformed)
	}
	s := metricSample{Name: line[:i]}
	rest := line[i:]
	if trimmed := strings.TrimLeft(rest, " \t"); strings.HasPrefix(trimmed, "{") {
		rest = trimmed
		labels, n, err := parseLabels(rest)
		if err != nil {
			return metricSample{}, err
		}
		s.Labels = labels
		rest = rest[n:]
	}
	if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return metricSample{}, fmt.Errorf("%w: no value after %q", errMalformed, s.Name)
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return metricSample{}, fmt.Errorf("%w: want value [timestamp], got %d fields", errMalformed, len(fields))
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return metricSample{}, fmt.Errorf("%w: value %q", errMalformed, fields[0])
	}
	s.Value = v
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return metricSample{}, fmt.Errorf("%w: timestamp %q", errMalformed, fields[1])
		}
	}
	return s, nil
}

// parseLabels parses a {...} label set at the start of s and returns the
// labels and the number of bytes consumed.
func parseLabels(s string) (map[string]string, int, error) {
	labels := map[string]string{}
	i := 1 // past '{'
	for {
		i = skipBlanks(s, i)
		if i < len(s) && s[i] == '}' {
			return labels, i + 1, nil
		}
		j := i
		for j < len(s) && isNameChar(s[j], j == i) && s[j] != ':' {
			j++
		}
		if j == i {
			return nil, 0, fmt.Errorf("%w: bad label name", errMalformed)
		}
		name := s[i:j]
		j = skipBlanks(s, j)
		if j >= len(s) || s[j] != '=' {
			return nil, 0, fmt.Errorf("%w: label %q: want =", errMalformed, name)
		}
		j = skipBlanks(s, j+1)
		if j >= len(s) || s[j] != '"' {
			return nil, 0, fmt.Errorf("%w: label %q: want a quoted value", errMalformed, name)
		}
		var b strings.Builder
		k := j + 1
		for ; k < len(s) && s[k] != '"'; k++ {
			if s[k] != '\\' {
				b.WriteByte(s[k])
				continue
			}
			k++
			if k >= len(s) {
				break
			}
			switch s[k] {
			case 'n':
				b.WriteByte('\n')
			case '\\', '"':
				b.WriteByte(s[k])
			default:
				return nil, 0, fmt.Errorf("%w: label %q: bad escape", errMalformed, name)
			}
		}
		if k >= len(s) {
			return nil, 0, fmt.Errorf("%w: label %q: unterminated value", errMalformed, name)
		}
		if _, dup := labels[name]; dup {
			return nil, 0, fmt.Errorf("%w: duplicate label %q", errMalformed, name)
		}
		labels[name] = b.String()
		i = skipBlanks(s, k+1)
		if i < len(s) && s[i] == ',' {
			i++
			continue
		}
		if i < len(s) && s[i] == '}' {
			return labels, i + 1, nil
		}
		return nil, 0, fmt.Errorf("%w: label set not closed", errMalformed)
	}
}

func skipBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isNameChar(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

// metricDelta is the change of one series between two scrapes.
type metricDelta struct {
	Series string  `json:"series"`
	Before float64 `json:"before"`
	After  float64 `json:"after"`
	Delta  float64 `json:"delta"`
}

// familyMatches reports whether a sample belongs to one of the families: the
// exact name, or the _count and _sum of a histogram or summary.
func familyMatches(name string, families []string) bool {
	for _, f := range families {
		if name == f || name == f+"_count" || name == f+"_sum" {
			return true
		}
	}
	return false
}

// deltas returns, for every series of the families present in after, its
// value before (0 when absent then), after, and the difference, ordered by
// series.
func deltas(before, after []metricSample, families []string) []metricDelta {
	prev := map[string]float64{}
	for _, s := range before {
		if familyMatches(s.Name, families) {
			prev[s.key()] = s.Value
		}
	}
	var out []metricDelta
	for _, s := range after {
		if !familyMatches(s.Name, families) {
			continue
		}
		k := s.key()
		out = append(out, metricDelta{Series: k, Before: prev[k], After: s.Value, Delta: s.Value - prev[k]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Series < out[j].Series })
	return out
}

// findValue returns the value of the first sample named name.
func findValue(samples []metricSample, name string) (float64, bool) {
	for _, s := range samples {
		if s.Name == name {
			return s.Value, true
		}
	}
	return 0, false
}
