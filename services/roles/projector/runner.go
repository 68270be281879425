// Package projector is the `projector` role: it keeps the read models (projections) up to date
// from the domain stream.
//
// A message on the domain stream is only a notification that a stream changed: the runner always
// reads the events from the event store, so lost, duplicated or reordered messages cannot leave
// a gap. For each projection, in one transaction, it locks the projection's checkpoint row for the
// stream, applies the events after the checkpoint and advances it. Redelivery therefore changes
// nothing, and several runner instances (sharing the consumer group "<prefix>-projector") can
// work on the same stream at once without applying anything twice.
package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/adapters/resubscribe"
)

// Role is the name of this role, and the suffix of its consumer group (redisstream.Config.Group).
const Role = "projector"

// Metrics receives the runner's counts; implement it with Prometheus counters. Methods must be
// safe for concurrent use. Counters implements it for tests and expvar-style use.
type Metrics interface {
	MessageHandled()      // a message was handled (applied, or already applied) and acked
	MessageFailed(error)  // one attempt at a message failed; it is retried or dead-lettered
	MessageDeadLettered() // a message went to the dead-letter stream
	EventsApplied(projection string, n int)
}

// Counters is a Metrics made of atomic counters.
type Counters struct {
	Handled, Failed, DeadLettered, Applied atomic.Int64
}

func (c *Counters) MessageHandled()               { c.Handled.Add(1) }
func (c *Counters) MessageFailed(error)           { c.Failed.Add(1) }
func (c *Counters) MessageDeadLettered()          { c.DeadLettered.Add(1) }
func (c *Counters) EventsApplied(_ string, n int) { c.Applied.Add(int64(n)) }

// Config configures a Runner.
type Config struct {
	Pool        *pgxpool.Pool
	Store       *postgres.EventStore
	Projections []projections.Projection
	// Subscriber to Topic (redisstream.Config.DomainStream()) in the consumer group
	// redisstream.Config.Group(projector.Role); DeadLetter publishes to DeadLetterTopic
	// (redisstream.Config.DeadLetterStream()). Needed by Run only (ApplyStream and CatchUp work
	// without them). Run closes both when it returns.
	Subscriber      message.Subscriber
	Topic           string
	DeadLetter      message.Publisher
	DeadLetterTopic string
	// MaxAttempts at a message failing with a non-transient error before it is dead-lettered.
	// Default 5. Transient errors (database down) are retried until they stop.
	MaxAttempts int
	// OnApplied, if set, is called after a message was handled, with the stream and the version
	// every projection has reached (e.g. to push changes to SDK connections). It must not block.
	OnApplied func(streamID string, version int64)
	// SkipCatchUp disables the catch-up Run does before consuming (every stream some
	// projection is behind on, e.g. after messages were trimmed or dead-lettered, or a projection
	// was added).
	SkipCatchUp bool
	Metrics     Metrics
	Logger      *slog.Logger
}

// Runner applies projections. Create it with New.
type Runner struct {
	cfg   Config
	names []string
	log   *slog.Logger
}

