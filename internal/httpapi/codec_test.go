package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecode feeds decode every request type with arbitrary bodies and
// content types. Whatever arrives, decode must not panic, must refuse with a
// *problemError whose status and code are the request errors API.md lists,
// and must accept only a single valid JSON object within the size cap whose
// fields pass validation and survive a round trip. The seeds run as a normal
// test; `go test -fuzz FuzzDecode ./internal/httpapi` explores further.
func FuzzDecode(f *testing.F) {
	for _, seed := range []struct{ contentType, body string }{
		{"application/json", `{"email":"ada@example.com","password":"correct horse battery staple"}`},
		{"application/json; charset=utf-8", `{"refresh_token":"abc"}`},
		{"application/json", `{"all":true}`},
		{"application/json", `{"token":"x"}`},
		{"application/json", `{}`},
		{"application/json", ``},
		{"application/json", `   `},
		{"application/json", `{"email":"a@b.c"} {"email":"d@e.f"}`},
		{"application/json", `{"email":"a@b.c"} trailing`},
		{"application/json", `{"email":"a@b.c","admin":true}`},
		{"application/json", `{"email":42}`},
		{"application/json", `{"all":"yes"}`},
		{"application/json", `{"email":"a@b.c"`},
		{"application/json", `[1,2,3]`},
		{"application/json", `null`},
		{"application/json", "{\"password\":\"\xff\xfe\"}"},
		{"application/json", `{"EMAIL":"ada@example.com","Password":"correct horse battery staple"}`},
		{"application/json", `{"email":"ada@example.com","email":"eve@example.com"}`},
		{"application/json", `{"password":"` + strings.Repeat("a", MaxBodyBytes) + `"}`},
		{"text/plain", `{"email":"ada@example.com"}`},
		{"", `{}`},
		{"application/json;;", `{}`},
	} {
		f.Add(seed.contentType, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		checkDecode[registerRequest](t, contentType, body)
		checkDecode[loginRequest](t, contentType, body)
		checkDecode[refreshRequest](t, contentType, body)
		checkDecode[logoutRequest](t, contentType, body)
		checkDecode[introspectRequest](t, contentType, body)
	})
}

func checkDecode[T validator](t *testing.T, contentType string, body []byte) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	v, err := decode[T](w, r)
	if err != nil {
		var pe *problemError
		if !errors.As(err, &pe) {
			t.Fatalf("decode[%T] error %v (%T) is not a *problemError", v, err, err)
		}
		want := map[int]string{
			http.StatusBadRequest:            "",
			http.StatusRequestEntityTooLarge: codeTooLarge,
			http.StatusUnsupportedMediaType:  codeMediaType,
		}
		code, ok := want[pe.status]
		switch {
		case !ok:
			t.Fatalf("decode[%T] answered status %d (%v)", v, pe.status, err)
		case code != "" && pe.code != code:
			t.Fatalf("decode[%T] status %d has code %q, want %q", v, pe.status, pe.code, code)
		case code == "" && pe.code != codeMalformed && pe.code != codeValidation:
			t.Fatalf("decode[%T] status 400 has code %q", v, pe.code)
		case titles[pe.code] == "":
			t.Fatalf("decode[%T] code %q has no title", v, pe.code)
		case pe.code == codeValidation && len(pe.fields) == 0:
			t.Fatalf("decode[%T] validation error names no field", v)
		}
		return
	}
	if len(body) > MaxBodyBytes {
		t.Fatalf("decode[%T] accepted %d bytes, over the %d cap", v, len(body), MaxBodyBytes)
	}
	if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' {
		t.Fatalf("decode[%T] accepted %q, which is not one JSON object", v, body)
	}
	if fe := v.Validate(); len(fe) > 0 {
		t.Fatalf("decode[%T] accepted a value that fails validation: %v", v, fe)
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decoded %T does not encode: %v", v, err)
	}
	var back T
	if err := json.Unmarshal(again, &back); err != nil || !reflect.DeepEqual(back, v) {
		t.Fatalf("decoded %T does not survive a round trip: %#v -> %s -> %#v (%v)", v, v, again, back, err)
	}
}
