// Package delivery is the experiment role's scheduler of progressive delivery: it applies
// scheduled changes when they are due, advances progressive rollouts step by step, and evaluates
// auto-ops rules, acting through ordinary commands of the application layer (services/app) attributed to the system
// actor ("system:schedule/<id>", "system:rollout/<id>", "system:autoops/<id>") with a reason, so
// every automatic change is an audited event.
//
// # Exactly once
//
// Two mechanisms, so that correctness never rests on the first alone:
//
//   - Leadership: of all the schedulers sharing a database, the one holding a PostgreSQL advisory
//     lock (pg_try_advisory_lock on a dedicated connection, held while leading) works; the others
//     retry every interval. A leader that loses its connection stops at its next tick, and the
//     server releases the lock when the session ends.
//   - Command ids: every flag change is appended with a command id derived from what it does
//     (ScheduledChange.ApplyCommandID, Rollout.StepCommandID, "<rule>:fire:<rule version>"),
//     which the event store records in the append's transaction and refuses to record twice on a
//     stream. Two schedulers that both believe they lead (a partition, a lock released late) race
//     on the same ids: one append wins, the other is refused as a duplicate and treated as done.
//
// # Order of the two appends, and crashes
//
// A change touches two streams, the flag's and the delivery aggregate's, which no single
// transaction spans. The flag's events go first, then the aggregate's outcome (ScheduleApplied,
// RolloutStepApplied, AutoOpsRuleTriggered), both with the same command id. A crash between them
// leaves the change made but not recorded; the next pass finds the command id among the flag's
// events and records the outcome (for a rollout step, decided again against the flag as it was
// just before that append, so the recorded outcome is the one that was applied), without touching
// the flag again. The other order could record a change that never happened.
//
// Auto-ops acts first too (turn off, roll back, pause), then records the firing with its evidence;
// a crash between them leaves the rule armed, the next evaluation fires again on fresh metrics and
// the action's command id (per rule version) makes the action happen once. The action's audit
// entry carries the decision in its reason either way.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/app"
)

// DefaultLockKey is the advisory lock key the schedulers sharing a database elect their leader with.
const DefaultLockKey int64 = 0x76786c_64656c76 // "vxl" "delv"

// Defaults.
const (
	DefaultInterval        = time.Second
	DefaultAutoOpsInterval = 30 * time.Second
	DefaultBatch           = 100
	maxAttempts            = 4
)

// Config configures a Scheduler.
type Config struct {
	App   *app.Application     // runs the commands (give it no consistency wait: nobody reads after these writes)
	Store *postgres.EventStore // loads streams with their metadata (command ids)
	Pool  *pgxpool.Pool        // the read model, the advisory lock and the default metrics source
	// Metrics measures auto-ops rules; nil uses SQLMetrics over the telemetry experiment-unit tables.
	Metrics MetricsSource
	// Clock is the scheduler's notion of now (time.Now when nil): what is due, and the time stamped
	// on outcomes.
	Clock func() time.Time
	// Interval between passes (DefaultInterval when 0); also how often a standby retries the lock.
	Interval time.Duration
	// AutoOpsInterval is how often armed auto-ops rules are measured (DefaultAutoOpsInterval when
	// 0; negative: every pass).
	AutoOpsInterval time.Duration
	LockKey         int64 // DefaultLockKey when 0
	Batch           int   // most items of each kind per pass (DefaultBatch when 0)
	Logger          *slog.Logger
	Registerer      prometheus.Registerer // optional: scheduler metrics
}

// Scheduler applies due progressive-delivery work. Run it in the experiment role; Tick runs one
// pass (tests drive it with a controllable clock).
type Scheduler struct {
	app        *app.Application
	store      *postgres.EventStore
	pool       *pgxpool.Pool
	metrics    MetricsSource
	clock      func() time.Time
	interval   time.Duration
	autoOpsGap time.Duration
	lockKey    int64
	batch      int
	log        *slog.Logger

	mu          sync.Mutex // one pass at a time
	lastAutoOps time.Time
	leading     atomic.Bool

	actions *prometheus.CounterVec
	leader  prometheus.Gauge
	notes   *notifier // guard decisions and notification events (guards.go)
	// guardMeasured is when each rollout's waiting step was last measured (under mu).
	guardMeasured map[string]time.Time

	// crash, when set (tests), is called between the two appends of a change; an error stops
	// there as a crash would.
	crash func(stage, id string) error
}

