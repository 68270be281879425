package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/projections/changerequests"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/projections/rulesets"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
)

// Meta says who runs a command, why and through what, and how it may be repeated. It becomes the
// metadata of every event the command appends (the audit log shows it).
type Meta struct {
	// Actor is who acts: "token:<id>" for a person's API token, "system:<aggregate>" for the
	// scheduler, "trigger:<id>" for a webhook.
	Actor string
	// Reason is why (X-Vexil-Reason, or the system's explanation); cut to MaxReasonLength.
	Reason string
	// RequestID is the request the command came through, when it came through one.
	RequestID string
	// CommandID makes the command happen at most once per stream: the event store records it in
	// the append's transaction and refuses it a second time (IsDuplicateCommand).
	CommandID string
	// Expected is the version of the command's aggregate the caller last saw (If-Match): a
	// command on a stream that moved since is a conflict (409). Nil: whatever version is current.
	Expected *int64
	// Retries is how many times a command with no expected version is decided again on the new
	// state after an optimistic-concurrency conflict (another writer appended between the load
	// and the append). People get the conflict and reload (0); the system's actors retry.
	Retries int

	// waits, when set, collects the command's appends instead of waiting after each: a command
	// that appends to two streams (a flag and its rollout or trigger) waits once, at its end, for
	// both (see oneWait).
	waits *waits

	// applying is the change request whose approved change this command carries out: it passes
	// the four-eyes gate (set only by ApplyChangeRequest).
	applying string
}

// MaxReasonLength bounds a reason in bytes, as the event store's metadata column does.
const MaxReasonLength = 1000

// Version returns a pointer to v, for Meta.Expected.
func Version(v int64) *int64 { return &v }

// metadata is the events' metadata for m.
func (m Meta) metadata() domain.Metadata {
	reason := m.Reason
	if len(reason) > MaxReasonLength {
		// Cut at a character boundary: half a UTF-8 sequence could not be stored.
		cut := MaxReasonLength
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	return domain.Metadata{Actor: m.Actor, Reason: reason, RequestID: m.RequestID, CommandID: m.CommandID}
}

// ReasonText bounds a system actor's reason to what the domain accepts (1000 characters),
// ending a cut one with an ellipsis.
func ReasonText(s string) string {
	const limit = 1000
	s = strings.ToValidUTF8(s, "?")
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit-1]) + "…"
}

// aggregate is a domain aggregate T folded through its pointer PT: load and execute are generic
// over it, so callers get *domain.Flag, *domain.Rollout... and never assert a type.
type aggregate[T any] interface {
	*T
	projections.Aggregate
}

// core is the one implementation of load, fold, decide, append and wait.
type core struct {
	store *postgres.EventStore
	pool  *pgxpool.Pool
	log   *slog.Logger
	wait  time.Duration
	now   func() time.Time
	// await waits for the named read models to reach a stream's version (projector.WaitFor on
	// pool unless Config.AwaitReadModels replaces it).
	await func(ctx context.Context, streamID string, version int64, projections []string) error
	// infos holds the catalog entries already decoded (Queries.Catalog), shared by the copies
	// WithConsistencyWaitAtLeast makes.
	infos *catalogCache
}

// fold folds events into a fresh T.
func fold[T any, PT aggregate[T]](streamID string, events []domain.RecordedEvent) (PT, error) {
	agg := PT(new(T))
	for _, e := range events {
		if err := agg.ApplyRecorded(e); err != nil {
			return nil, fmt.Errorf("app: fold %s v%d: %w", streamID, e.Version, err)
		}
	}
	return agg, nil
}

// load folds streamID; nil and version 0 when the stream has no events.
func load[T any, PT aggregate[T]](ctx context.Context, c *core, streamID string) (PT, int64, error) {
	events, err := c.store.Load(ctx, streamID)
	if err != nil || len(events) == 0 {
		return nil, 0, err
	}
	agg, err := fold[T, PT](streamID, events)
	if err != nil {
		return nil, 0, err
	}
	return agg, events[len(events)-1].Version, nil
}

// mustLoad is load with ENotFound (naming what) for a stream that has no events.
func mustLoad[T any, PT aggregate[T]](ctx context.Context, c *core, streamID, what string) (PT, int64, error) {
	agg, v, err := load[T, PT](ctx, c, streamID)
	if err == nil && agg == nil {
		err = domain.Errorf(domain.ENotFound, "%s not found", what)
	}
	return agg, v, err
}

// decision turns the current state (nil for a stream with no events) into new events.
type decision[PT any] func(current PT) ([]domain.Event, error)

// execute runs one command on streamID: load and fold, check the expected version, decide, append
// with optimistic concurrency and the command id, fold the new events in, and wait for the read
// models. It returns the state after the command and its version. A decision that returns no
// events changes nothing and appends nothing. With no expected version, a conflict is decided
// again on the new state up to m.Retries times.
func execute[T any, PT aggregate[T]](ctx context.Context, c *core, streamID string, m Meta, decide decision[PT]) (PT, int64, error) {
	for attempt := 0; ; attempt++ {
		agg, version, err := executeOnce[T, PT](ctx, c, streamID, m, decide)
		if err != nil && m.Expected == nil && attempt < m.Retries && IsVersionConflict(err) {
			continue
		}
		return agg, version, err
	}
}

