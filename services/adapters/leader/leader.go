// Package leader elects one process among many through a PostgreSQL advisory lock, for work that
// must run once per installation however many copies of a role run (the experiment role's
// analysis pass).
//
// The lock is a session lock on a dedicated connection (not one of the pool's, which come and go):
// the process holding it leads and runs the work; the others try again every Retry. The leader
// pings its connection every Check and stops the work as soon as the ping fails; the server
// releases the lock when that session ends (a killed process, a dropped connection, a terminated
// backend), so another process takes over within about Retry. Two leaders can overlap only for
// the time a dead session takes to be noticed, so the work must tolerate running twice (analysis
// writes one more row).
package leader

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config configures one elector.
type Config struct {
	ConnConfig *pgx.ConnConfig // the database the candidates share (copied; the pool's config works)
	Name       string          // what is elected; candidates of the same name exclude each other
	Retry      time.Duration   // how often a follower tries the lock; 5s if zero
	Check      time.Duration   // how often the leader pings its connection; 2s if zero
	Logger     *slog.Logger
}

// Elector runs work only while it holds the lock named Config.Name.
type Elector struct {
	cfg     Config
	key     int64
	leading atomic.Bool
	pid     atomic.Int32
	terms   atomic.Int64
	tries   atomic.Int64
}

// New checks cfg and returns an elector.
func New(cfg Config) (*Elector, error) {
	if cfg.ConnConfig == nil || cfg.Name == "" {
		return nil, errors.New("leader: a connection config and a name are required")
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 5 * time.Second
	}
	if cfg.Check <= 0 {
		cfg.Check = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Elector{cfg: cfg, key: LockKey(cfg.Name)}, nil
}

// LockKey is the advisory lock key of a name: its 64-bit FNV-1a hash, so operators can find the
// holder in pg_locks (classid = key>>32, objid = key&0xffffffff, objsubid = 1).
func LockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("vexil.leader." + name))
	return int64(h.Sum64())
}

// Leading reports whether this elector holds the lock now.
func (e *Elector) Leading() bool { return e.leading.Load() }

// BackendPID is the server process id of the session holding the lock while leading (0 otherwise):
// what pg_terminate_backend takes to force a hand-over.
func (e *Elector) BackendPID() int32 { return e.pid.Load() }

// Attempts counts the tries of the lock.
func (e *Elector) Attempts() int64 { return e.tries.Load() }

// Terms counts how many times this elector became leader.
func (e *Elector) Terms() int64 { return e.terms.Load() }

// Run campaigns until ctx ends; while leading it runs work with a context that ends when the
// leadership does. An error from work ends that term (the lock is released and campaigned for
// again), so a failing leader hands over rather than holding the lock idle.
func (e *Elector) Run(ctx context.Context, work func(context.Context) error) error {
	for ctx.Err() == nil {
		conn, err := e.acquire(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			e.cfg.Logger.Warn("leader: could not try the lock; retrying", "role", e.cfg.Name, "err", err)
		case conn != nil:
			// After a term, wait like a follower: a leader whose connection flaps leaves the lock to
			// a healthier candidate rather than grabbing it back at once.
			e.lead(ctx, conn, work)
		}
		select {
		case <-ctx.Done():
		case <-time.After(e.cfg.Retry):
		}
	}
	return nil
}

// acquire opens a dedicated connection and tries the lock on it; nil without error means another
// process leads.
func (e *Elector) acquire(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, e.cfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("leader: connect: %w", err)
	}
	e.tries.Add(1)
	var got bool
	var pid int32
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1), pg_backend_pid()`, e.key).Scan(&got, &pid); err != nil || !got {
		_ = conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("leader: try lock: %w", err)
		}
		return nil, nil
	}
	e.pid.Store(pid)
	return conn, nil
}

func (e *Elector) lead(ctx context.Context, conn *pgx.Conn, work func(context.Context) error) {
	termCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	e.leading.Store(true)
	e.terms.Add(1)
	e.cfg.Logger.Info("leader: leading", "role", e.cfg.Name, "backend_pid", e.pid.Load())
	go func() { done <- work(termCtx) }()
	t := time.NewTicker(e.cfg.Check)
	defer t.Stop()
watch:
	for {
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				e.cfg.Logger.Error("leader: the work failed; handing over", "role", e.cfg.Name, "err", err)
			}
			done = nil
			break watch
		case <-ctx.Done():
			break watch
		case <-t.C:
			if err := conn.Ping(termCtx); err != nil {
				if ctx.Err() == nil {
					e.cfg.Logger.Warn("leader: lost the connection holding the lock; stopping", "role", e.cfg.Name, "err", err)
				}
				break watch
			}
		}
	}
	// Stop the work before the lock can pass on, so this process's term ends before the next begins.
	cancel()
	if done != nil {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			e.cfg.Logger.Warn("leader: the work ended with an error as it stopped", "role", e.cfg.Name, "err", err)
		}
	}
	e.leading.Store(false)
	e.pid.Store(0)
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	_, _ = conn.Exec(rctx, `SELECT pg_advisory_unlock($1)`, e.key)
	_ = conn.Close(rctx)
	e.cfg.Logger.Info("leader: stopped leading", "role", e.cfg.Name)
}