// New checks cfg and returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.App == nil || cfg.Store == nil || cfg.Pool == nil {
		return nil, errors.New("delivery: New needs an app, an event store and a pool")
	}
	s := &Scheduler{app: cfg.App, store: cfg.Store, pool: cfg.Pool, metrics: cfg.Metrics, clock: cfg.Clock,
		interval: cfg.Interval, autoOpsGap: cfg.AutoOpsInterval, lockKey: cfg.LockKey, batch: cfg.Batch, log: cfg.Logger}
	if s.metrics == nil {
		s.metrics = SQLMetrics{DB: cfg.Pool}
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.autoOpsGap == 0 {
		s.autoOpsGap = DefaultAutoOpsInterval
	}
	if s.lockKey == 0 {
		s.lockKey = DefaultLockKey
	}
	if s.batch <= 0 {
		s.batch = DefaultBatch
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "delivery-scheduler")
	s.actions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_delivery_actions_total",
		Help: "Progressive-delivery actions of the scheduler by kind (schedule, rollout_step, autoops) and outcome."},
		[]string{"kind", "outcome"})
	s.leader = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vexil_delivery_scheduler_leader",
		Help: "1 while this process's delivery scheduler holds the leadership lock."})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.actions); err != nil {
			return nil, fmt.Errorf("delivery: register metrics: %w", err)
		}
		if err := cfg.Registerer.Register(s.leader); err != nil {
			return nil, fmt.Errorf("delivery: register metrics: %w", err)
		}
	}
	notes, err := newNotifier(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.notes = notes
	s.guardMeasured = map[string]time.Time{}
	return s, nil
}

// Leading reports whether this scheduler holds the leadership now.
func (s *Scheduler) Leading() bool { return s.leading.Load() }

// Run elects a leader among the schedulers sharing the database and, while this one leads, runs
// a pass every interval; it returns when ctx ends, releasing the lock. With a pool of one
// connection (a single-session server such as the PGlite test server) it leads without the lock,
// relying on command ids alone.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.pool.Config().MaxConns <= 1 {
		s.log.Warn("pool of one connection: leading without the advisory lock (command ids still make every change happen once)")
		s.lead(ctx, nil)
		return nil
	}
	for ctx.Err() == nil {
		conn, err := s.acquire(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("could not try the leadership lock; retrying", "err", err)
			}
		} else if conn != nil {
			s.log.Info("delivery scheduler is leading")
			s.lead(ctx, conn)
			s.release(conn)
			s.log.Info("delivery scheduler stopped leading")
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.interval):
		}
	}
	return nil
}

// acquire opens a dedicated connection and tries the advisory lock on it; nil without error
// means another scheduler leads.
func (s *Scheduler) acquire(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, s.lockKey).Scan(&got); err != nil || !got {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

func (s *Scheduler) release(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, s.lockKey)
	_ = conn.Close(ctx)
}