func executeOnce[T any, PT aggregate[T]](ctx context.Context, c *core, streamID string, m Meta, decide decision[PT]) (PT, int64, error) {
	events, err := c.store.Load(ctx, streamID)
	if err != nil {
		return nil, 0, err
	}
	var current PT
	var version int64
	if len(events) > 0 {
		if current, err = fold[T, PT](streamID, events); err != nil {
			return nil, 0, err
		}
		version = events[len(events)-1].Version
	}
	if m.Expected != nil && *m.Expected != version {
		return nil, 0, conflict(*m.Expected, version)
	}
	newEvents, err := decide(current)
	if err != nil {
		return nil, 0, err
	}
	if len(newEvents) == 0 {
		return current, version, nil
	}
	recorded, err := c.store.Append(ctx, streamID, version, m.metadata(), newEvents...)
	if err != nil {
		return nil, 0, err
	}
	if current == nil {
		current = PT(new(T))
	}
	for _, r := range recorded {
		if err := current.ApplyRecorded(r); err != nil {
			return nil, 0, fmt.Errorf("app: fold %s v%d: %w", streamID, r.Version, err)
		}
	}
	last := recorded[len(recorded)-1].Version
	if m.waits != nil {
		m.waits.targets = append(m.waits.targets, waitTarget{streamID, last})
	} else {
		c.awaitReadModels(ctx, waitTarget{streamID, last})
	}
	return current, last, nil
}

// existing runs decide on the aggregate of streamID, which must exist (notFound otherwise).
func existing[T any, PT aggregate[T]](ctx context.Context, c *core, streamID string, m Meta, notFound func() error,
	decide func(PT) ([]domain.Event, error)) (PT, int64, error) {
	return execute(ctx, c, streamID, m, func(cur PT) ([]domain.Event, error) {
		if cur == nil {
			return nil, notFound()
		}
		return decide(cur)
	})
}

// record appends events an aggregate already decided (the outcome of a change to its flag) at
// the version it decided them from.
func record[T any, PT aggregate[T]](ctx context.Context, c *core, streamID string, version int64, m Meta, events []domain.Event) error {
	m.Expected = Version(version)
	_, _, err := execute(ctx, c, streamID, m, func(PT) ([]domain.Event, error) { return events, nil })
	return err
}

// notFound returns the ENotFound error of a missing aggregate.
func notFound(format string, args ...any) func() error {
	return func() error { return domain.Errorf(domain.ENotFound, format, args...) }
}

// conflict is the answer to a stale expected version.
func conflict(expected, current int64) error {
	return &domain.Error{Code: domain.EConflict,
		Message: fmt.Sprintf("version %d was expected but the current version is %d; reload and retry", expected, current),
		Details: map[string]any{"current_version": current}}
}

// waitedProjections are the asynchronous read models every write waits for; deliveryKinds'
// writes wait for the delivery read model too, which their lists (and the webhook's project
// lookup) read.
var (
	waitedProjections    = []string{catalog.Name, rulesets.Name, audit.Name}
	deliveryWaited       = []string{catalog.Name, rulesets.Name, audit.Name, delivery.Name}
	changeRequestsWaited = []string{audit.Name, changerequests.Name}
	deliveryKinds        = map[string]bool{"schedule": true, "rollout": true, "autoops": true, "trigger": true, "pipeline": true, "release": true}
)

// waitTarget is a stream version a command waits for the read models to reach.
type waitTarget struct {
	stream  string
	version int64
}

// waits collects the appends of one command (Meta.waits).
type waits struct{ targets []waitTarget }

// oneWait makes the commands run with m collect their appends; the returned function then waits
// for all of them within one ConsistencyWait. Commands that append to two streams use it, so a
// write never waits twice the documented bound (issue 20: an abort waited for the flag, then for
// the rollout).
func (c *core) oneWait(m *Meta) (wait func(context.Context)) {
	w := &waits{}
	m.waits = w
	return func(ctx context.Context) { c.awaitReadModels(ctx, w.targets...) }
}

// awaitReadModels gives read-your-writes to clients that write then list: it waits for the read
// models to reach every target, all within one ConsistencyWait. It never fails the
// command, which is already committed: if the read models lag (Redis down, projector stopped),
// the answer goes out and the read models catch up later.
func (c *core) awaitReadModels(ctx context.Context, targets ...waitTarget) {
	if c.wait <= 0 || len(targets) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	for _, t := range targets {
		if t.version <= 0 {
			continue
		}
		names := waitedProjections
		if deliveryKinds[domain.StreamKind(t.stream)] {
			names = deliveryWaited
		}
		if domain.StreamKind(t.stream) == "changerequest" {
			names = changeRequestsWaited
		}
		if err := c.await(wctx, t.stream, t.version, names); err != nil {
			c.log.Warn("read models lag behind a committed write", "stream", t.stream, "version", t.version, "err", err)
			return // the one budget is spent: the later targets would only log the same
		}
	}
}
