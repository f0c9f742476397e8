package statetest

import (
	"testing"
	"time"

	"github.com/authd/authd/internal/memstate"
)

// Memory returns an in-process state store reading time from now, for the
// tests of packages that need a real auth.StateStore without Redis.
func Memory(t testing.TB, now func() time.Time) *memstate.Store {
	t.Helper()
	st, err := memstate.New(memstate.Params{}, now)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
