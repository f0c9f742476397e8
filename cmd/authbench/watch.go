package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// watcher observes the server under load from the outside: the admin
// /metrics before and after a run (deltas of chosen counter families) and its
// resident memory sampled at an interval during the run, either from
// process_resident_memory_bytes on /metrics or, for the naive baseline, from
// its /debug/rss. Use begin, then run sample in one goroutine until the load
// is over, then end; sample's fields are read only after it has returned.
type watcher struct {
	client     *http.Client
	metricsURL string // empty: no admin metrics
	rssURL     string // empty: RSS comes from metricsURL
	families   []string
	interval   time.Duration

	before     []metricSample
	rssBefore  float64
	rssPeak    float64
	rssSamples int
	sampleErrs int
	lastErr    string
}

// serverStats is what the watcher saw.
type serverStats struct {
	MetricsURL     string        `json:"metrics_url,omitempty"`
	RSSURL         string        `json:"rss_url,omitempty"`
	Deltas         []metricDelta `json:"deltas,omitempty"`
	RSSBeforeBytes float64       `json:"rss_before_bytes"`
	RSSPeakBytes   float64       `json:"rss_peak_bytes"`
	RSSAfterBytes  float64       `json:"rss_after_bytes"`
	// HWMBytes is the kernel's own peak (VmHWM) when the RSS URL reports it:
	// exact, where the sampled peak can miss a short spike.
	HWMBytes     float64 `json:"hwm_bytes,omitempty"`
	RSSSamples   int     `json:"rss_samples"`
	SampleErrors int     `json:"sample_errors,omitempty"`
	LastError    string  `json:"last_error,omitempty"`
}

// begin takes the first scrape. An error here means the server's admin side
// is not reachable, and the caller stops before loading anything.
func (w *watcher) begin(ctx context.Context) error {
	rss, _, before, err := w.observe(ctx)
	if err != nil {
		return err
	}
	w.before = before
	w.rssBefore, w.rssPeak, w.rssSamples = rss, rss, 1
	return nil
}

// observe reads the RSS (and VmHWM when the RSS URL gives it) and, with an
// admin URL, the whole exposition, scraping /metrics only once.
func (w *watcher) observe(ctx context.Context) (rss, hwm float64, samples []metricSample, err error) {
	if w.metricsURL != "" {
		if samples, err = w.scrape(ctx); err != nil {
			return 0, 0, nil, err
		}
	}
	if w.rssURL != "" {
		rss, hwm, err = w.rss(ctx)
		return rss, hwm, samples, err
	}
	v, ok := findValue(samples, "process_resident_memory_bytes")
	if !ok {
		return 0, 0, nil, fmt.Errorf("scrape %s: no process_resident_memory_bytes", w.metricsURL)
	}
	return v, 0, samples, nil
}

// sample reads the RSS every interval until ctx is done, keeping the peak.
// It blocks; run it in a goroutine owned by the caller.
func (w *watcher) sample(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rss, _, _, err := w.observe(sctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.sampleErrs++
			w.lastErr = err.Error()
			continue
		}
		w.rssSamples++
		w.rssPeak = max(w.rssPeak, rss)
	}
}

// end takes the last scrape and returns what was seen.
func (w *watcher) end(ctx context.Context) (*serverStats, error) {
	st := &serverStats{MetricsURL: w.metricsURL, RSSURL: w.rssURL}
	rss, hwm, after, err := w.observe(ctx)
	if err != nil {
		return nil, err
	}
	if w.metricsURL != "" {
		st.Deltas = deltas(w.before, after, w.families)
	}
	w.rssSamples++
	w.rssPeak = max(w.rssPeak, rss, hwm)
	st.RSSBeforeBytes, st.RSSPeakBytes, st.RSSAfterBytes, st.HWMBytes = w.rssBefore, w.rssPeak, rss, hwm
	st.RSSSamples, st.SampleErrors, st.LastError = w.rssSamples, w.sampleErrs, w.lastErr
	return st, nil
}

func (w *watcher) scrape(ctx context.Context) ([]metricSample, error) {
	body, err := w.get(ctx, w.metricsURL, "text/plain;version=0.0.4")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	s, err := parseMetrics(body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", w.metricsURL, err)
	}
	return s, nil
}

// rssReport is the body of the naive server's GET /debug/rss.
type rssReport struct {
	VmRSSBytes float64 `json:"vm_rss_bytes"`
	VmHWMBytes float64 `json:"vm_hwm_bytes"`
}

// rss reads the RSS URL: the resident set size and the kernel's peak.
func (w *watcher) rss(ctx context.Context) (rss, hwm float64, err error) {
	body, err := w.get(ctx, w.rssURL, "application/json")
	if err != nil {
		return 0, 0, err
	}
	defer body.Close()
	var r rssReport
	if err := json.NewDecoder(io.LimitReader(body, 1<<16)).Decode(&r); err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", w.rssURL, err)
	}
	return r.VmRSSBytes, r.VmHWMBytes, nil
}

func (w *watcher) get(ctx context.Context, url, accept string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	req.Header.Set("Accept", accept)
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		return nil, fmt.Errorf("get %s: status %d", url, resp.StatusCode)
	}
	return resp.Body, nil
}
