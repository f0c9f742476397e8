package throttle_test

import (
	"context"
	"fmt"
	"time"

	"github.com/authd/authd/internal/clocktest"
	"github.com/authd/authd/internal/memstate"
	"github.com/authd/authd/internal/throttle"
)

func Example() {
	ctx := context.Background()
	clock := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	st, err := memstate.New(memstate.Params{}, clock.Now)
	if err != nil {
		panic(err)
	}
	th, err := throttle.New(st, throttle.Params{}, clock.Now)
	if err != nil {
		panic(err)
	}

	// A guesser: each admitted attempt fails.
	for range 8 {
		attempt, wait, err := th.Check(ctx, "alice@example.com", "198.51.100.66", "")
		if err != nil {
			panic(err)
		}
		if wait > 0 {
			fmt.Printf("429, retry after %v\n", wait)
			clock.Advance(wait)
			continue
		}
		fmt.Println("admitted; wrong password")
		if err := attempt.Failure(ctx); err != nil {
			panic(err)
		}
	}
	// Output:
	// admitted; wrong password
	// admitted; wrong password
	// admitted; wrong password
	// admitted; wrong password
	// admitted; wrong password
	// admitted; wrong password
	// 429, retry after 1s
	// admitted; wrong password
}
