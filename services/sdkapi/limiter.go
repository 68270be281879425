package sdkapi

import (
	"sync"
	"time"
)

// limiter is a token bucket per SDK key: rate tokens per second, bursts of rate.
type limiter struct {
	rate float64
	mu   sync.Mutex
	keys map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64) *limiter { return &limiter{rate: rate, keys: map[string]*bucket{}} }

// allow takes a token for key; when none is left it returns how long until one is.
func (l *limiter) allow(key string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[key]
	if b == nil {
		b = &bucket{tokens: l.rate, last: now}
		l.keys[key] = b
	}
	b.tokens = min(l.rate, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}
