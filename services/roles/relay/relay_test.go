package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/roles/projector"
	"github.com/vexil-flags/vexil/services/roles/relay"
	"github.com/vexil-flags/vexil/services/testkit"
)

func testLogger() *slog.Logger {
	if os.Getenv("VEXIL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type env struct {
	pool   *pgxpool.Pool
	store  *postgres.EventStore
	bus    redisstream.Config
	client *redis.Client
}

func setup(t *testing.T) env {
	t.Helper()
	pool, store := pgtest.NewEventStore(t, postgres.WithLogger(testLogger()))
	if _, err := pool.Exec(context.Background(), `CREATE TABLE test_applied (stream_id text NOT NULL, version bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	bus := redisstream.Config{URL: redistest.URL(), Prefix: redistest.NewPrefix(t), Logger: testLogger(),
		NackResendSleep: 50 * time.Millisecond, BlockTime: 100 * time.Millisecond}
	return env{pool: pool, store: store, bus: bus, client: redistest.NewClient(t)}
}

// applied is a test projection recording one row per applied event.
type applied struct{}

func (applied) Name() string { return "applied" }

func (applied) Apply(ctx context.Context, tx pgx.Tx, history, newEvents []domain.RecordedEvent) error {
	for _, e := range newEvents {
		if _, err := tx.Exec(ctx, `INSERT INTO test_applied VALUES ($1, $2)`, e.StreamID, e.Version); err != nil {
			return err
		}
	}
	return nil
}

func start(t *testing.T, fn func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("run did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newRelay(t *testing.T, e env, bus redisstream.Config, tweak func(*relay.Config)) *relay.Relay {
	t.Helper()
	pub, err := redisstream.NewPublisher(bus)
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.Config{Pool: e.pool, Publisher: pub, Topic: bus.DomainStream(),
		PollInterval: 20 * time.Millisecond, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: testLogger()}
	if tweak != nil {
		tweak(&cfg)
	}
	r, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newRunner(t *testing.T, e env, bus redisstream.Config, m projector.Metrics) *projector.Runner {
	t.Helper()
	sub, err := redisstream.NewSubscriber(bus, bus.Group(projector.Role))
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := redisstream.NewPublisher(bus)
	if err != nil {
		t.Fatal(err)
	}
	r, err := projector.New(projector.Config{Pool: e.pool, Store: e.store, Projections: []projections.Projection{applied{}},
		Subscriber: sub, Topic: bus.DomainStream(), DeadLetter: dlq, DeadLetterTopic: bus.DeadLetterStream(),
		Metrics: m, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func toggled(on bool) domain.Event { return &domain.FlagToggled{Environment: "production", On: on} }

func appendN(t *testing.T, s *postgres.EventStore, stream string, from, n int64) {
	t.Helper()
	for v := from; v < from+n; v++ {
		if _, err := s.Append(context.Background(), stream, v, domain.Metadata{}, toggled(v%2 == 0)); err != nil {
			t.Fatal(err)
		}
	}
}

func waitAll(t *testing.T, e env, want map[string]int64, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for stream, v := range want {
		if err := projector.WaitFor(ctx, e.pool, stream, v, []string{"applied"}); err != nil {
			return err
		}
	}
	return nil
}

func checkExactlyOnce(t *testing.T, e env, want map[string]int64) {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT stream_id, count(*), count(DISTINCT version), max(version)
		FROM test_applied GROUP BY stream_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var stream string
		var n, distinct, maxV int64
		if err := rows.Scan(&stream, &n, &distinct, &maxV); err != nil {
			t.Fatal(err)
		}
		if n != distinct || n != maxV {
			t.Errorf("%s: %d rows, %d distinct versions, max %d", stream, n, distinct, maxV)
		}
		got[stream] = n
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("applied %v, want %v", got, want)
	}
}

func pending(t *testing.T, e env) int64 {
	t.Helper()
	n, err := relay.Pending(context.Background(), e.pool, "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRelayForwardsInOrder: every append reaches the domain stream once, unchanged, in version
// order per stream; forwarded rows are pruned, unforwarded ones are not.
func TestRelayForwardsInOrder(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	var m counters
	r := newRelay(t, e, e.bus, func(c *relay.Config) { c.Retention = time.Nanosecond; c.Metrics = &m; c.BatchSize = 7 })
	want := map[string]int64{}
	var wg sync.WaitGroup
	for i := range 4 {
		stream := domain.FlagStream("order", fmt.Sprintf("f%d", i))
		want[stream] = 10
		wg.Add(1)
		go func() { defer wg.Done(); appendN(t, e.store, stream, 0, 10) }()
	}
	wg.Wait()
	if n := pending(t, e); n != 40 {
		t.Fatalf("pending before the relay runs = %d", n)
	}
	stop := start(t, r.Run)
	testkit.WaitFor(t, 15*time.Second, "outbox forwarded", func() bool { return pending(t, e) == 0 })
	stop()
	if m.forwarded.Load() != 40 || m.failed.Load() != 0 {
		t.Fatalf("forwarded %d, failed %d", m.forwarded.Load(), m.failed.Load())
	}

	entries, err := e.client.XRange(ctx, e.bus.DomainStream(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 40 {
		t.Fatalf("domain stream has %d entries, want 40", len(entries))
	}
	last := map[string]int64{}
	for _, en := range entries {
		msg, err := wrs.DefaultMarshallerUnmarshaller{}.Unmarshal(en.Values)
		if err != nil {
			t.Fatal(err)
		}
		var ae postgres.AppendedEvents
		if err := json.Unmarshal(msg.Payload, &ae); err != nil {
			t.Fatal(err)
		}
		if ae.Events[0].Version != last[ae.StreamID]+1 || msg.Metadata.Get(postgres.MetaStreamID) != ae.StreamID ||
			msg.Metadata.Get(postgres.MetaVersion) != fmt.Sprint(ae.LastVersion()) {
			t.Fatalf("out of order or altered: %s after version %d (metadata %v)", msg.Payload, last[ae.StreamID], msg.Metadata)
		}
		last[ae.StreamID] = ae.LastVersion()
	}
	if fmt.Sprint(last) != fmt.Sprint(want) {
		t.Fatalf("last versions %v", last)
	}

	// Forwarded rows are pruned; a row not forwarded yet stays.
	appendN(t, e.store, domain.FlagStream("order", "f0"), 10, 1)
	n, err := r.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var left int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM watermill_outbox`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if n != 40 || left != 1 || pending(t, e) != 1 {
		t.Fatalf("pruned %d, left %d, pending %d", n, left, pending(t, e))
	}
}

// TestRedisDown: while Redis is unreachable for the relay and the projector, appends still commit
// and wait in the outbox; when Redis is back everything is delivered and applied exactly once.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := redistest.NewProxy(t)
	viaProxy := e.bus
	viaProxy.URL = p.URL()

	var rm counters
	var pm projector.Counters
	start(t, newRunner(t, e, viaProxy, &pm).Run)
	start(t, newRelay(t, e, viaProxy, func(c *relay.Config) {
		c.Metrics = &rm
		c.AckDeadline = 300 * time.Millisecond // while Redis is down, re-read the outbox in new transactions
	}).Run)

	a, b, c := domain.FlagStream("down", "a"), domain.FlagStream("down", "b"), domain.FlagStream("down", "c")
	appendN(t, e.store, a, 0, 3)
	appendN(t, e.store, b, 0, 2)
	if err := waitAll(t, e, map[string]int64{a: 3, b: 2}, 15*time.Second); err != nil {
		t.Fatal("before the outage:", err)
	}
	// Through the bus, not only by the runner's catch-up at start.
	testkit.WaitFor(t, 15*time.Second, "outbox drained and delivered", func() bool {
		lags, err := redisstream.StreamLag(context.Background(), e.client, e.bus.DomainStream())
		return pending(t, e) == 0 && err == nil && len(lags) == 1 && lags[0].Consumers == 1 && lags[0].Behind() == 0
	})
	failedBefore := rm.failed.Load()

	t.Log("Redis down")
	p.Cut()
	appendN(t, e.store, a, 3, 4)
	appendN(t, e.store, c, 0, 5)
	appendN(t, e.store, b, 2, 1)
	// The relay tries to publish, and fails, twice (AckDeadline 300 ms): the outage has lasted
	// long enough for an event to arrive had the proxy not cut Redis off.
	testkit.WaitFor(t, 15*time.Second, "the relay failing to publish during the outage", func() bool { return rm.failed.Load() >= failedBefore+2 })
	if err := waitAll(t, e, map[string]int64{c: 1}, 10*time.Millisecond); err == nil {
		t.Fatal("events were applied while Redis was down: the proxy does not cut Redis off")
	}
	if n := pending(t, e); n != 10 {
		t.Fatalf("outbox rows waiting during the outage = %d, want 10", n)
	}
	if rm.failed.Load() == failedBefore {
		t.Fatal("the relay never failed to publish during the outage")
	}

	t.Log("Redis back")
	p.Restore()
	want := map[string]int64{a: 7, b: 3, c: 5}
	if err := waitAll(t, e, want, 20*time.Second); err != nil {
		t.Fatal("after the outage:", err)
	}
	testkit.WaitFor(t, 15*time.Second, "outbox drained", func() bool { return pending(t, e) == 0 })
	checkExactlyOnce(t, e, want)
	if pm.DeadLettered.Load() != 0 {
		t.Fatalf("%d messages dead-lettered", pm.DeadLettered.Load())
	}
	t.Logf("relay: %d forwarded, %d failed publish attempts; projector: %d handled",
		rm.forwarded.Load(), rm.failed.Load(), pm.Handled.Load())
}

type counters struct{ forwarded, failed atomic.Int64 }

func (c *counters) MessageForwarded()   { c.forwarded.Add(1) }
func (c *counters) PublishFailed(error) { c.failed.Add(1) }
