package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the outcome of one load run, as printed in text or JSON.
type report struct {
	Name        string  `json:"name"`
	Method      string  `json:"method"`
	URL         string  `json:"url"`
	Concurrency int     `json:"concurrency"`
	Duration    float64 `json:"duration_seconds"`
	Timeout     float64 `json:"timeout_seconds,omitempty"`
	Elapsed     float64 `json:"elapsed_seconds"`
	Interrupted bool    `json:"interrupted,omitempty"`

	Seed *seedReport `json:"seed,omitempty"`

	Sent      int64 `json:"sent"`
	Completed int64 `json:"completed"`
	// InWindow are the answers that arrived within -duration: the
	// throughput's numerator.
	InWindow int64 `json:"completed_in_window"`
	// Aborted requests were still in flight when the run was cut (after the
	// grace period, or on interrupt); they are neither answers nor errors.
	Aborted      int64         `json:"aborted"`
	ClientErrors clientErrors  `json:"client_errors"`
	Throughput   float64       `json:"throughput_rps"`
	Latency      latencyStats  `json:"latency"`
	ByStatus     []statusStats `json:"by_status"`
	// RetryAfter lists the Retry-After values the server sent, with counts.
	RetryAfter []retryAfterCount `json:"retry_after"`

	// RetryMode is -retry-after: "ignore" or "honour".
	RetryMode string `json:"retry_after_mode"`
	// Pauses are the Retry-After sleeps of honouring workers, PausedMean
	// their mean planned length in seconds (a sleep is cut by the run's end).
	Pauses     int64   `json:"retry_after_pauses,omitempty"`
	PausedMean float64 `json:"retry_after_pause_mean_seconds,omitempty"`
	// ClientCPU is the CPU time authbench itself used during the run (user
	// + system, all its goroutines), ClientCores the same per second of it.
	ClientCPU   float64 `json:"client_cpu_seconds,omitempty"`
	ClientCores float64 `json:"client_cores,omitempty"`

	Server *serverStats `json:"server,omitempty"`
	// Capacity is set by login -capacity: the machine's raw Argon2id rate
	// measured in the same invocation, and the run's share of it.
	Capacity *saturation `json:"saturation,omitempty"`
}

// saturation relates the answers that each cost the server one hash (login
// 200 and 401, register 201) to the raw capacity of the machine.
type saturation struct {
	Capacity    capacityReport `json:"capacity"`
	HashedCodes []string       `json:"hashed_codes"`
	HashedRate  float64        `json:"hashed_rps"`
	Ratio       float64        `json:"ratio"`
	// CapacityAfter is measured after the load (-capacity-after), and
	// RatioMean relates the hashed rate to the mean of both capacities.
	CapacityAfter *capacityReport `json:"capacity_after,omitempty"`
	RatioMean     float64         `json:"ratio_mean,omitempty"`
}

// after adds the capacity measured after the load.
func (s *saturation) after(c capacityReport) {
	s.CapacityAfter = &c
	if mean := (s.Capacity.PerSecond + c.PerSecond) / 2; mean > 0 {
		s.RatioMean = s.HashedRate / mean
	}
}

// newSaturation computes the ratio from a report's per-status rates.
func newSaturation(r *report, c capacityReport) *saturation {
	s := &saturation{Capacity: c, HashedCodes: []string{"200", "201", "401"}}
	for _, st := range r.ByStatus {
		if st.Code == 200 || st.Code == 201 || st.Code == 401 {
			s.HashedRate += st.Rate
		}
	}
	if c.PerSecond > 0 {
		s.Ratio = s.HashedRate / c.PerSecond
	}
	return s
}

// latencyStats are in milliseconds.
type latencyStats struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

type statusStats struct {
	Code int `json:"code"`
	// Rate is answers with this code per second of the window.
	Rate float64 `json:"rate_rps"`
	latencyStats
}

type clientErrors struct {
	Total      int64             `json:"total"`
	Timeout    int64             `json:"timeout"`
	Connection int64             `json:"connection"`
	Other      int64             `json:"other"`
	Examples   map[string]string `json:"examples,omitempty"`
}

