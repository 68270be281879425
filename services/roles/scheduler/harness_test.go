package scheduler_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/roles/projector"
	"github.com/vexil-flags/vexil/services/roles/scheduler"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clock is a controllable clock shared by schedulers.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// harness is a migrated database with the application layer, the read models the scheduler
// needs (projected on demand, without Redis) and a controllable clock.
type harness struct {
	t      *testing.T
	ctx    context.Context
	url    string
	pool   *pgxpool.Pool
	store  *postgres.EventStore
	app    *app.Application
	runner *projector.Runner
	clock  *clock
	log    *slog.Logger
	start  time.Time
}

const project = "shop"

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	m, err := postgres.NewMigrator(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Up(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	store, err := postgres.NewEventStore(pool, postgres.WithInlineProjections(access.Projection{}), postgres.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Config{Store: store, Pool: pool, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := projector.New(projector.Config{Pool: pool, Store: store, Logger: log, SkipCatchUp: true,
		Projections: []projections.Projection{catalog.Projection{}, delivery.Projection{}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	h := &harness{t: t, ctx: ctx, url: url, pool: pool, store: store, app: a, runner: runner,
		clock: &clock{now: now}, log: log, start: now}
	h.exec(domain.ProjectStream(project), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.CreateProject(project, "Shop", "", []domain.NewEnvironment{{Key: "staging", Name: "Staging"},
			{Key: "production", Name: "Production"}}, app.NewSDKKey)
	})
	return h
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// exec appends what decide makes of a stream's current state (nil for a new stream), as a
// person's command would, and projects the read models. Tests set up states no API command makes
// (a rollout created in the past on the harness's clock), so this is the event store's own flow.
func (h *harness) exec(stream string, decide func(projections.Aggregate) ([]domain.Event, error)) projections.Aggregate {
	h.t.Helper()
	fold := func() (projections.Aggregate, int64) {
		events, err := h.store.Load(h.ctx, stream)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(events) == 0 {
			return nil, 0
		}
		agg, err := projections.Fold(stream, events)
		if err != nil {
			h.t.Fatal(err)
		}
		return agg, events[len(events)-1].Version
	}
	cur, version := fold()
	events, err := decide(cur)
	if err == nil && len(events) > 0 {
		_, err = h.store.Append(h.ctx, stream, version, domain.Metadata{Actor: "token:test", Reason: "test"}, events...)
	}
	if err != nil {
		h.t.Fatalf("command on %s: %v", stream, err)
	}
	h.project()
	agg, _ := fold()
	return agg
}

// project brings the read models up to date (the projector's job in a running platform).
func (h *harness) project() {
	h.t.Helper()
	if err := h.runner.CatchUp(h.ctx, ""); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) catalog() *domain.Catalog {
	h.t.Helper()
	cat, err := h.app.Queries.Catalog(h.ctx, project)
	if err != nil {
		h.t.Fatal(err)
	}
	return cat
}

// createFlag creates a boolean flag, on in production, serving false by default.
func (h *harness) createFlag(key string) *domain.Flag {
	h.t.Helper()
	cat := h.catalog()
	h.exec(domain.FlagStream(project, key), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.CreateFlag(domain.NewFlag{Project: project, Key: key, Name: key, Type: domain.FlagBoolean, Salt: "s-" + key}, cat)
	})
	return h.exec(domain.FlagStream(project, key), func(cur projections.Aggregate) ([]domain.Event, error) {
		f := cur.(*domain.Flag)
		t := f.ConfigFor("production").Targeting
		t.On, t.Default = true, domain.Serve{Variation: "false"}
		return f.UpdateTargeting("production", t, cat)
	}).(*domain.Flag)
}

func (h *harness) flag(key string) (*domain.Flag, []domain.RecordedEvent) {
	h.t.Helper()
	events, err := h.store.Load(h.ctx, domain.FlagStream(project, key))
	if err != nil {
		h.t.Fatal(err)
	}
	f, err := domain.FoldFlag(events)
	if err != nil {
		h.t.Fatal(err)
	}
	return f, events
}

func (h *harness) rollout(id string) (*domain.Rollout, []domain.RecordedEvent) {
	h.t.Helper()
	events, err := h.store.Load(h.ctx, domain.RolloutStream(project, id))
	if err != nil {
		h.t.Fatal(err)
	}
	r, err := domain.FoldRollout(events)
	if err != nil {
		h.t.Fatal(err)
	}
	return r, events
}

func (h *harness) schedule(id string) *domain.ScheduledChange {
	h.t.Helper()
	events, err := h.store.Load(h.ctx, domain.ScheduleStream(project, id))
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := domain.FoldScheduledChange(events)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// createRollout creates a rollout of flag's "true" variation with one step per percent, hourly
// from an hour after the harness's start.
func (h *harness) createRollout(id, flag string, percents ...float64) *domain.Rollout {
	h.t.Helper()
	cat := h.catalog()
	f, _ := h.flag(flag)
	steps := domain.RolloutTemplate(h.start.Add(time.Hour), time.Hour, percents...)
	return h.exec(domain.RolloutStream(project, id), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.CreateRollout(domain.NewRollout{Project: project, ID: id, Flag: flag, Environment: "production",
			Steps: steps}, f, cat, nil, nil, h.start)
	}).(*domain.Rollout)
}

type schedulerOption func(*scheduler.Config)

func withMetrics(m scheduler.MetricsSource) schedulerOption {
	return func(c *scheduler.Config) { c.Metrics = m }
}

// scheduler returns a scheduler on the harness's clock that measures auto-ops rules every pass.
func (h *harness) scheduler(opts ...schedulerOption) *scheduler.Scheduler {
	h.t.Helper()
	cfg := scheduler.Config{App: h.app, Store: h.store, Pool: h.pool, Clock: h.clock.Now, AutoOpsInterval: -1,
		Interval: 20 * time.Millisecond, Logger: h.log}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := scheduler.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// tick runs one pass and projects its results.
func (h *harness) tick(s *scheduler.Scheduler) scheduler.Report {
	h.t.Helper()
	rep, err := s.Tick(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	h.project()
	return rep
}

// defaultWeight returns the share of "true" the flag's production default serves, in buckets.
func defaultWeight(f *domain.Flag) int {
	d := f.ConfigFor("production").Targeting.Default
	switch {
	case d.Split != nil:
		for _, w := range d.Split.Variations {
			if w.Variation == "true" {
				return w.Weight
			}
		}
		return 0
	case d.Variation == "true":
		return domain.BucketCount
	}
	return 0
}

func eventTypes(events []domain.RecordedEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

func countType(events []domain.RecordedEvent, typ string) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}
