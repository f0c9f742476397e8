package limiter_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/clientip"
	"github.com/authd/authd/internal/limiter"
)

// ExampleMiddleware puts a per-client limit of 2 requests at once, refilled
// at 1 per second, in front of a handler. In authd, l.Run is one of the
// parts run starts, and the API's problem+json writer is reject.
func ExampleMiddleware() {
	l, err := limiter.NewLocal(limiter.Params{RPS: 1, Burst: 2}, time.Now, prometheus.NewRegistry())
	if err != nil {
		panic(err)
	}
	resolver := clientip.NewResolver(nil) // no trusted proxies
	login := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	h := limiter.Middleware(l, resolver.Key, nil)(login)

	for range 3 {
		r := httptest.NewRequest(http.MethodPost, "/v1/login", nil)
		r.RemoteAddr = "198.51.100.7:40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Printf("%d remaining=%s retry-after=%s\n", w.Code, w.Header().Get("RateLimit-Remaining"), w.Header().Get("Retry-After"))
	}
	// Output:
	// 200 remaining=1 retry-after=
	// 200 remaining=0 retry-after=
	// 429 remaining=0 retry-after=1
}
