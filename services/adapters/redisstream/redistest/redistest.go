// Package redistest gives each test its own key prefix on the real Redis server and removes the
// keys when the test ends. A missing server fails the test loudly: it is never skipped.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL is the Redis server tests use: VEXIL_TEST_REDIS_URL, or the machine's default.
func URL() string {
	if u := os.Getenv("VEXIL_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// NewPrefix returns a stream/key prefix unique to tb and deletes every key under it afterwards.
func NewPrefix(tb testing.TB) string {
	tb.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		tb.Fatalf("redistest: parse %s: %v", URL(), err)
	}
	client := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		tb.Fatalf("redistest: Redis is required for this test and is unreachable at %s: %v", URL(), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "vexiltest-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	return prefix
}

// NewClient returns a client of the Redis server at URL, closed when tb ends.
func NewClient(tb testing.TB) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		tb.Fatalf("redistest: parse %s: %v", URL(), err)
	}
	client := redis.NewClient(opts)
	tb.Cleanup(func() { _ = client.Close() })
	return client
}
