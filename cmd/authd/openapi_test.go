package main

// The OpenAPI conformance test: the real program, on SQLite with in-process
// state and on PostgreSQL with Redis, driven through a realistic flow; every
// request it makes and every answer it gets is validated against
// docs/openapi.yaml (the embedded copy, the one GET /openapi.yaml serves),
// and any status, header or body member the file does not document fails it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/authd/authd/docs"
	"github.com/authd/authd/internal/redis/redistest"
)

func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	// A small bucket that never refills within the test, so that the flow
	// can end on the bucket's own 429.
	limits := map[string]string{"AUTHD_RATE_LIMIT_RPS": "0.001", "AUTHD_RATE_LIMIT_BURST": "40"}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		conformanceFlow(t, start(t, limits))
	})
	t.Run("postgres+redis", func(t *testing.T) {
		t.Parallel()
		env := clusterEnv(t, redistest.URL(t))
		for k, v := range limits {
			env[k] = v
		}
		conformanceFlow(t, start(t, env))
	})
}

func conformanceFlow(t *testing.T, in *instance) {
	c := newConformance(t, in.base)
	const (
		email = "ada@example.com"
		pass  = goodPassword
	)
	creds := func(email, pw string) string { return `{"email":"` + email + `","password":"` + pw + `"}` }

	// Health, discovery and the spec itself.
	c.call(t, "GET", "/healthz", "", "", "", 200, true)
	c.call(t, "HEAD", "/healthz", "", "", "", 200, true)
	c.call(t, "GET", "/readyz", "", "", "", 200, true)
	c.call(t, "HEAD", "/readyz", "", "", "", 200, true)
	if r := c.call(t, "GET", "/openapi.yaml", "", "", "", 200, true); string(r.body) != docs.OpenAPI {
		t.Errorf("GET /openapi.yaml is not docs/openapi.yaml")
	}
	c.call(t, "GET", "/.well-known/jwks.json", "", "", "", 200, true)
	d := c.call(t, "GET", "/.well-known/openid-configuration", "", "", "", 200, true).json(t)
	for k, v := range d {
		// Every link of the discovery document is a path of the OpenAPI one.
		if u, ok := v.(string); ok && k != "issuer" {
			if p, ok := strings.CutPrefix(u, d["issuer"].(string)); !ok || c.doc.Paths.Find(p) == nil {
				t.Errorf("discovery %s = %q: not a path of docs/openapi.yaml", k, u)
			}
		}
	}

	// Register: created, conflict, invalid fields, wrong type, too large, malformed.
	c.call(t, "POST", "/v1/register", "application/json", creds(email, pass), "", 201, true)
	c.call(t, "POST", "/v1/register", "application/json", creds("Ada@Example.com", pass), "", 409, true)
	c.call(t, "POST", "/v1/register", "application/json", creds("not-an-email", "short"), "", 400, true)
	c.call(t, "POST", "/v1/register", "text/plain", creds("bob@example.com", pass), "", 415, false)
	c.call(t, "POST", "/v1/register", "application/json", `{"email":"`+strings.Repeat("x", 70<<10)+`"}`, "", 413, false)
	c.call(t, "POST", "/v1/register", "text/plain", strings.Repeat("x", 70<<10), "", 413, false)
	c.call(t, "POST", "/v1/register", "application/json", `{"email":"bob@example.com","password":"`+pass+`","admin":true}`, "", 400, false)

	// Login: success, wrong password, unknown field, then the account throttle.
	var pair struct{ AccessToken, RefreshToken string }
	r := c.call(t, "POST", "/v1/login", "application/json", creds(email, pass), "", 200, true)
	pair.AccessToken, pair.RefreshToken = r.json(t)["access_token"].(string), r.json(t)["refresh_token"].(string)
	c.call(t, "POST", "/v1/login", "application/json", creds(email, "not the password"), "", 401, true)
	c.call(t, "POST", "/v1/login", "application/json", creds("", ""), "", 400, false)
	throttled := false
	for range 10 {
		r := c.call(t, "POST", "/v1/login", "application/json", creds("victim@example.com", "a wrong guess here"), "", 0, true)
		if r.code == 429 {
			throttled = true
			break
		}
	}
	if !throttled {
		t.Error("the account throttle never answered 429")
	}

	// Refresh, reuse of the spent token, bad input.
	r = c.call(t, "POST", "/v1/token/refresh", "application/json", `{"refresh_token":"`+pair.RefreshToken+`"}`, "", 200, true)
	second := r.json(t)
	c.call(t, "POST", "/v1/token/refresh", "application/json", `{"refresh_token":"`+pair.RefreshToken+`"}`, "", 401, true)
	c.call(t, "POST", "/v1/token/refresh", "application/json", `{"refresh_token":"`+second["refresh_token"].(string)+`"}`, "", 401, true)
	c.call(t, "POST", "/v1/token/refresh", "application/json", `{"refresh_token":""}`, "", 400, false)

	// Bearer routes with a fresh session.
	r = c.call(t, "POST", "/v1/login", "application/json", creds(email, pass), "", 200, true)
	access := r.json(t)["access_token"].(string)

	// Email verification: a token verifies once; resends up to the limit.
	userID := c.call(t, "GET", "/v1/me", "", "", access, 200, true).json(t)["user_id"].(string)
	tok := plantVerification(t, in, userID)
	c.call(t, "POST", "/v1/email/verify", "application/json", `{"token":"`+tok+`"}`, "", 204, true)
	c.call(t, "POST", "/v1/email/verify", "application/json", `{"token":"`+tok+`"}`, "", 400, true)
	c.call(t, "POST", "/v1/email/verify", "application/json", `{"token":""}`, "", 400, false)
	c.call(t, "POST", "/v1/email/resend", "", "", access, 202, true) // verified: nothing to send
	c.call(t, "POST", "/v1/register", "application/json", creds("eve@example.com", pass), "", 201, true)
	eve := c.call(t, "POST", "/v1/login", "application/json", creds("eve@example.com", pass), "", 200, true).json(t)["access_token"].(string)
	for range 5 {
		c.call(t, "POST", "/v1/email/resend", "", "", eve, 202, true)
	}
	c.call(t, "POST", "/v1/email/resend", "", "", eve, 429, true)
	c.call(t, "POST", "/v1/email/resend", "", "", "", 401, false)
	c.call(t, "GET", "/v1/me", "", "", access, 200, true)
	c.call(t, "GET", "/v1/me", "", "", "", 401, false)
	c.call(t, "GET", "/v1/me", "", "", "garbage", 401, true)
	c.call(t, "POST", "/v1/introspect", "application/json", `{"token":"`+access+`"}`, access, 200, true)
	c.call(t, "POST", "/v1/introspect", "application/json", `{"token":"nonsense"}`, access, 200, true)
	c.call(t, "POST", "/v1/introspect", "text/plain", `token=x`, access, 415, false)
	c.call(t, "POST", "/v1/logout", "", "", access, 204, true)
	c.call(t, "GET", "/v1/me", "", "", access, 401, true)
	r = c.call(t, "POST", "/v1/login", "application/json", creds(email, pass), "", 200, true)
	access = r.json(t)["access_token"].(string)
	c.call(t, "POST", "/v1/logout", "application/json", `{"all":true}`, access, 204, true)
	c.call(t, "POST", "/v1/introspect", "application/json", `{"token":"`+access+`"}`, access, 401, true)

	// Password forgot (the same 202 for an unknown address), reset with a
	// token that is not one, change: wrong current password, then done;
	// last, a reset with a good token.
	c.call(t, "POST", "/v1/password/forgot", "application/json", `{"email":"`+email+`"}`, "", 202, true)
	c.call(t, "POST", "/v1/password/forgot", "application/json", `{"email":"nobody@example.com"}`, "", 202, true)
	c.call(t, "POST", "/v1/password/forgot", "application/json", `{"email":"nobody@"}`, "", 400, true)
	c.call(t, "POST", "/v1/password/reset", "application/json", `{"token":"not-a-token","password":"a brand new passphrase"}`, "", 400, true)
	r = c.call(t, "POST", "/v1/login", "application/json", creds(email, pass), "", 200, true)
	access = r.json(t)["access_token"].(string)
	change := func(current string) string {
		return `{"current_password":"` + current + `","new_password":"a brand new passphrase"}`
	}
	c.call(t, "POST", "/v1/password/change", "application/json", change("not the password"), access, 400, true)
	c.call(t, "POST", "/v1/password/change", "application/json", change(pass), access, 204, true)
	reset := plantReset(t, in, userID)
	c.call(t, "POST", "/v1/password/reset", "application/json", `{"token":"`+reset+`","password":"yet another passphrase"}`, "", 204, true)

	// Anywhere: unknown path, wrong method, oversized head.
	c.call(t, "GET", "/v1/nothing", "", "", "", 404, false)
	c.call(t, "DELETE", "/v1/login", "", "", "", 405, false)
	c.call(t, "PUT", "/healthz", "", "", "", 405, false)
	c.callHeader(t, "GET", "/healthz", http.Header{"X-Padding": {strings.Repeat("p", 24<<10)}}, 431)
	c.callHeader(t, "GET", "/healthz", http.Header{"X-Padding": {strings.Repeat("p", 100<<10)}}, 431)

	// Last, the client's bucket runs dry: its own 429.
	limited := false
	for range 60 {
		if r := c.call(t, "POST", "/v1/token/refresh", "application/json", `{"refresh_token":"x"}`, "", 0, true); r.code == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("the client's bucket never answered 429")
	}

	// Every operation of the document took part, so that a new one must
	// join this flow.
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			if !c.seen[method+" "+path] {
				t.Errorf("%s %s is in docs/openapi.yaml but this flow never called it", method, path)
			}
		}
	}
}