// New validates cfg and returns a runner.
func New(cfg Config) (*Runner, error) {
	switch {
	case cfg.Pool == nil:
		return nil, errors.New("projector: nil pool")
	case cfg.Store == nil:
		return nil, errors.New("projector: nil event store")
	case len(cfg.Projections) == 0:
		return nil, errors.New("projector: no projections")
	}
	seen := map[string]bool{}
	names := make([]string, len(cfg.Projections))
	for i, p := range cfg.Projections {
		if p == nil || p.Name() == "" {
			return nil, fmt.Errorf("projector: projection %d has no name", i)
		}
		if seen[p.Name()] {
			return nil, fmt.Errorf("projector: projection %q registered twice", p.Name())
		}
		seen[p.Name()] = true
		names[i] = p.Name()
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{cfg: cfg, names: names, log: cfg.Logger.With("role", Role)}, nil
}

// Run catches up (unless SkipCatchUp), then consumes the domain stream until ctx is canceled,
// and returns nil then. If the bus is unreachable (at start or later) it keeps retrying with
// backoff; it returns an error only for a configuration mistake. It closes the subscriber and
// the dead-letter publisher on return.
func (r *Runner) Run(ctx context.Context) error {
	if r.cfg.Subscriber == nil || r.cfg.Topic == "" || r.cfg.DeadLetter == nil || r.cfg.DeadLetterTopic == "" {
		return errors.New("projector: Run needs Subscriber, Topic, DeadLetter and DeadLetterTopic")
	}
	defer func() {
		if err := r.cfg.Subscriber.Close(); err != nil {
			r.log.Warn("close subscriber", "err", err)
		}
		if err := r.cfg.DeadLetter.Close(); err != nil {
			r.log.Warn("close dead-letter publisher", "err", err)
		}
	}()
	dead, err := redisstream.DeadLetter(redisstream.DeadLetterConfig{
		Publisher:   r.cfg.DeadLetter,
		Topic:       r.cfg.DeadLetterTopic,
		MaxAttempts: r.cfg.MaxAttempts,
		Retryable:   postgres.IsTransient,
		OnDeadLetter: func(*message.Message, error) {
			if r.cfg.Metrics != nil {
				r.cfg.Metrics.MessageDeadLettered()
			}
		},
		Logger: r.log,
	})
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	if !r.cfg.SkipCatchUp {
		// Before consuming, so a restarted projector repairs what it missed; concurrent
		// instances doing the same is safe (checkpoint locks).
		if err := r.CatchUp(ctx, ""); err != nil && ctx.Err() == nil {
			r.log.Warn("catch-up failed; continuing with the stream", "err", err)
		}
	}
	r.log.Info("projector started", "stream", r.cfg.Topic, "projections", r.names)
	resubscribe.Loop(ctx, r.log, "domain stream subscription ended; resubscribing", "projector stopped",
		func(ctx context.Context) error { return r.consume(ctx, dead) })
	return nil
}

// consume runs one router over the subscription until ctx ends or the subscription fails.
func (r *Runner) consume(ctx context.Context, dead message.HandlerMiddleware) error {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, watermill.NewSlogLogger(r.log))
	if err != nil {
		return err
	}
	h := router.AddConsumerHandler(Role, r.cfg.Topic, r.cfg.Subscriber, r.handle)
	h.AddMiddleware(dead)
	return router.Run(ctx)
}

// handle processes one domain-stream message.
func (r *Runner) handle(msg *message.Message) error {
	var n struct {
		StreamID string `json:"stream_id"`
		Events   []struct {
			Version int64 `json:"version"`
		} `json:"events"`
	}
	if err := json.Unmarshal(msg.Payload, &n); err != nil {
		return r.failed(redisstream.Permanent(fmt.Errorf("projector: decode message %s: %w", msg.UUID, err)))
	}
	if n.StreamID == "" {
		return r.failed(redisstream.Permanent(fmt.Errorf("projector: message %s names no stream", msg.UUID)))
	}
	var hint int64
	if len(n.Events) > 0 {
		hint = n.Events[len(n.Events)-1].Version
	} else if v, err := strconv.ParseInt(msg.Metadata.Get(postgres.MetaVersion), 10, 64); err == nil {
		hint = v
	}
	ctx := msg.Context()
	if hint > 0 {
		// A redelivered or already-caught-up notification costs one query.
		done, err := r.reached(ctx, n.StreamID, hint)
		if err != nil {
			return r.failed(err)
		}
		if done {
			r.handled(n.StreamID, hint)
			return nil
		}
	}
	version, err := r.applyStream(ctx, n.StreamID)
	if err != nil {
		return r.failed(err)
	}
	r.handled(n.StreamID, version)
	return nil
}

func (r *Runner) failed(err error) error {
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.MessageFailed(err)
	}
	return err
}

