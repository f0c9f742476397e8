package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestShutdownDrainDelay: on SIGTERM, /readyz answers 503 for the drain
// delay while requests are still served, each answer closing its keep-alive
// connection; clients that loop POSTs on keep-alive connections until a
// load balancer would have followed /readyz see no connection error, and
// run returns within the delay plus the shutdown budget.
func TestShutdownDrainDelay(t *testing.T) {
	t.Parallel()
	const (
		delay = 2 * time.Second
		// reaction is how long after /readyz turned 503 the clients keep
		// sending, as a load balancer's probe interval would.
		reaction = 700 * time.Millisecond
	)
	in := start(t, map[string]string{"AUTHD_SHUTDOWN_DRAIN_DELAY": delay.String(), "AUTHD_SHUTDOWN_TIMEOUT": "5s"})

	var (
		stopClients = make(chan struct{})
		draining    atomic.Bool // set once /readyz has answered 503
		answered    atomic.Int64
		wg          sync.WaitGroup
		mu          sync.Mutex
		failures    []string
		served      [4]struct{ before, during, closed int }
	)
	for i := range served {
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		t.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stopClients:
					return
				default:
				}
				// A POST: net/http never retries it on a connection the
				// server closed, so a cut request shows as an error.
				during := draining.Load()
				resp, err := hc.Post(in.base+"/v1/introspect", "application/json", strings.NewReader(`{"token":"x"}`))
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("client %d request %d (draining %v): %v", i, n, during, err))
					mu.Unlock()
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered.Add(1)
				if resp.StatusCode != http.StatusUnauthorized {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("client %d request %d: %d, want 401", i, n, resp.StatusCode))
					mu.Unlock()
				}
				if during {
					served[i].during++
					if resp.Close {
						served[i].closed++
					}
				} else {
					served[i].before++
				}
			}
		})
	}
	// Let every client have its keep-alive connection, then SIGTERM.
	for answered.Load() < int64(4*len(served)) {
		time.Sleep(10 * time.Millisecond)
	}
	term := time.Now()
	in.cancel()
	in.cancel = nil

	// A load balancer's probe, on a fresh connection each time.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var seen time.Duration
	for seen == 0 {
		resp, err := probe.Get(in.base + "/readyz")
		if err != nil {
			t.Errorf("/readyz %v after SIGTERM: %v (the listener closed before the drain delay)", time.Since(term).Round(time.Millisecond), err)
			break
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), `"shutdown":"draining"`):
			seen = time.Since(term)
			draining.Store(true)
		case resp.StatusCode != http.StatusOK:
			t.Errorf("/readyz during the drain = %d %s", resp.StatusCode, b)
		}
		if time.Since(term) > delay {
			t.Errorf("/readyz did not turn 503 within the drain delay")
			break
		}
	}
	// The balancer follows: the clients stop (and the test looks at /readyz
	// once more) reaction after the 503, yet inside the drain delay on a slow
	// machine too.
	stopAt := min(seen+reaction, delay-300*time.Millisecond)
	time.Sleep(time.Until(term.Add(stopAt)))
	if resp, err := probe.Get(in.base + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz %v after SIGTERM = %v %v, want 503 for the whole drain delay %v", time.Since(term).Round(time.Millisecond), resp, err, delay)
	} else {
		resp.Body.Close()
	}
	close(stopClients)
	wg.Wait()

	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("run returned %v", err)
		}
		if took := time.Since(term); took < delay || took > delay+5*time.Second {
			t.Errorf("run returned %v after SIGTERM, want between the drain delay %v and it plus the 5 s budget", took.Round(time.Millisecond), delay)
		}
	case <-time.After(delay + 10*time.Second):
		t.Fatalf("run did not return\nlogs:\n%s", in.logs)
	}
	for _, f := range failures {
		t.Error(f)
	}
	for i, s := range served {
		if s.during == 0 || s.closed != s.during {
			t.Errorf("client %d: %d answers before the drain, %d during it of which %d with Connection: close; want some during, all closing", i, s.before, s.during, s.closed)
		}
	}
	t.Logf("/readyz 503 %v after SIGTERM; answers per client before/during the drain: %v", seen.Round(time.Millisecond), served)
}