// conformance validates calls against the OpenAPI document.
type conformance struct {
	base   string
	doc    *openapi3.T
	router routers.Router
	client *http.Client
	seen   map[string]bool // "METHOD /path" of every operation called
}

func newConformance(t *testing.T, base string) *conformance {
	t.Helper()
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData([]byte(docs.OpenAPI))
	if err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("docs/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	strict(doc)
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &conformance{base: base, doc: doc, router: router, client: &http.Client{Timeout: 20 * time.Second}, seen: map[string]bool{}}
}

// strict forbids, for this test only, object members the document does not
// list: the published document lets clients ignore unknown members (new ones
// may be added), but the server must send only documented ones. An object
// schema gets additionalProperties: false; a schema composed with allOf (an
// extension of another, say a login answer that adds to TokenPair) gets
// unevaluatedProperties: false instead, over open copies of its parts, since
// a closed part would refuse its siblings' members.
func strict(doc *openapi3.T) {
	closed := map[*openapi3.Schema]bool{} // schemas this function closed
	seen := map[*openapi3.Schema]bool{}
	no := false
	var walk func(*openapi3.SchemaRef)
	var children func(*openapi3.Schema)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		open := s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil
		switch {
		case len(s.AllOf) > 0 && s.UnevaluatedProperties.Has == nil && s.UnevaluatedProperties.Schema == nil:
			s.UnevaluatedProperties.Has = &no
			for i, part := range s.AllOf {
				if part.Value == nil {
					continue
				}
				walk(part) // the part itself, where it is used alone
				cp := *part.Value
				if closed[part.Value] {
					cp.AdditionalProperties.Has = nil
				}
				s.AllOf[i] = &openapi3.SchemaRef{Value: &cp}
				seen[&cp] = true
			}
		case len(s.Properties) > 0 && open:
			s.AdditionalProperties.Has = &no
			closed[s] = true
		}
		children(s)
	}
	children = func(s *openapi3.Schema) {
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		for _, list := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf} {
			for _, r := range list {
				walk(r)
			}
		}
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
}

