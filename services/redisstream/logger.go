package redisstream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// UseSlog routes go-redis's own log lines (dial failures, pool and reconnect notices) through log
// as structured records instead of its default unstructured lines on stderr. While Redis is down
// go-redis repeats the same line several times a second; each distinct message format is logged at
// most once per interval, with the number of repeats left out, so an outage is a few lines.
func UseSlog(log *slog.Logger, interval time.Duration) {
	redis.SetLogger(&slogAdapter{log: log, interval: interval, last: map[string]*seen{}})
}

type seen struct {
	at         time.Time
	suppressed int
}

type slogAdapter struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     map[string]*seen // by format string
}

// Printf implements go-redis's internal.Logging.
func (a *slogAdapter) Printf(ctx context.Context, format string, v ...any) {
	now := time.Now()
	a.mu.Lock()
	s := a.last[format]
	if s != nil && now.Sub(s.at) < a.interval {
		s.suppressed++
		a.mu.Unlock()
		return
	}
	suppressed := 0
	if s != nil {
		suppressed = s.suppressed
	}
	if len(a.last) > 1000 { // formats are constants in go-redis; bound the map anyway
		clear(a.last)
	}
	a.last[format] = &seen{at: now}
	a.mu.Unlock()
	attrs := []any{"component", "go-redis"}
	if suppressed > 0 {
		attrs = append(attrs, "repeated", suppressed)
	}
	a.log.WarnContext(ctx, fmt.Sprintf(format, v...), attrs...)
}