func (r *Runner) handled(streamID string, version int64) {
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.MessageHandled()
	}
	if r.cfg.OnApplied != nil {
		r.cfg.OnApplied(streamID, version)
	}
}

// StreamRecovered repairs what a Redis incident may have lost: the domain stream's notifications
// that the projector had not consumed yet (Redis restarted without its data, a flush, a failover
// to a replica behind). It catches up every stream some projection is behind on, from the event
// store, the record. Wire it as the subscriber's redisstream.OnRecovered hook.
func (r *Runner) StreamRecovered(ctx context.Context) {
	start := time.Now()
	if err := r.CatchUp(ctx, ""); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("catch-up after the domain stream's recovery failed; each stream is repaired by its next notification, or at the next start",
				"err", err)
		}
		return
	}
	r.log.Info("caught up from the event store after the domain stream's recovery", "took", time.Since(start).Round(time.Millisecond))
}

// reached reports whether every projection's checkpoint for streamID is at version or beyond.
func (r *Runner) reached(ctx context.Context, streamID string, version int64) (bool, error) {
	var n int
	err := r.cfg.Pool.QueryRow(ctx, `SELECT count(*) FROM projection_checkpoints
		WHERE stream_id = $1 AND projection = ANY($2) AND version >= $3`, streamID, r.names, version).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("projector: read checkpoints of %s: %w", streamID, err)
	}
	return n == len(r.names), nil
}

// ApplyStream brings every projection up to date with streamID, reading the stream from the event
// store. It is idempotent and safe to run concurrently with itself and with Run.
func (r *Runner) ApplyStream(ctx context.Context, streamID string) error {
	_, err := r.applyStream(ctx, streamID)
	return err
}

// applyStream returns the stream's last version, which every projection has now reached.
func (r *Runner) applyStream(ctx context.Context, streamID string) (int64, error) {
	// Events are immutable and versions contiguous, so one read serves every projection: a
	// checkpoint beyond what was read means another instance applied newer events; skip.
	events, err := r.cfg.Store.LoadAfter(ctx, r.cfg.Pool, streamID, 0)
	if err != nil {
		return 0, err
	}
	if len(events) == 0 {
		return 0, nil
	}
	last := events[len(events)-1].Version
	for _, p := range r.cfg.Projections {
		n, err := r.applyProjection(ctx, p, streamID, events)
		if err != nil {
			return 0, err
		}
		if n > 0 && r.cfg.Metrics != nil {
			r.cfg.Metrics.EventsApplied(p.Name(), n)
		}
	}
	return last, nil
}

// applyProjection applies events (the whole stream, versions 1..N) to p after p's checkpoint, in
// one transaction with the checkpoint's advance, and returns how many events it applied.
func (r *Runner) applyProjection(ctx context.Context, p projections.Projection, streamID string, events []domain.RecordedEvent) (int, error) {
	last := events[len(events)-1].Version
	var applied int
	err := pgx.BeginFunc(ctx, r.cfg.Pool, func(tx pgx.Tx) error {
		// The row must exist for FOR UPDATE to lock anything; DO NOTHING waits for a concurrent
		// insert of the same row and then sees it.
		if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (projection, stream_id, version)
			VALUES ($1, $2, 0) ON CONFLICT DO NOTHING`, p.Name(), streamID); err != nil {
			return err
		}
		var checkpoint int64
		if err := tx.QueryRow(ctx, `SELECT version FROM projection_checkpoints
			WHERE projection = $1 AND stream_id = $2 FOR UPDATE`, p.Name(), streamID).Scan(&checkpoint); err != nil {
			return err
		}
		if checkpoint >= last {
			return nil
		}
		if checkpoint < 0 || events[checkpoint].Version != checkpoint+1 {
			return fmt.Errorf("stream %s is not contiguous at version %d", streamID, checkpoint+1)
		}
		history, newEvents := events[:checkpoint], events[checkpoint:]
		if err := p.Apply(ctx, tx, history, newEvents); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET version = $3, updated_at = now()
			WHERE projection = $1 AND stream_id = $2`, p.Name(), streamID, last); err != nil {
			return err
		}
		// Writers waiting for this read model (WaitFor) look again at commit rather than at
		// their next poll.
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, postgres.NotifyCheckpoint, streamID); err != nil {
			return err
		}
		applied = len(newEvents)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("projector: %s on %s: %w", p.Name(), streamID, err)
	}
	return applied, nil
}