// call sends one request and validates it and its answer. A request the
// document itself calls invalid (wrong content type, unknown member, missing
// bearer token) is sent with valid=false and must fail request validation.
// want 0 accepts any documented status.
func (c *conformance) call(t *testing.T, method, path, contentType, body, bearer string, want int, valid bool) reply {
	t.Helper()
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	return c.send(t, method, path, h, body, want, valid)
}

// callHeader sends a body-less request with extra header fields.
func (c *conformance) callHeader(t *testing.T, method, path string, h http.Header, want int) reply {
	t.Helper()
	return c.send(t, method, path, h, "", want, true)
}

func (c *conformance) send(t *testing.T, method, path string, h http.Header, body string, want int, valid bool) reply {
	t.Helper()
	name := method + " " + path
	newReq := func() *http.Request {
		req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body == "" {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		req.Header = h.Clone()
		return req
	}
	resp, err := c.client.Do(newReq())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: read: %v", name, err)
	}
	r := reply{code: resp.StatusCode, header: resp.Header, body: b}
	name = fmt.Sprintf("%s → %d", name, r.code)
	if want != 0 && r.code != want {
		t.Errorf("%s, want %d: %s", name, want, bytes.TrimSpace(b))
		return r
	}

	req := newReq()
	route, params, routeErr := c.router.FindRoute(req)
	var response *openapi3.Response
	switch r.code {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestHeaderFieldsTooLarge:
		// The answers on any path, documented once in components.
		component := map[int]string{404: "NotFound", 405: "MethodNotAllowed", 431: "RequestHeaderTooLarge"}[r.code]
		wantErr := map[int]error{404: routers.ErrPathNotFound, 405: routers.ErrMethodNotAllowed}[r.code]
		if wantErr != nil && !errors.Is(routeErr, wantErr) {
			t.Errorf("%s: the document routes it (%v), want %v", name, routeErr, wantErr)
		}
		ref := c.doc.Components.Responses[component]
		if ref == nil || ref.Value == nil {
			t.Fatalf("%s: no components/responses/%s", name, component)
		}
		response = ref.Value
		op := &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(r.code, ref))}
		route = &routers.Route{Spec: c.doc, Path: path, Method: method, Operation: op}
		params = nil
	default:
		if routeErr != nil {
			t.Errorf("%s: not in the document: %v", name, routeErr)
			return r
		}
		c.seen[method+" "+route.Path] = true
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: bearerPresent}}
		err := openapi3filter.ValidateRequest(context.Background(), in)
		switch {
		case valid && err != nil:
			t.Errorf("%s: the request breaks the document: %v", name, err)
		case !valid && err == nil:
			t.Errorf("%s: the document accepts a request this test sends as invalid", name)
		}
		if ref := route.Operation.Responses.Status(r.code); ref != nil {
			response = ref.Value
		}
	}
	if response == nil {
		t.Errorf("%s: status not documented: %s", name, bytes.TrimSpace(b))
		return r
	}

	// Status, documented headers and body. HEAD is validated as its GET
	// answer without the body.
	vreq := req
	opts := &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: bearerPresent}
	if method == http.MethodHead {
		vreq = req.Clone(req.Context())
		vreq.Method = http.MethodGet
		opts.ExcludeResponseBody = true
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route},
		Status:                 r.code,
		Header:                 r.header,
		Options:                opts,
	}
	out.SetBodyBytes(b)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s: the answer breaks the document: %v\n%s", name, err, bytes.TrimSpace(b))
	}
	c.checkHeaders(t, name, path, routeErr == nil, r, response)
	return r
}

