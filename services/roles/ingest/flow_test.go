package ingest_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/roles/ingest"
	"github.com/vexil-flags/vexil/services/testkit"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func migratedPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := pgtest.NewDatabase(t)
	m, err := postgres.NewMigrator(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Up(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	pool, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func busConfig(t *testing.T, url string) redisstream.Config {
	return redisstream.Config{URL: url, Prefix: redistest.NewPrefix(t), Logger: quiet,
		NackResendSleep: 10 * time.Millisecond, BlockTime: 50 * time.Millisecond, MaxIdleTime: time.Second, ClaimInterval: 200 * time.Millisecond}
}

func newIngestor(t *testing.T, cfg ingest.IngestConfig) *ingest.Ingestor {
	t.Helper()
	if cfg.LagInterval == 0 {
		cfg.LagInterval = 20 * time.Millisecond
	}
	cfg.Logger = quiet
	ing, err := ingest.NewIngestor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ing.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; ing.Close() })
	return ing
}

func startConsumer(t *testing.T, pool *pgxpool.Pool, bus redisstream.Config, workers int) {
	t.Helper()
	c, err := ingest.NewConsumer(ingest.ConsumerConfig{Pool: pool, Bus: bus, Workers: workers, MaxAttempts: 2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func batchOf(n int, user string) *telemetry.Batch {
	b := telemetry.NewBatch("p", "prod", time.Now())
	for i := 0; i < n; i++ {
		b.AddEvaluation(telemetry.EvaluationEvent{EventID: telemetry.NewEventID(), OccurredAt: time.Now(),
			Flag: "checkout", Variation: "on", User: user})
	}
	return b
}

func count(t *testing.T, pool *pgxpool.Pool, sql string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Published batches are stored exactly once by a consumer group of several workers, also when
// a message is delivered twice; messages that cannot be stored go to the dead-letter stream
// without blocking the rest.
func TestBatchesAreStoredOnceAndPoisonIsDeadLettered(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	bus := busConfig(t, redistest.URL())
	ing := newIngestor(t, ingest.IngestConfig{Bus: bus})
	ctx := context.Background()

	client, err := redisstream.NewClient(bus.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// Poison before the good batches: an entry watermill cannot decode, and a message whose
	// payload is no batch.
	if err := client.XAdd(ctx, &redis.XAddArgs{Stream: ing.Stream(), Values: map[string]any{"junk": "1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	pub, err := redisstream.NewPublisher(bus)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(ing.Stream(), message.NewMessage("not-a-batch", []byte(`{"v": 1, "events": "nope"}`))); err != nil {
		t.Fatal(err)
	}

	var published []*telemetry.Batch
	for i := 0; i < 40; i++ {
		b := batchOf(25, "u"+strconv.Itoa(i%7))
		if err := ing.Publish(ctx, b); err != nil {
			t.Fatal(err)
		}
		published = append(published, b)
	}
	// The same batch twice on the stream (a publisher retry after a lost answer).
	if err := ing.Publish(ctx, published[3]); err != nil {
		t.Fatal(err)
	}
	startConsumer(t, pool, bus, 3)
	testkit.WaitFor(t, 30*time.Second, "every batch stored", func() bool {
		return count(t, pool, `SELECT count(*) FROM telemetry_batches`) == 40
	})
	if n := count(t, pool, `SELECT count(*) FROM evaluation_events`); n != 1000 {
		t.Fatalf("%d evaluation rows, want 1000", n)
	}
	testkit.WaitFor(t, 10*time.Second, "two dead letters", func() bool {
		n, err := redisstream.StreamLength(ctx, client, bus.DeadLetterStream())
		return err == nil && n == 2
	})
	testkit.WaitFor(t, 10*time.Second, "the group to be done", func() bool {
		lags, err := redisstream.StreamLag(ctx, client, ing.Stream())
		return err == nil && len(lags) == 1 && lags[0].Behind() == 0
	})
}

// While the projector lags past the bound, Publish refuses with a Retry-After instead of letting
// the stream grow.
func TestIngestRefusesWhenTheProjectorLags(t *testing.T) {
	t.Parallel()
	bus := busConfig(t, redistest.URL())
	ing := newIngestor(t, ingest.IngestConfig{Bus: bus, MaxLag: 3})
	ctx := context.Background()
	// Nobody consumes: the group the ingestor created falls behind.
	for i := 0; i < 4; i++ {
		if err := ing.Publish(ctx, batchOf(1, "u")); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "the lag sample", func() bool { lag, _ := ing.Lag(); return lag == 4 })
	err := ing.Publish(ctx, batchOf(1, "u"))
	secs, ok := ingest.RetryAfter(err)
	if domain.ErrorCode(err) != domain.ERateLimited || !ok || secs < 1 {
		t.Fatalf("publish while lagging: %v (retry after %d)", err, secs)
	}
	if _, err := ingest.NewIngestor(ingest.IngestConfig{Bus: bus, MaxLag: 100, StreamMaxLen: 399}); err == nil {
		t.Fatal("a stream cap under 4 times the lag bound was accepted")
	}
}

// With Redis unreachable, Publish fails fast (the edge answers 503 and keeps nothing); counts of
// the evaluation counters wait in memory and are stored once Redis is back, exactly once.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	proxy := redistest.NewProxy(t)
	bus := busConfig(t, proxy.URL())
	ing := newIngestor(t, ingest.IngestConfig{Bus: bus, PublishTimeout: time.Second})
	direct := bus
	direct.URL = redistest.URL()
	startConsumer(t, pool, direct, 1)
	ctx := context.Background()
	if err := ing.Publish(ctx, batchOf(10, "a")); err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	// The publish must fail (fast), not hang on a dead Redis: a generous deadline for the answer
	// to arrive at all, not a speed goal.
	published := make(chan error, 1)
	go func() { published <- ing.Publish(ctx, batchOf(10, "b")) }()
	var err error
	select {
	case err = <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("publish with Redis down did not return")
	}
	if secs, ok := ingest.RetryAfter(err); domain.ErrorCode(err) != domain.EUnavailable || !ok || secs < 1 {
		t.Fatalf("publish with Redis down: %v", err)
	}
	counts := []ingest.EvaluationCount{{Project: "p", Environment: "prod", Flag: "checkout", Variation: "on", Count: 70,
		From: time.Now().Add(-10 * time.Second), To: time.Now()}, {Project: "p", Environment: "dev", Flag: "checkout", Variation: "", Count: 3,
		From: time.Now().Add(-10 * time.Second), To: time.Now()}}
	if err := ing.RecordCounts(ctx, counts); err == nil {
		t.Fatal("counts published with Redis down")
	}
	proxy.Restore()
	testkit.WaitFor(t, 30*time.Second, "the counts and the first batch", func() bool {
		return count(t, pool, `SELECT coalesce(sum(evaluations), 0) FROM evaluation_events`) == 10+70+3
	})
	// Not a wait for something to happen: a bounded check that nothing more arrives (no counter row
	// twice, and never the batch refused with 503) in the 300 ms after everything expected did.
	time.Sleep(300 * time.Millisecond)
	if n := count(t, pool, `SELECT count(*) FROM evaluation_events WHERE user_key IS NULL`); n != 2 {
		t.Fatalf("%d counter rows, want 2", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM evaluation_events WHERE user_key = 'b'`); n != 0 {
		t.Fatal("a batch refused with 503 was stored")
	}
	if err := ing.Publish(ctx, batchOf(1, "c")); err != nil {
		t.Fatalf("publish after Redis came back: %v", err)
	}
}
