package authtest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/authd/authd/internal/auth"
)

func message(key string) auth.Message {
	return auth.Message{
		Channel: auth.ChannelEmail, To: key + "@example.com", Template: auth.TemplateVerifyEmail,
		Data: map[string]string{"link": "https://auth.example.com/verify#" + key}, IdempotencyKey: key,
	}
}

func enqueue(t *testing.T, st Stores, now time.Time, keys ...string) {
	t.Helper()
	err := st.InTx(t.Context(), func(tx auth.Tx) error {
		for _, k := range keys {
			if err := tx.Enqueue(t.Context(), message(k), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InTx(Enqueue %v): %v", keys, err)
	}
}

func claim(t *testing.T, st Stores, owner string, now time.Time, limit int) []auth.OutboxMessage {
	t.Helper()
	msgs, err := st.ClaimMessages(t.Context(), owner, now, time.Minute, limit)
	if err != nil {
		t.Fatalf("ClaimMessages(%s, %v): %v", owner, now, err)
	}
	return msgs
}

func claimOne(t *testing.T, st Stores, owner string, now time.Time) auth.OutboxMessage {
	t.Helper()
	msgs := claim(t, st, owner, now, 10)
	if len(msgs) != 1 {
		t.Fatalf("ClaimMessages(%s, %v) = %d messages, want 1", owner, now, len(msgs))
	}
	return msgs[0]
}

func claimNone(t *testing.T, st Stores, owner string, now time.Time) {
	t.Helper()
	if msgs := claim(t, st, owner, now, 10); len(msgs) != 0 {
		t.Fatalf("ClaimMessages(%s, %v) = %+v, want none", owner, now, msgs)
	}
}

func pending(t *testing.T, st Stores, want int64) {
	t.Helper()
	if n, err := st.PendingMessages(t.Context()); err != nil || n != want {
		t.Fatalf("PendingMessages = %d, %v; want %d", n, err, want)
	}
}

func runOutbox(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("a transaction commits the user and the message together", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		u := &auth.User{ID: newID(t), Email: "ada@example.com", PasswordHash: "h", CreatedAt: t0}
		err := st.InTx(t.Context(), func(tx auth.Tx) error {
			if err := tx.CreateUser(t.Context(), u); err != nil {
				return err
			}
			return tx.Enqueue(t.Context(), message("verify-ada"), t0)
		})
		if err != nil {
			t.Fatalf("InTx: %v", err)
		}
		if _, err := st.UserByID(t.Context(), u.ID); err != nil {
			t.Fatalf("UserByID after commit: %v", err)
		}
		pending(t, st, 1)
		m := claimOne(t, st, "a", t0)
		want := message("verify-ada")
		if m.ID == "" || m.Attempts != 1 || m.Message.Channel != want.Channel || m.Message.To != want.To ||
			m.Message.Template != want.Template || m.Message.IdempotencyKey != want.IdempotencyKey ||
			m.Message.Data["link"] != want.Data["link"] || len(m.Message.Data) != 1 {
			t.Errorf("claimed %+v, want %+v at attempt 1", m, want)
		}
		checkTime(t, "CreatedAt", m.CreatedAt, t0)
	})

	t.Run("a failed transaction leaves neither", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		boom := errors.New("boom")
		u := &auth.User{ID: newID(t), Email: "ada@example.com", PasswordHash: "h", CreatedAt: t0}
		err := st.InTx(t.Context(), func(tx auth.Tx) error {
			if err := tx.CreateUser(t.Context(), u); err != nil {
				return err
			}
			if err := tx.Enqueue(t.Context(), message("verify-ada"), t0); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want fn's error", err)
		}
		if _, err := st.UserByID(t.Context(), u.ID); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("UserByID after rollback: %v, want ErrNotFound", err)
		}
		pending(t, st, 0)
		claimNone(t, st, "a", t0.Add(time.Hour))
	})

	t.Run("a taken email rolls back the message", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		createUser(t, st, "ada@example.com")
		err := st.InTx(t.Context(), func(tx auth.Tx) error {
			if err := tx.Enqueue(t.Context(), message("verify-ada-2"), t0); err != nil {
				return err
			}
			return tx.CreateUser(t.Context(), &auth.User{ID: newID(t), Email: "ada@example.com", PasswordHash: "h"})
		})
		if !errors.Is(err, auth.ErrEmailTaken) {
			t.Fatalf("InTx = %v, want ErrEmailTaken", err)
		}
		pending(t, st, 0)
	})

	t.Run("an idempotency key is queued once", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		enqueue(t, st, t0, "k", "k")
		enqueue(t, st, t0, "k")
		pending(t, st, 1)
		m := claimOne(t, st, "a", t0)
		if err := st.MarkSent(t.Context(), m.ID, "a", t0); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
		enqueue(t, st, t0.Add(time.Minute), "k")
		pending(t, st, 0)
		claimNone(t, st, "a", t0.Add(time.Hour))
	})

	t.Run("only due messages are claimed", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		enqueue(t, st, t0.Add(time.Minute), "later")
		claimNone(t, st, "a", t0)
		claimOne(t, st, "a", t0.Add(time.Minute))
	})

	t.Run("a lease holds the message until it expires", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		enqueue(t, st, t0, "m")
		first := claimOne(t, st, "a", t0)
		claimNone(t, st, "b", t0.Add(59*time.Second))
		// a dies; after its lease b takes the message over.
		second := claimOne(t, st, "b", t0.Add(time.Minute))
		if second.ID != first.ID || second.Attempts != 2 {
			t.Errorf("reclaimed %+v, want message %s at attempt 2", second, first.ID)
		}
		for name, f := range map[string]func() error{
			"MarkSent":   func() error { return st.MarkSent(t.Context(), first.ID, "a", t0) },
			"RetryLater": func() error { return st.RetryLater(t.Context(), first.ID, "a", t0, "timeout") },
			"GiveUp":     func() error { return st.GiveUp(t.Context(), first.ID, "a", t0, "timeout") },
		} {
			if err := f(); !errors.Is(err, auth.ErrNotFound) {
				t.Errorf("%s by the former owner: %v, want ErrNotFound", name, err)
			}
		}
		if err := st.MarkSent(t.Context(), second.ID, "b", t0.Add(time.Minute)); err != nil {
			t.Fatalf("MarkSent by the owner: %v", err)
		}
		pending(t, st, 0)
		claimNone(t, st, "a", t0.Add(time.Hour))
	})

	t.Run("retry later", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		enqueue(t, st, t0, "m")
		m := claimOne(t, st, "a", t0)
		if err := st.RetryLater(t.Context(), m.ID, "a", t0.Add(30*time.Second), "unavailable"); err != nil {
			t.Fatalf("RetryLater: %v", err)
		}
		pending(t, st, 1)
		claimNone(t, st, "a", t0.Add(29*time.Second))
		again := claimOne(t, st, "b", t0.Add(30*time.Second))
		if again.ID != m.ID || again.Attempts != 2 || again.Message.Data["link"] == "" {
			t.Errorf("retried %+v, want message %s at attempt 2 with its data", again, m.ID)
		}
	})

	t.Run("give up", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		enqueue(t, st, t0, "m", "n")
		for _, m := range claim(t, st, "a", t0, 10) {
			if m.Message.IdempotencyKey == "m" {
				if err := st.GiveUp(t.Context(), m.ID, "a", t0, "undeliverable"); err != nil {
					t.Fatalf("GiveUp: %v", err)
				}
			}
		}
		pending(t, st, 1)
		m := claimOne(t, st, "a", t0.Add(time.Hour))
		if m.Message.IdempotencyKey != "n" {
			t.Errorf("claimed %q, want n (m was given up)", m.Message.IdempotencyKey)
		}
	})

	t.Run("limit", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		enqueue(t, st, t0, "a", "b", "c")
		if got := claim(t, st, "x", t0, 2); len(got) != 2 {
			t.Fatalf("claimed %d, want 2", len(got))
		}
		claimOne(t, st, "y", t0)
	})

	t.Run("delete finished", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		enqueue(t, st, t0, "sent", "failed", "open")
		for _, m := range claim(t, st, "a", t0, 10) {
			var err error
			switch m.Message.IdempotencyKey {
			case "sent":
				err = st.MarkSent(t.Context(), m.ID, "a", t0)
			case "failed":
				err = st.GiveUp(t.Context(), m.ID, "a", t0, "undeliverable")
			default:
				err = st.RetryLater(t.Context(), m.ID, "a", t0, "unavailable")
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if n, err := st.DeleteFinishedMessages(t.Context(), t0, 10); err != nil || n != 0 {
			t.Fatalf("DeleteFinishedMessages(t0) = %d, %v; want 0", n, err)
		}
		if n, err := st.DeleteFinishedMessages(t.Context(), t0.Add(time.Second), 10); err != nil || n != 2 {
			t.Fatalf("DeleteFinishedMessages = %d, %v; want 2", n, err)
		}
		pending(t, st, 1)
	})

	t.Run("concurrent claimers never share a message", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		const n = 60
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("m%02d", i)
		}
		enqueue(t, st, t0, keys...)
		var (
			mu     sync.Mutex
			seen   = map[string]string{}
			wg     sync.WaitGroup
			errs   = make(chan error, 8)
			shared bool
		)
		for w := range 8 {
			owner := fmt.Sprintf("instance-%d", w)
			wg.Go(func() {
				for {
					msgs, err := st.ClaimMessages(t.Context(), owner, t0, time.Minute, 3)
					if err != nil {
						errs <- err
						return
					}
					if len(msgs) == 0 {
						return
					}
					mu.Lock()
					for _, m := range msgs {
						if other, ok := seen[m.ID]; ok {
							shared = true
							t.Errorf("message %s claimed by %s and %s", m.ID, other, owner)
						}
						seen[m.ID] = owner
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("ClaimMessages: %v", err)
		}
		if len(seen) != n || shared {
			t.Fatalf("claimed %d distinct messages, want %d", len(seen), n)
		}
	})
}
