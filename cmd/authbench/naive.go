package main

// The naive server is a BASELINE FOR BENCHMARKS, NOT PRODUCT CODE. It answers
// POST /v1/register and POST /v1/login with the same JSON bodies as authd but
// hashes with argon2.IDKey directly in the request goroutine, with no bound
// on how many hashes run at once, and keeps users in a map. It exists to show
// what authd's bounded hashing pool buys under overload (memory and tail
// latency). GET /debug/rss reports its own VmRSS and VmHWM so that authbench
// can sample them (-rss-url).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// naiveServer is the baseline's handler state. Its methods are safe for
// concurrent use.
type naiveServer struct {
	params argon2Params
	dummy  naiveUser // hashed against for unknown emails, as authd does

	mu    sync.RWMutex
	users map[string]naiveUser // mu guards users
}

type naiveUser struct {
	id   string
	salt []byte
	key  []byte
}

func newNaiveServer(p argon2Params) *naiveServer {
	s := &naiveServer{params: p, users: map[string]naiveUser{}}
	s.dummy = naiveUser{salt: randomBytes(16)}
	s.dummy.key = p.hash([]byte("dummy password"), s.dummy.salt)
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails
	return b
}

// handler returns the baseline's routes.
func (s *naiveServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/register", s.register)
	mux.HandleFunc("POST /v1/login", s.login)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		naiveJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /debug/rss", serveRSS)
	return mux
}

func decodeCredentials(w http.ResponseWriter, r *http.Request) (credentials, bool) {
	var c credentials
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&c); err != nil || c.Email == "" || c.Password == "" {
		naiveProblem(w, http.StatusBadRequest, "malformed_request")
		return c, false
	}
	c.Email = strings.ToLower(strings.TrimSpace(c.Email))
	return c, true
}

func (s *naiveServer) register(w http.ResponseWriter, r *http.Request) {
	c, ok := decodeCredentials(w, r)
	if !ok {
		return
	}
	s.mu.RLock()
	_, exists := s.users[c.Email]
	s.mu.RUnlock()
	if exists {
		naiveProblem(w, http.StatusConflict, "email_taken")
		return
	}
	u := naiveUser{id: hex.EncodeToString(randomBytes(16)), salt: randomBytes(16)}
	u.key = s.params.hash([]byte(c.Password), u.salt) // in the request goroutine, unbounded: the point
	s.mu.Lock()
	_, exists = s.users[c.Email]
	if !exists {
		s.users[c.Email] = u
	}
	s.mu.Unlock()
	if exists {
		naiveProblem(w, http.StatusConflict, "email_taken")
		return
	}
	naiveJSON(w, http.StatusCreated, map[string]any{"user_id": u.id, "email": c.Email, "email_verified": false})
}

func (s *naiveServer) login(w http.ResponseWriter, r *http.Request) {
	c, ok := decodeCredentials(w, r)
	if !ok {
		return
	}
	s.mu.RLock()
	u, exists := s.users[c.Email]
	s.mu.RUnlock()
	if !exists {
		u = s.dummy
	}
	key := s.params.hash([]byte(c.Password), u.salt)
	if subtle.ConstantTimeCompare(key, u.key) != 1 || !exists {
		naiveProblem(w, http.StatusUnauthorized, "invalid_credentials")
		return
	}
	// Opaque stand-ins: the baseline issues no real tokens.
	naiveJSON(w, http.StatusOK, map[string]any{
		"access_token": "naive." + hex.EncodeToString(randomBytes(16)), "token_type": "Bearer",
		"expires_in": 900, "refresh_token": hex.EncodeToString(randomBytes(32)),
	})
}

func naiveJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func naiveProblem(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "code": code})
}

// serveRSS answers {"vm_rss_bytes","vm_hwm_bytes"} from /proc/self/status.
func serveRSS(w http.ResponseWriter, _ *http.Request) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		naiveProblem(w, http.StatusNotImplemented, "internal")
		return
	}
	defer f.Close()
	r, err := parseProcStatus(f)
	if err != nil {
		naiveProblem(w, http.StatusInternalServerError, "internal")
		return
	}
	naiveJSON(w, http.StatusOK, r)
}

// parseProcStatus reads VmRSS and VmHWM (in kB) from a /proc/PID/status.
func parseProcStatus(r io.Reader) (rssReport, error) {
	var out rssReport
	var found int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *float64
		switch string(name) {
		case "VmRSS":
			dst = &out.VmRSSBytes
		case "VmHWM":
			dst = &out.VmHWMBytes
		default:
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return out, fmt.Errorf("proc status: %s: unexpected %q", name, rest)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return out, fmt.Errorf("proc status: %s: %w", name, err)
		}
		*dst = float64(kb) * 1024
		found++
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("proc status: %w", err)
	}
	if found < 2 {
		return out, errors.New("proc status: VmRSS or VmHWM missing")
	}
	return out, nil
}

// serveNaive listens on addr and serves the baseline until ctx is done, then
// shuts down within 5s. It blocks; ready, when not nil, receives the bound
// address once listening.
func serveNaive(ctx context.Context, addr string, p argon2Params, log *slog.Logger, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("naive: listen: %w", err)
	}
	srv := &http.Server{Handler: newNaiveServer(p).handler(), ReadHeaderTimeout: 5 * time.Second}
	log.Info("naive baseline listening (NOT authd: hashes in the request goroutine, unbounded)",
		"addr", ln.Addr().String(), "memory_kib", p.memoryKiB, "iterations", p.iterations, "parallelism", p.parallelism)
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("naive: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("naive: shutdown: %w", err)
	}
	log.Info("naive baseline stopped")
	return nil
}

func naiveCommand(_ *environment) *command {
	fs := flag.NewFlagSet("naive", flag.ContinueOnError)
	var p argon2Params
	p.bind(fs)
	addr := fs.String("addr", "127.0.0.1:8181", "listen address (loopback only)")
	c := &command{name: "naive", flags: fs, summary: "run a deliberately naive baseline server (unbounded argon2 in the request goroutine; GET /debug/rss) until interrupted"}
	c.exec = func(ctx context.Context, _, stderr io.Writer) error {
		if err := p.check(); err != nil {
			return err
		}
		if err := checkLoopbackAddr(*addr); err != nil {
			return usagef("-addr: %v", err)
		}
		return serveNaive(ctx, *addr, p, slog.New(slog.NewTextHandler(stderr, nil)), nil)
	}
	return c
}