// limitedPaths are the routes behind the client's bucket: every answer of
// theirs that the bucket did not refuse carries RateLimit-* (the document's
// "Rate limiting" section).
var limitedPaths = map[string]bool{"/v1/register": true, "/v1/login": true, "/v1/token/refresh": true, "/v1/email/verify": true,
	"/v1/password/forgot": true, "/v1/password/reset": true, "/v1/password/change": true}

// checkHeaders fails on a header the document does not describe, and checks
// the headers the document promises on every answer.
func (c *conformance) checkHeaders(t *testing.T, name, path string, routed bool, r reply, response *openapi3.Response) {
	t.Helper()
	documented := map[string]bool{}
	for k := range response.Headers {
		documented[textproto.CanonicalMIMEHeaderKey(k)] = true
	}
	// Transport headers, and the two the document's "Responses" section
	// puts on every answer.
	for _, k := range []string{"Content-Type", "Content-Length", "Date", "Connection", "X-Request-Id", "X-Content-Type-Options", "Cache-Control"} {
		documented[k] = true
	}
	bucketHeaders := []string{"Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset"}
	// A 405 or 431 never reaches the bucket.
	if limitedPaths[path] && routed && r.code != http.StatusRequestHeaderFieldsTooLarge {
		for _, k := range bucketHeaders {
			documented[k] = true
		}
		// The account throttle's 429 carries Retry-After alone.
		throttle429 := r.code == 429 && r.header.Get("Ratelimit-Remaining") == ""
		if !throttle429 {
			for _, k := range bucketHeaders {
				if r.header.Get(k) == "" {
					t.Errorf("%s: no %s on a rate-limited route", name, k)
				}
			}
		}
	}
	for k := range r.header {
		if !documented[k] {
			t.Errorf("%s: undocumented header %s: %q", name, k, r.header.Get(k))
		}
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q, want nosniff", name, r.header.Get("X-Content-Type-Options"))
	}
	if _, own := response.Headers["Cache-Control"]; !own && r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", name, r.header.Get("Cache-Control"))
	}
	if ct := r.header.Get("Content-Type"); len(r.body) > 0 && ct == "" {
		t.Errorf("%s: a body without Content-Type", name)
	}
	var p struct {
		Status int `json:"status"`
	}
	if strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
		if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.code {
			t.Errorf("%s: problem status %d (%v)", name, p.Status, err)
		}
	}
}

// bearerPresent is the document's bearerAuth as far as a request goes: an
// Authorization: Bearer header (whether the token is good is the server's
// answer, which is validated too).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecuritySchemeName != "bearerAuth" {
		return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
	}
	if _, ok := strings.CutPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer "); !ok {
		return errors.New("no bearer token")
	}
	return nil
}
