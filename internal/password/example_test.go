package password_test

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd/authd/internal/hashpool"
	"github.com/authd/authd/internal/password"
)

func Example() {
	// One pool per process, sized from AUTHD_HASH_WORKERS / AUTHD_HASH_QUEUE.
	pool, err := hashpool.New(hashpool.Params{Workers: 2, Queue: 64}, time.Now, prometheus.NewRegistry())
	if err != nil {
		panic(err)
	}
	defer pool.Close(context.Background())
	h, err := password.NewHasher(pool, password.TestParams()) // DefaultParams() in production
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	policy := password.DefaultPolicy() // from AUTHD_PASSWORD_MIN_LENGTH
	for _, pw := range []string{"password", "ada.lovelace 1815", "1234567890qwerty"} {
		if err := policy.Check(pw, "ada.lovelace@example.com"); err != nil {
			fmt.Println("refused:", err)
		}
	}
	stored, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		panic(err)
	}
	match, needsRehash, err := h.Verify(ctx, "correct horse battery staple", stored)
	fmt.Println(match, needsRehash, err)
	// Output:
	// refused: password must be at least 15 characters
	// refused: password must not contain the email address or the part before its @
	// refused: password is too common; choose one that is harder to guess
	// true false <nil>
}
