package projector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
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
	if _, err := pool.Exec(context.Background(), `CREATE TABLE test_applied (
		projection text NOT NULL, stream_id text NOT NULL, version bigint NOT NULL, history int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	bus := redisstream.Config{URL: redistest.URL(), Prefix: redistest.NewPrefix(t), Logger: testLogger(),
		NackResendSleep: 50 * time.Millisecond, BlockTime: 100 * time.Millisecond}
	return env{pool: pool, store: store, bus: bus, client: redistest.NewClient(t)}
}

// counting is a test projection: one row per applied event, with the length of the history it
// was given. failOn makes it fail on one stream.
type counting struct {
	name   string
	failOn string
}

func (p counting) Name() string { return p.name }

func (p counting) Apply(ctx context.Context, tx pgx.Tx, history, newEvents []domain.RecordedEvent) error {
	if newEvents[0].StreamID == p.failOn {
		return errors.New("this projection cannot handle " + p.failOn)
	}
	for i, e := range newEvents {
		if e.Version != int64(len(history)+i+1) {
			return fmt.Errorf("event %s@%d after %d history events", e.StreamID, e.Version, len(history))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO test_applied VALUES ($1, $2, $3, $4)`,
			p.name, e.StreamID, e.Version, len(history)+i); err != nil {
			return err
		}
	}
	return nil
}

