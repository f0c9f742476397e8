package main

import (
	"log/slog"
	"time"

	"github.com/authd/authd/internal/httpapi"
)

// drain is the first step of a shutdown that load balancers can follow
// (Kubernetes' preStop pattern): from now on /readyz answers 503 and every
// response carries Connection: close, while the listeners still accept and
// serve. It returns after delay (AUTHD_SHUTDOWN_DRAIN_DELAY); then the
// listeners close, within AUTHD_SHUTDOWN_TIMEOUT.
func drain(delay time.Duration, ready *httpapi.Readiness, logger *slog.Logger) {
	ready.Drain()
	if delay <= 0 {
		return
	}
	logger.Info("draining: /readyz answers 503, requests are still served", "delay", delay.String())
	t := time.NewTimer(delay)
	defer t.Stop()
	<-t.C
}
