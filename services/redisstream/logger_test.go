package redisstream

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// go-redis lines become JSON records, and a line repeated within the interval is logged once, with
// the count of repeats on the next one.
func TestSlogAdapterStructuresAndThrottles(t *testing.T) {
	var buf bytes.Buffer
	a := &slogAdapter{log: slog.New(slog.NewJSONHandler(&buf, nil)), interval: time.Hour, last: map[string]*seen{}}
	ctx := context.Background()
	for range 50 {
		a.Printf(ctx, "redis: discarding bad PubSub connection: %s", "EOF")
	}
	a.Printf(ctx, "redis: %s failed", "dial")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2 (one per distinct message):\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["msg"] != "redis: discarding bad PubSub connection: EOF" ||
		rec["component"] != "go-redis" || rec["level"] != "WARN" {
		t.Fatalf("record %v (%v)", rec, err)
	}
	// Once the interval has passed the line is logged again, saying how often it was left out.
	a.last["redis: discarding bad PubSub connection: %s"].at = time.Now().Add(-2 * time.Hour)
	buf.Reset()
	a.Printf(ctx, "redis: discarding bad PubSub connection: %s", "EOF")
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["repeated"] != 49.0 {
		t.Fatalf("after the interval: %s (%v)", buf.String(), err)
	}
}