func (s *Scheduler) lead(ctx context.Context, conn *pgx.Conn) {
	s.leading.Store(true)
	s.leader.Set(1)
	defer func() { s.leading.Store(false); s.leader.Set(0) }()
	if err := s.Recover(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("recovering unrecorded rollout changes failed", "err", err)
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if conn != nil {
			if err := conn.Ping(ctx); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("lost the connection holding the leadership lock", "err", err)
				}
				return
			}
		}
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("delivery pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Report counts what one pass did.
type Report struct {
	SchedulesApplied int `json:"schedules_applied"`
	SchedulesFailed  int `json:"schedules_failed"`
	StepsApplied     int `json:"steps_applied"`
	RolloutsHalted   int `json:"rollouts_halted"` // paused because a step could not apply
	StepsWaiting     int `json:"steps_waiting"`   // due steps waiting on their guards
	GuardsFired      int `json:"guards_fired"`    // rollouts rolled back or paused by a guard
	ReleaseChanges   int `json:"release_changes"` // release pipeline stage changes recorded
	RulesEvaluated   int `json:"rules_evaluated"`
	RulesFired       int `json:"rules_fired"`
	// ChangeRequestsApplied counts approved change requests applied at their apply_at.
	ChangeRequestsApplied int `json:"change_requests_applied"`
	Errors                int `json:"errors"` // items that failed and will be retried next pass
}

// Tick runs one pass at the scheduler's now, whether or not this scheduler leads: auto-ops rules
// (when AutoOpsInterval has passed), so a bad metric stops a rollout before its next step; then
// due scheduled changes; then due rollout steps. An item that fails is logged and retried on the
// next pass; the error is about finding the work.
func (s *Scheduler) Tick(ctx context.Context) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rep Report
	now := s.clock()
	if s.autoOpsGap < 0 || s.lastAutoOps.IsZero() || now.Sub(s.lastAutoOps) >= s.autoOpsGap {
		s.lastAutoOps = now
		rules, err := delivery.ArmedRules(ctx, s.pool, s.batch)
		if err != nil {
			return rep, err
		}
		for _, ref := range rules {
			rep.RulesEvaluated++
			fired, err := s.evaluateRule(ctx, ref, now)
			s.count(&rep, "autoops", err, fired, func() { rep.RulesFired++ })
		}
	}
	schedules, err := delivery.DueSchedules(ctx, s.pool, now, s.batch)
	if err != nil {
		return rep, err
	}
	for _, ref := range schedules {
		outcome, err := s.resolveSchedule(ctx, ref, now)
		s.count(&rep, "schedule", err, outcome != "", func() {
			if outcome == string(domain.ScheduleStatusApplied) {
				rep.SchedulesApplied++
			} else {
				rep.SchedulesFailed++
			}
		})
		if err == nil && outcome != "" {
			s.actions.WithLabelValues("schedule", outcome).Inc()
		}
	}
	rollouts, err := delivery.DueRollouts(ctx, s.pool, now, s.batch)
	if err != nil {
		return rep, err
	}
	for _, ref := range rollouts {
		res, err := s.advanceRollout(ctx, ref, now)
		s.count(&rep, "rollout_step", err, res != "", func() {
			switch res {
			case "halted":
				rep.RolloutsHalted++
			case "waiting":
				rep.StepsWaiting++
			case "guard_fired":
				rep.GuardsFired++
			default:
				rep.StepsApplied++
			}
		})
		if err == nil && res != "" {
			s.actions.WithLabelValues("rollout_step", res).Inc()
		}
	}
	releases, err := delivery.ActiveReleases(ctx, s.pool, s.batch)
	if err != nil {
		return rep, err
	}
	for _, ref := range releases {
		n, err := s.advanceRelease(ctx, ref, now)
		s.count(&rep, "release", err, n > 0, func() { rep.ReleaseChanges += n })
	}
	// Approved change requests scheduled for now apply through the same command as by hand.
	applied, err := s.app.Commands.ApplyDueChangeRequests(ctx, now)
	rep.ChangeRequestsApplied = applied
	if err != nil {
		return rep, err
	}
	return rep, nil
}

func (s *Scheduler) count(rep *Report, kind string, err error, did bool, add func()) {
	switch {
	case err != nil:
		rep.Errors++
		s.actions.WithLabelValues(kind, "error").Inc()
		s.log.Error("delivery action failed; retrying next pass", "kind", kind, "err", err)
	case did:
		add()
	}
}

// Recover records the outcome of every rollout change that was written to its flag but not to the
// rollout (a crash between the two appends), for all active rollouts. Leadership runs it first.
func (s *Scheduler) Recover(ctx context.Context) error {
	refs, err := delivery.ActiveRollouts(ctx, s.pool, 10*s.batch)
	if err != nil {
		return err
	}
	now := s.clock()
	var errs []error
	for _, ref := range refs {
		if err := s.recoverRollout(ctx, ref, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// commandAppend finds the append that recorded command id cmd among a stream's events: the events
// before it, and the last version it wrote.
func commandAppend(events []domain.RecordedEvent, cmd string) (before []domain.RecordedEvent, version int64, found bool) {
	for i, e := range events {
		if e.Metadata.CommandID != cmd {
			continue
		}
		if !found {
			before, found = events[:i], true
		}
		version = e.Version
	}
	return before, version, found
}

// commandIDs returns the command ids recorded by a stream's events.
func commandIDs(events []domain.RecordedEvent) map[string]bool {
	out := map[string]bool{}
	for _, e := range events {
		if e.Metadata.CommandID != "" {
			out[e.Metadata.CommandID] = true
		}
	}
	return out
}

// reasonText bounds a reason to what the domain accepts.
func reasonText(s string) string { return app.ReasonText(s) }

func (s *Scheduler) crashPoint(stage, id string) error {
	if s.crash == nil {
		return nil
	}
	return s.crash(stage, id)
}
