package identity

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// LoginLimiter limits sign-in attempts per key with a token bucket kept in PostgreSQL (table
// console_login_limits, migration 0110), so every console replica draws from the same bucket: an
// attacker gets Burst attempts and then one per Interval in all, not per replica. Time is the
// database's clock, the one clock every replica shares.
type LoginLimiter struct {
	store    *Store
	burst    float64
	perSec   float64 // tokens that come back a second
	interval time.Duration
}

// NewLoginLimiter builds a limiter of burst attempts at once, then one per interval.
func (s *Store) NewLoginLimiter(burst int, interval time.Duration) *LoginLimiter {
	if burst < 1 {
		burst = 1
	}
	if interval <= 0 {
		interval = time.Second
	}
	return &LoginLimiter{store: s, burst: float64(burst), perSec: 1 / interval.Seconds(), interval: interval}
}

// Allow takes one attempt of key. When none is left it reports false and how long until one
// comes back. One upsert: the row lock orders concurrent attempts from every replica.
func (l *LoginLimiter) Allow(ctx context.Context, key string) (time.Duration, bool, error) {
	var tokens float64
	var allowed bool
	err := l.store.pool.QueryRow(ctx, `INSERT INTO console_login_limits AS l (key, tokens, allowed, updated_at)
		VALUES ($1, $2 - 1, true, now())
		ON CONFLICT (key) DO UPDATE SET
			tokens = CASE WHEN least($2, l.tokens + $3 * extract(epoch FROM now() - l.updated_at)) >= 1
				THEN least($2, l.tokens + $3 * extract(epoch FROM now() - l.updated_at)) - 1
				ELSE least($2, l.tokens + $3 * extract(epoch FROM now() - l.updated_at)) END,
			allowed = least($2, l.tokens + $3 * extract(epoch FROM now() - l.updated_at)) >= 1,
			updated_at = now()
		RETURNING tokens, allowed`, key, l.burst, l.perSec).Scan(&tokens, &allowed)
	if err != nil {
		return 0, false, fmt.Errorf("identity: sign-in limit of %s: %w", key, err)
	}
	if rand.IntN(200) == 0 {
		// Now and then, forget buckets idle for a day (full again long since).
		if _, err := l.store.pool.Exec(ctx, `DELETE FROM console_login_limits WHERE updated_at < now() - interval '1 day'`); err != nil {
			return 0, false, fmt.Errorf("identity: prune sign-in limits: %w", err)
		}
	}
	if allowed {
		return 0, true, nil
	}
	wait := time.Duration(math.Ceil((1-tokens)/l.perSec*1000)) * time.Millisecond
	return max(wait, time.Millisecond), false, nil
}
