// Package resubscribe keeps a role consuming its subscription (the outbox, the domain stream, the
// telemetry stream) when the broker or database behind it goes away: the role keeps running and
// resubscribes with backoff instead of exiting.
package resubscribe

import (
	"context"
	"log/slog"
	"time"
)

// Backoff bounds: the first wait, and the cap the wait doubles up to. A subscription that lasted
// longer than stable was healthy, so its failure starts the backoff over.
const (
	initialBackoff = time.Second
	maxBackoff     = 30 * time.Second
	stable         = time.Minute
)

// Loop calls consume until ctx ends. Whenever consume returns while ctx is still live it logs
// ended at Warn (with the error and the wait) and calls consume again after the backoff. It logs
// stopped at Info when consume returns because ctx ended.
func Loop(ctx context.Context, log *slog.Logger, ended, stopped string, consume func(context.Context) error) {
	backoff := initialBackoff
	for {
		started := time.Now()
		err := consume(ctx)
		if ctx.Err() != nil {
			log.Info(stopped)
			return
		}
		if time.Since(started) > stable {
			backoff = initialBackoff
		}
		log.Warn(ended, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