type retryAfterCount struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func statsOf(h *histogram) latencyStats {
	return latencyStats{
		Count: h.n, Mean: ms(h.mean()),
		P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)), P99: ms(h.quantile(0.99)), Max: ms(h.max),
	}
}

// retryAfterCounts orders Retry-After values numerically where they are
// numbers, then the rest (HTTP dates) as text.
func retryAfterCounts(m map[string]int64) []retryAfterCount {
	out := make([]retryAfterCount, 0, len(m))
	for v, n := range m {
		out = append(out, retryAfterCount{Value: v, Count: n})
	}
	slices.SortFunc(out, func(a, b retryAfterCount) int {
		x, errA := strconv.Atoi(a.Value)
		y, errB := strconv.Atoi(b.Value)
		switch {
		case errA == nil && errB == nil:
			return x - y
		case errA == nil:
			return -1
		case errB == nil:
			return 1
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}

// newReport turns a merged result into a report.
func newReport(name, method, url string, l *load, r *result) *report {
	rep := &report{
		Name: name, Method: method, URL: url, Concurrency: l.concurrency,
		Duration: l.duration.Seconds(), Timeout: l.timeout.Seconds(), Elapsed: r.elapsed.Seconds(),
		Sent: r.sent, Completed: r.completed, InWindow: r.inWindow, Aborted: r.aborted,
		Throughput: r.throughput(), Latency: statsOf(r.all),
		RetryAfter: retryAfterCounts(r.retryAfter),
		RetryMode:  retryIgnore, Pauses: r.pauses,
	}
	if l.retry.honour {
		rep.RetryMode = retryHonour
	}
	if r.pauses > 0 {
		rep.PausedMean = (r.paused / time.Duration(r.pauses)).Seconds()
	}
	codes := make([]int, 0, len(r.byCode))
	for c := range r.byCode {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		rep.ByStatus = append(rep.ByStatus, statusStats{Code: c, Rate: r.rate(r.windowBy[c]), latencyStats: statsOf(r.byCode[c])})
	}
	ce := clientErrors{Timeout: r.errs[errTimeout], Connection: r.errs[errConnection], Other: r.errs[errOther]}
	ce.Total = ce.Timeout + ce.Connection + ce.Other
	for k := range numErrKinds {
		if r.errExample[k] != "" {
			if ce.Examples == nil {
				ce.Examples = map[string]string{}
			}
			ce.Examples[k.String()] = r.errExample[k]
		}
	}
	rep.ClientErrors = ce
	return rep
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// writeText prints a report for a person.
func writeText(w io.Writer, r *report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s: %s %s  concurrency=%d duration=%s", r.Name, r.Method, r.URL, r.Concurrency, secs(r.Duration))
	if r.Timeout > 0 {
		fmt.Fprintf(&b, " timeout=%s", secs(r.Timeout))
	}
	b.WriteString("\n")
	if r.Interrupted {
		b.WriteString("   (interrupted: partial results)\n")
	}
	if s := r.Seed; s != nil {
		fmt.Fprintf(&b, "seed        %d users: %d created, %d existed, %d retries in %.1fs",
			s.Users, s.Created, s.Existed, s.Retries, s.Elapsed)
		if s.TimedOut {
			b.WriteString(" (seed timeout: fewer users than asked)")
		}
		if len(s.RetryAfter) > 0 {
			fmt.Fprintf(&b, "; Retry-After %s", formatRetryAfter(s.RetryAfter))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "requests    sent %d, completed %d, client errors %d (timeout %d, connection %d, other %d), aborted at end %d\n",
		r.Sent, r.Completed, r.ClientErrors.Total, r.ClientErrors.Timeout, r.ClientErrors.Connection, r.ClientErrors.Other, r.Aborted)
	for _, k := range []string{"timeout", "connection", "other"} {
		if ex, ok := r.ClientErrors.Examples[k]; ok {
			fmt.Fprintf(&b, "            first %s error: %s\n", k, ex)
		}
	}
	if r.RetryMode == retryHonour {
		fmt.Fprintf(&b, "clients     honour Retry-After: %d pauses, mean %.2fs\n", r.Pauses, r.PausedMean)
	} else {
		b.WriteString("clients     ignore Retry-After: the next request goes at once\n")
	}
	fmt.Fprintf(&b, "throughput  %.1f req/s (answers within the %s window; elapsed %.2fs)\n",
		r.Throughput, secs(min(r.Duration, r.Elapsed)), r.Elapsed)
	if r.ClientCPU > 0 {
		fmt.Fprintf(&b, "client CPU  %.2fs = %.2f cores (authbench itself, all its workers)\n", r.ClientCPU, r.ClientCores)
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "status\tcount\tshare\treq/s\tmean\tp50\tp90\tp99\tmax\t")
	row := func(name string, rate float64, s latencyStats) {
		share := 0.0
		if r.Completed > 0 {
			share = 100 * float64(s.Count) / float64(r.Completed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%.1f\t%s\t%s\t%s\t%s\t%s\t\n", name, s.Count, share, rate,
			fmtMS(s.Mean), fmtMS(s.P50), fmtMS(s.P90), fmtMS(s.P99), fmtMS(s.Max))
	}
	row("all", r.Throughput, r.Latency)
	for _, s := range r.ByStatus {
		row(strconv.Itoa(s.Code), s.Rate, s.latencyStats)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	b.Reset()
	if len(r.RetryAfter) > 0 {
		fmt.Fprintf(&b, "\nRetry-After seen (value: count)  %s\n", formatRetryAfter(r.RetryAfter))
	} else {
		b.WriteString("\nRetry-After seen: none\n")
	}
	if s := r.Server; s != nil {
		writeServerText(&b, s)
	}
	if c := r.Capacity; c != nil {
		fmt.Fprintf(&b, "\nsaturation  hashed answers (%s) %.1f/s / raw Argon2id capacity %.1f hashes/s = %.3f\n",
			strings.Join(c.HashedCodes, "+"), c.HashedRate, c.Capacity.PerSecond, c.Ratio)
		fmt.Fprintf(&b, "            capacity: m=%d KiB t=%d p=%d, %d goroutines, %d hashes in %.2fs, mean %.1f ms\n",
			c.Capacity.MemoryKiB, c.Capacity.Iterations, c.Capacity.Parallelism, c.Capacity.Goroutines,
			c.Capacity.Hashes, c.Capacity.Elapsed, c.Capacity.MeanMS)
		if a := c.CapacityAfter; a != nil {
			fmt.Fprintf(&b, "            capacity after the load: %.1f hashes/s (%d hashes in %.2fs, mean %.1f ms); against the mean of both, %.1f/s / %.1f/s = %.3f\n",
				a.PerSecond, a.Hashes, a.Elapsed, a.MeanMS, c.HashedRate, (c.Capacity.PerSecond+a.PerSecond)/2, c.RatioMean)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeServerText(b *strings.Builder, s *serverStats) {
	src := s.MetricsURL
	if s.RSSURL != "" {
		src = s.RSSURL
	}
	fmt.Fprintf(b, "\nserver (%s)\n", src)
	if len(s.Deltas) > 0 {
		width := 0
		for _, d := range s.Deltas {
			width = max(width, len(d.Series))
		}
		for _, d := range s.Deltas {
			fmt.Fprintf(b, "  %-*s  %+.6g  (%.6g -> %.6g)\n", width, d.Series, d.Delta, d.Before, d.After)
		}
	} else if s.MetricsURL != "" {
		b.WriteString("  no series of the chosen -metrics families\n")
	}
	fmt.Fprintf(b, "  resident memory: before %s, peak %s (%d samples), after %s",
		mib(s.RSSBeforeBytes), mib(s.RSSPeakBytes), s.RSSSamples, mib(s.RSSAfterBytes))
	if s.HWMBytes > 0 {
		fmt.Fprintf(b, ", kernel high-water mark (VmHWM) %s", mib(s.HWMBytes))
	}
	b.WriteString("\n")
	if s.SampleErrors > 0 {
		fmt.Fprintf(b, "  %d RSS samples failed, last: %s\n", s.SampleErrors, s.LastError)
	}
}

func formatRetryAfter(rs []retryAfterCount) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		v := r.Value
		if _, err := strconv.Atoi(v); err == nil {
			v += "s"
		}
		parts[i] = fmt.Sprintf("%s: %d", v, r.Count)
	}
	return strings.Join(parts, ", ")
}

func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 100:
		return fmt.Sprintf("%.2fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}
