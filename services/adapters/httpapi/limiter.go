package httpapi

import (
	"strconv"
	"sync"
	"time"
)

// Limiter is a token bucket per key (an SDK key, a webhook trigger): rate tokens per second,
// bursts of up to burst. Its memory is bounded by the keys active recently: a bucket that has
// refilled is dropped, since a new bucket starts full and behaves the same.
type Limiter struct {
	rate, burst float64
	mu          sync.Mutex
	keys        map[string]*bucket
	sweepAt     int // map size that triggers the next sweep of full buckets
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter allows rate calls per second per key, in bursts of up to burst (at least 1).
func NewLimiter(rate, burst float64) *Limiter {
	return &Limiter{rate: rate, burst: max(burst, 1), keys: map[string]*bucket{}, sweepAt: 1024}
}

// Allow takes a token for key; when none is left it returns how long until one is.
func (l *Limiter) Allow(key string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[key]
	if b == nil {
		if len(l.keys) >= l.sweepAt {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.keys[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}

// sweep drops the buckets that are full again, and sets the next sweep at twice what is left,
// so sweeping stays amortized constant per call.
func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.keys {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.keys, k)
		}
	}
	l.sweepAt = max(1024, 2*len(l.keys))
}

// RetryAfter is the Retry-After header value for a wait: whole seconds, rounded up, at least 1.
func RetryAfter(wait time.Duration) string {
	secs := int(wait / time.Second)
	if time.Duration(secs)*time.Second < wait || secs < 1 {
		secs++
	}
	return strconv.Itoa(secs)
}