// CatchUp applies every stream whose id starts with prefix ("" for all) on which some projection
// is behind the event store (missing checkpoint, or checkpoint below the stream's version). It is
// what a restarted projector runs before consuming, and what replay or an operator runs after
// fixing a dead-lettered failure. It stops at the first error.
func (r *Runner) CatchUp(ctx context.Context, prefix string) error {
	rows, err := r.cfg.Pool.Query(ctx, `
		SELECT e.stream_id
		FROM (SELECT stream_id, max(version) AS version FROM events
		      WHERE starts_with(stream_id, $1) GROUP BY stream_id) e
		WHERE EXISTS (
		  SELECT 1 FROM unnest($2::text[]) AS p(name)
		  LEFT JOIN projection_checkpoints c ON c.projection = p.name AND c.stream_id = e.stream_id
		  WHERE coalesce(c.version, 0) < e.version)
		ORDER BY e.stream_id`, prefix, r.names)
	if err != nil {
		return fmt.Errorf("projector: catch-up: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("projector: catch-up: %w", err)
	}
	for _, id := range ids {
		version, err := r.applyStream(ctx, id)
		if err != nil {
			return err
		}
		if r.cfg.OnApplied != nil {
			r.cfg.OnApplied(id, version)
		}
	}
	if len(ids) > 0 {
		r.log.Info("caught up", "streams", len(ids), "prefix", prefix)
	}
	return nil
}

// WaitFor waits until every named projection has applied streamID up to version (read-your-
// writes: a command waits for the read models it will be read from). It polls
// projection_checkpoints with a backoff from 2 ms to 100 ms, and returns ctx's error, wrapped, if
// ctx ends first. WaitForSignal is the same, woken by the projector's checkpoint notifications.
func WaitFor(ctx context.Context, pool postgres.Querier, streamID string, version int64, projectionNames []string) error {
	return WaitForSignal(ctx, pool, nil, streamID, version, projectionNames)
}

// WaitForSignal is WaitFor that also looks again each time checkpoints fires (the process's
// listener of postgres.NotifyCheckpoint): the answer goes out as soon as the projector commits,
// not at the next poll. The polls stay, as the fallback for a notification lost while the
// listener reconnects.
func WaitForSignal(ctx context.Context, pool postgres.Querier, checkpoints *postgres.Signal, streamID string, version int64, projectionNames []string) error {
	if len(projectionNames) == 0 || version <= 0 {
		return nil
	}
	want := len(uniq(projectionNames))
	wait := 2 * time.Millisecond
	for {
		woken := checkpoints.C(streamID) // before the look, so a commit between the look and the wait wakes us
		var n int
		err := pool.QueryRow(ctx, `SELECT count(DISTINCT projection) FROM projection_checkpoints
			WHERE stream_id = $1 AND projection = ANY($2) AND version >= $3`,
			streamID, projectionNames, version).Scan(&n)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("projector: wait for %s@%d: %w", streamID, version, ctx.Err())
			}
			return postgres.TranslateError(fmt.Errorf("projector: wait for %s@%d: %w", streamID, version, err))
		}
		if n >= want {
			return nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("projector: wait for %s@%d: %w", streamID, version, ctx.Err())
		case <-woken:
			timer.Stop()
		case <-timer.C:
			wait = min(2*wait, 100*time.Millisecond)
		}
	}
}

func uniq(names []string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return m
}