func newRunner(t *testing.T, e env, m projector.Metrics, onApplied func(string, int64), ps ...projections.Projection) *projector.Runner {
	t.Helper()
	sub, err := redisstream.NewSubscriber(e.bus, e.bus.Group(projector.Role))
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := redisstream.NewPublisher(e.bus)
	if err != nil {
		t.Fatal(err)
	}
	r, err := projector.New(projector.Config{
		Pool: e.pool, Store: e.store, Projections: ps,
		Subscriber: sub, Topic: e.bus.DomainStream(),
		DeadLetter: dlq, DeadLetterTopic: e.bus.DeadLetterStream(),
		MaxAttempts: 2, OnApplied: onApplied, Metrics: m, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newDirectRunner returns a runner without a bus, driven by ApplyStream and CatchUp (replay).
func newDirectRunner(t *testing.T, e env, onApplied func(string, int64), ps ...projections.Projection) *projector.Runner {
	t.Helper()
	r, err := projector.New(projector.Config{Pool: e.pool, Store: e.store, Projections: ps, OnApplied: onApplied, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs fn in the background until the test ends (or stop is called) and checks it returns nil.
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

func startRelay(t *testing.T, e env, bus redisstream.Config) {
	t.Helper()
	pub, err := redisstream.NewPublisher(bus)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Pool: e.pool, Publisher: pub, Topic: bus.DomainStream(),
		PollInterval: 20 * time.Millisecond, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	start(t, r.Run)
}

func toggled(on bool) domain.Event { return &domain.FlagToggled{Environment: "production", On: on} }

// appendN appends n single-event appends to stream, after version from.
func appendN(t *testing.T, s *postgres.EventStore, stream string, from, n int64) {
	t.Helper()
	for v := from; v < from+n; v++ {
		if _, err := s.Append(context.Background(), stream, v, domain.Metadata{Actor: "test"}, toggled(v%2 == 0)); err != nil {
			t.Error(err)
			return
		}
	}
}

// checkExactlyOnce checks projection applied every event of every stream once, in order.
func checkExactlyOnce(t *testing.T, e env, projection string, want map[string]int64) {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT stream_id, count(*), count(DISTINCT version), max(version),
		bool_and(history = version - 1) FROM test_applied WHERE projection = $1 GROUP BY stream_id`, projection)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var stream string
		var n, distinct, maxV int64
		var historyOK bool
		if err := rows.Scan(&stream, &n, &distinct, &maxV, &historyOK); err != nil {
			t.Fatal(err)
		}
		if n != distinct || n != maxV || !historyOK {
			t.Errorf("%s on %s: %d rows, %d distinct versions, max %d, history ok %v", projection, stream, n, distinct, maxV, historyOK)
		}
		got[stream] = n
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s applied %v, want %v", projection, got, want)
	}
}

func waitAll(t *testing.T, e env, want map[string]int64, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for stream, v := range want {
		if err := projector.WaitFor(ctx, e.pool, stream, v, names); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEndToEnd: appends on several streams go through the outbox, the relay and the domain
// stream to two runner instances sharing the consumer group; every event is applied exactly once
// by each projection, and redelivered messages change nothing.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var counters1, counters2 projector.Counters
	var mu sync.Mutex
	applied := map[string]int64{}
	onApplied := func(stream string, v int64) {
		mu.Lock()
		defer mu.Unlock()
		applied[stream] = max(applied[stream], v)
	}
	ps := []projections.Projection{counting{name: "alpha"}, counting{name: "beta"}}
	start(t, newRunner(t, e, &counters1, onApplied, ps...).Run)
	start(t, newRunner(t, e, &counters2, onApplied, ps...).Run)
	startRelay(t, e, e.bus)

	want := map[string]int64{}
	var wg sync.WaitGroup
	for i := range 6 {
		stream := domain.FlagStream("e2e", fmt.Sprintf("flag-%d", i))
		want[stream] = int64(4 + i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			appendN(t, e.store, stream, 0, int64(4+i))
		}()
	}
	// A multi-event append too.
	multi := domain.SegmentStream("e2e", "beta-users")
	if _, err := e.store.Append(context.Background(), multi, 0, domain.Metadata{}, toggled(true), toggled(false), toggled(true)); err != nil {
		t.Fatal(err)
	}
	want[multi] = 3
	wg.Wait()

	waitAll(t, e, want, "alpha", "beta")
	checkExactlyOnce(t, e, "alpha", want)
	checkExactlyOnce(t, e, "beta", want)
	testkit.WaitFor(t, 15*time.Second, "OnApplied for every stream", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(applied) == fmt.Sprint(want)
	})
	if n := counters1.Handled.Load() + counters2.Handled.Load(); n == 0 {
		t.Fatal("no message handled")
	}

	// Redeliver: publish every message of the domain stream again.
	// The projector fills version gaps from the store, so projections can be complete
	// while the relay is still publishing: wait for the relay, then check it published
	// exactly one message per append, never more.
	ctx := context.Background()
	const appends = 6*4 + 15 + 1
	testkit.WaitFor(t, 15*time.Second, "relay published every append", func() bool {
		n, err := e.client.XLen(ctx, e.bus.DomainStream()).Result()
		return err == nil && n >= appends
	})
	entries, err := e.client.XRange(ctx, e.bus.DomainStream(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != appends {
		t.Fatalf("domain stream has %d messages, want one per append (%d)", len(entries), appends)
	}
	handledBefore := counters1.Handled.Load() + counters2.Handled.Load()
	for _, en := range entries {
		if err := e.client.XAdd(ctx, &redis.XAddArgs{Stream: e.bus.DomainStream(), Values: en.Values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 15*time.Second, "redelivered messages handled", func() bool {
		return counters1.Handled.Load()+counters2.Handled.Load() >= handledBefore+int64(len(entries))
	})
	// And drive the runner directly, as replay does.
	r := newDirectRunner(t, e, nil, ps...)
	if err := r.CatchUp(ctx, ""); err != nil {
		t.Fatal(err)
	}
	for stream := range want {
		if err := r.ApplyStream(ctx, stream); err != nil {
			t.Fatal(err)
		}
	}
	checkExactlyOnce(t, e, "alpha", want)
	checkExactlyOnce(t, e, "beta", want)
	if n := counters1.Failed.Load() + counters2.Failed.Load(); n != 0 {
		t.Errorf("%d failures", n)
	}
	// Handled is counted before the ack reaches Redis: wait for the acks.
	testkit.WaitFor(t, 15*time.Second, "every message acked by the two consumers", func() bool {
		lags, err := redisstream.StreamLag(ctx, e.client, e.bus.DomainStream())
		return err == nil && len(lags) == 1 && lags[0].Group == e.bus.Group(projector.Role) &&
			lags[0].Behind() == 0 && lags[0].Consumers == 2
	})
}

// TestPoisonMessages: entries that cannot be unmarshalled or decoded, and a message a projection
// keeps failing on, go to the dead-letter stream; the messages after them are still processed.
func TestPoisonMessages(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	var counters projector.Counters
	broken := domain.FlagStream("poison", "broken")
	start(t, newRunner(t, e, &counters, nil, counting{name: "gamma", failOn: broken}).Run)

	domainStream := e.bus.DomainStream()
	// Not a watermill message at all (no uuid field).
	if err := e.client.XAdd(ctx, &redis.XAddArgs{Stream: domainStream, Values: map[string]any{"garbage": "yes"}}).Err(); err != nil {
		t.Fatal(err)
	}
	// Watermill messages whose payload is not a notification.
	pub, err := redisstream.NewPublisher(e.bus)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, payload := range []string{"not json", `{"events": []}`} {
		if err := pub.Publish(domainStream, message.NewMessage("bad-"+payload[:3], []byte(payload))); err != nil {
			t.Fatal(err)
		}
	}
	// A stream the projection fails on, then healthy streams, through the real relay.
	if _, err := e.store.Append(ctx, broken, 0, domain.Metadata{}, toggled(true)); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for i := range 3 {
		stream := domain.FlagStream("poison", fmt.Sprintf("ok-%d", i))
		appendN(t, e.store, stream, 0, 2)
		want[stream] = 2
	}
	startRelay(t, e, e.bus)

	waitAll(t, e, want, "gamma")
	checkExactlyOnce(t, e, "gamma", want)
	testkit.WaitFor(t, 15*time.Second, "four dead letters", func() bool { return counters.DeadLettered.Load() == 4 })

	entries, err := e.client.XRange(ctx, e.bus.DeadLetterStream(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("dead-letter stream has %d entries, want 4", len(entries))
	}
	var reasons []string
	for _, en := range entries {
		msg, err := wrs.DefaultMarshallerUnmarshaller{}.Unmarshal(en.Values)
		if err != nil {
			t.Fatalf("dead letter %v: %v", en.Values, err)
		}
		reason := msg.Metadata.Get(middleware.ReasonForPoisonedKey)
		if reason == "" || msg.Metadata.Get(middleware.PoisonedTopicKey) != domainStream {
			t.Errorf("dead letter metadata %v", msg.Metadata)
		}
		reasons = append(reasons, reason)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"undecodable", "decode message", "names no stream", "cannot handle " + broken} {
		if !strings.Contains(all, want) {
			t.Errorf("no dead letter for %q in:\n%s", want, all)
		}
	}
	testkit.WaitFor(t, 15*time.Second, "nothing pending", func() bool {
		lags, err := redisstream.StreamLag(ctx, e.client, domainStream)
		return err == nil && len(lags) == 1 && lags[0].Behind() == 0
	})
	if n, _ := redisstream.StreamLength(ctx, e.client, e.bus.DeadLetterStream()); n != 4 {
		t.Errorf("dead-letter length %d", n)
	}
}

// TestApplyStreamConcurrently: many callers applying the same stream while it grows apply every
// event once.
func TestApplyStreamConcurrently(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	r := newDirectRunner(t, e, nil, counting{name: "delta"}, counting{name: "epsilon"})
	stream := domain.FlagStream("conc", "f")
	var wg sync.WaitGroup
	stopApply := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopApply:
					return
				default:
				}
				if err := r.ApplyStream(ctx, stream); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	appendN(t, e.store, stream, 0, 30)
	close(stopApply)
	wg.Wait()
	if err := r.ApplyStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{stream: 30}
	checkExactlyOnce(t, e, "delta", want)
	checkExactlyOnce(t, e, "epsilon", want)
}

// TestCatchUpAndWaitFor: CatchUp applies only streams some projection is behind on; WaitFor
// returns when the checkpoints are reached and fails when its context ends first.
func TestCatchUpAndWaitFor(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	appendN(t, e.store, domain.FlagStream("p1", "a"), 0, 3)
	appendN(t, e.store, domain.FlagStream("p2", "b"), 0, 2)

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := projector.WaitFor(short, e.pool, domain.FlagStream("p1", "a"), 3, []string{"zeta"})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor before catch-up = %v", err)
	}

	var mu sync.Mutex
	var calls []string
	r := newDirectRunner(t, e, func(s string, v int64) {
		mu.Lock()
		calls = append(calls, fmt.Sprintf("%s@%d", s, v))
		mu.Unlock()
	}, counting{name: "zeta"})
	if err := r.CatchUp(ctx, "flag/p1/"); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, e, "zeta", map[string]int64{"flag/p1/a": 3})
	if err := r.CatchUp(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(ctx, ""); err != nil { // nothing left: no calls
		t.Fatal(err)
	}
	if fmt.Sprint(calls) != "[flag/p1/a@3 flag/p2/b@2]" {
		t.Fatalf("OnApplied calls %v", calls)
	}
	waitAll(t, e, map[string]int64{"flag/p1/a": 3, "flag/p2/b": 2}, "zeta")
	if err := projector.WaitFor(ctx, e.pool, "flag/p2/b", 2, nil); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, e, "zeta", map[string]int64{"flag/p1/a": 3, "flag/p2/b": 2})
}
