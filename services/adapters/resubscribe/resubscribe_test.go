package resubscribe_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/resubscribe"
)

// In a synctest bubble the backoff passes on the bubble's clock: the retry is awaited as an event
// (the second call), not by sleeping past the one-second backoff in real time.
func TestLoopRetriesUntilCanceled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		calls := 0
		retried := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			resubscribe.Loop(ctx, slog.New(slog.DiscardHandler), "ended", "stopped", func(ctx context.Context) error {
				calls++
				if calls == 1 {
					return errors.New("broker gone")
				}
				close(retried)
				<-ctx.Done()
				return ctx.Err()
			})
		}()
		<-retried // after the first one-second backoff, on the bubble's clock
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Loop did not return after cancel")
		}
		if calls != 2 {
			t.Fatalf("consume called %d times, want 2 (a retry after the failure)", calls)
		}
	})
}

func TestLoopReturnsWhenCanceledDuringBackoff(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	failed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resubscribe.Loop(ctx, slog.New(slog.DiscardHandler), "ended", "stopped", func(context.Context) error {
			failed <- struct{}{}
			return errors.New("broker gone")
		})
	}()
	<-failed
	cancel()
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond): // well before the one-second backoff ends
		t.Fatal("Loop did not return when canceled during the backoff")
	}
}
