package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodyBytes caps every request body.
const MaxBodyBytes = 64 << 10

// validator is implemented by request types; it returns every bad field.
type validator interface {
	Validate() []FieldError
}

// decode reads one JSON object of type T from r: it caps the size (413
// whatever the body holds), checks the content type, rejects unknown fields
// and trailing data, then validates.
// Its errors are *problemError, ready for writeError.
func decode[T validator](w http.ResponseWriter, r *http.Request) (T, error) {
	var v T
	// The size comes first: a body over the cap is 413 whatever it holds
	// and whatever its content type says.
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return v, decodeError(err)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return v, newProblem(http.StatusUnsupportedMediaType, codeMediaType, "Content-Type must be application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p *T // nil after a JSON null, which is no object
	if err := dec.Decode(&p); err != nil {
		return v, decodeError(err)
	}
	if p == nil {
		return v, newProblem(http.StatusBadRequest, codeMalformed, "the body must hold a single JSON object")
	}
	v = *p
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return v, newProblem(http.StatusBadRequest, codeMalformed, "the body must hold a single JSON object")
	}
	if fe := v.Validate(); len(fe) > 0 {
		return v, validationError(fe...)
	}
	return v, nil
}

func decodeError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return newProblem(http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes))
	case errors.As(err, &se):
		return newProblem(http.StatusBadRequest, codeMalformed, fmt.Sprintf("invalid JSON at byte %d", se.Offset))
	case errors.As(err, &te):
		return newProblem(http.StatusBadRequest, codeMalformed, fmt.Sprintf("field %q has the wrong type", te.Field))
	case errors.Is(err, io.EOF):
		return newProblem(http.StatusBadRequest, codeMalformed, "the body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newProblem(http.StatusBadRequest, codeMalformed, "the body ends early")
	}
	// Unknown fields and the rest: json's message names the field, never a
	// value; its "json: " prefix is Go's, not the client's business.
	return newProblem(http.StatusBadRequest, codeMalformed, strings.TrimPrefix(err.Error(), "json: "))
}

// encode writes v as JSON with the given status; headers go out before WriteHeader.
func encode(w http.ResponseWriter, status int, contentType string, v any) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// An error here means the client is gone; there is nobody to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// writeNoContent answers 204 with the headers every /v1/ answer carries.
func writeNoContent(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusNoContent)
}

func encodeJSON(w http.ResponseWriter, status int, v any) {
	encode(w, status, "application/json", v)
}
