// Package app is Vexil's application layer: every command and query the entry points run (the
// management REST API, the web console, the delivery scheduler, auto-ops, webhook triggers, the
// experiment analyzer, the CLI) goes through it, so a command has one implementation whatever
// calls it. It knows neither HTTP nor schedules: callers decode their input into a typed command,
// say who acts (Meta), and get a typed aggregate back.
//
// Every command runs the same flow, written once in core.go: load the aggregate's stream and fold
// it, check the caller's expected version, decide (a method of the domain aggregate), append the
// new events with optimistic concurrency and the command id (idempotency), then wait for the read
// models so the caller reads its own write. See docs/application-layer.md.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/roles/projector"
)

// Application is the seam the entry points use: commands change aggregates, queries read them.
type Application struct {
	Commands *Commands
	Queries  *Queries
}

// Config is what the application layer runs on.
type Config struct {
	Store *postgres.EventStore
	Pool  *pgxpool.Pool // read models, and the checkpoints read-your-writes waits on
	Log   *slog.Logger
	// ConsistencyWait bounds how long a command waits for the asynchronous read models to reach
	// its write (read-your-writes for a client that writes then lists). Zero: no wait (the
	// scheduler's commands, which nobody reads back at once).
	ConsistencyWait time.Duration
	// Clock is now for commands that stamp or compare times (time.Now when nil).
	Clock func() time.Time
	// Checkpoints, when set, is fired by the process's listener of the projector's checkpoint
	// notifications (postgres.NotifyCheckpoint): a write's wait ends when the projector commits
	// instead of at its next poll of the checkpoints.
	Checkpoints *postgres.Signal
	// AwaitReadModels waits until the named read models reached a stream's version or ctx ends
	// (projector.WaitFor on Pool when nil). A command calls it once per stream it appended to,
	// all under one ConsistencyWait deadline; tests count the waits with it.
	AwaitReadModels func(ctx context.Context, streamID string, version int64, projections []string) error
}

// New builds the application layer; it fails fast on a missing dependency.
func New(cfg Config) (*Application, error) {
	if cfg.Store == nil || cfg.Pool == nil || cfg.Log == nil {
		return nil, fmt.Errorf("app: New needs an event store, a pool and a logger")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	c := &core{store: cfg.Store, pool: cfg.Pool, log: cfg.Log, wait: cfg.ConsistencyWait, now: cfg.Clock, await: cfg.AwaitReadModels,
		infos: &catalogCache{}}
	if c.await == nil {
		checkpoints := cfg.Checkpoints
		c.await = func(ctx context.Context, streamID string, version int64, projections []string) error {
			return projector.WaitForSignal(ctx, cfg.Pool, checkpoints, streamID, version, projections)
		}
	}
	q := &Queries{c: c}
	return &Application{Commands: &Commands{c: c, q: q}, Queries: q}, nil
}

// Commands change aggregates. Each method is one command of the field (toggle a flag, start an
// experiment, apply a scheduled change...), taking who acts (Meta) and a typed command, and
// returning the aggregate after it with its version.
type Commands struct {
	c *core
	q *Queries
}

// Queries read aggregates (folded from the event store: current, never stale) and read models
// (lists, eventually consistent).
type Queries struct {
	c *core
}

// Pool is the database the read models live in, for read-model queries that have no method here
// yet (statistics, the audit log's exports).
func (q *Queries) Pool() *pgxpool.Pool { return q.c.pool }
