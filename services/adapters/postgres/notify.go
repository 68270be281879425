package postgres

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Channels of PostgreSQL's LISTEN/NOTIFY that wake the write path instead of polling. A
// notification is only a hint: it is sent inside the transaction whose commit it announces (so it
// is delivered after the commit, or never), it can be lost while a listener reconnects, and
// everyone that waits on one also polls at its old interval as a fallback. The guarantees stay
// where they were: the outbox and the checkpoints in their tables.
const (
	// NotifyOutbox is sent by every append: an outbox row is there for the relay.
	NotifyOutbox = "vexil_outbox"
	// NotifyCheckpoint is sent by the projector with every checkpoint it advances (the payload is
	// the stream id): writers waiting for their read models look again.
	NotifyCheckpoint = "vexil_checkpoint"
)

// Signal is a broadcast per key (a notification's payload: a stream id, or "" for the outbox):
// every Fire of a key wakes everyone who took C of that key before it. Take C before looking at
// what the signal announces, then wait on it, so a notification between the look and the wait is
// not missed. A channel exists only while somebody waits for its key.
type Signal struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// NewSignal returns a signal nobody has fired yet.
func NewSignal() *Signal { return &Signal{m: map[string]chan struct{}{}} }

// C returns the channel the next Fire of key (or FireAll) closes. A nil *Signal never fires.
func (s *Signal) C(key string) <-chan struct{} {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.m[key]
	if !ok {
		ch = make(chan struct{})
		s.m[key] = ch
	}
	return ch
}

// Fire wakes everyone waiting on key.
func (s *Signal) Fire(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.m[key]; ok {
		close(ch)
		delete(s.m, key)
	}
}

// FireAll wakes everyone: what a listener does when it (re)connects, since notifications sent
// while it was away are lost.
func (s *Signal) FireAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, ch := range s.m {
		close(ch)
		delete(s.m, key)
	}
}

// Listen holds a connection of its own (outside the pool, which it must not starve) that
// LISTENs on channel and fires signal's key of every notification's payload, until ctx ends.
// While the database is unreachable it reconnects with backoff; after each (re)connection it fires
// every key, since notifications sent meanwhile are lost.
func Listen(ctx context.Context, pool *pgxpool.Pool, channel string, signal *Signal, log *slog.Logger) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := listenOnce(ctx, pool, channel, signal, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		log.Debug("LISTEN connection ended; waiters poll until it is back", "channel", channel, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func listenOnce(ctx context.Context, pool *pgxpool.Pool, channel string, signal *Signal, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	connected()
	signal.FireAll()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		signal.Fire(n.Payload)
	}
}
