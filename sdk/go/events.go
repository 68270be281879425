package vexil

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// event is an event waiting in the queue, in the form that is cheapest to make: Track and
// exposures run on the application's goroutine, so the id stays 16 bytes and the time a
// time.Time until the sender encodes the batch (wire). Both are fixed when the event is
// queued, so a retried batch carries the same event_id and occurred_at and is stored once.
type event struct {
	kind, userKey, flagKey, variationKey, reason, experimentKey, goalKey string

	id       [16]byte // a UUIDv7
	at       time.Time
	value    float64
	hasValue bool
}

// wireEvent is one event of POST /sdk/v1/events, as the server's ingest rules name its fields.
type wireEvent struct {
	Kind          string   `json:"kind"`
	EventID       string   `json:"event_id"`
	OccurredAt    string   `json:"occurred_at"`
	UserKey       string   `json:"user_key"`
	FlagKey       string   `json:"flag_key,omitempty"`
	VariationKey  string   `json:"variation_key,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	ExperimentKey string   `json:"experiment_key,omitempty"`
	GoalKey       string   `json:"goal_key,omitempty"`
	Value         *float64 `json:"value,omitempty"`
}

func (e *event) wire() wireEvent {
	w := wireEvent{Kind: e.kind, EventID: formatUUID(&e.id), OccurredAt: e.at.UTC().Format(time.RFC3339Nano),
		UserKey: e.userKey, FlagKey: e.flagKey, VariationKey: e.variationKey, Reason: e.reason,
		ExperimentKey: e.experimentKey, GoalKey: e.goalKey}
	if e.hasValue {
		v := e.value
		w.Value = &v
	}
	return w
}

// newEventID returns a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits, so
// ids sort by time as the server's own do. The random bits come from math/rand/v2's
// generator (ChaCha8, seeded by the runtime from the operating system's entropy, per thread):
// ids must be unique, not secret, and crypto/rand's system call would cost more than the
// rest of Track.
func newEventID(at time.Time) [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(at.UnixMilli())<<16|rand.Uint64()&0xffff)
	binary.BigEndian.PutUint64(b[8:16], rand.Uint64())
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return b
}

// formatUUID writes a UUID in its canonical form, 8-4-4-4-12 hexadecimal digits.
func formatUUID(b *[16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// sentKey identifies an evaluation worth sending once: a user got a variation of a flag
// (through an experiment, for an exposure).
type sentKey struct {
	user, flag, variation, experiment string
}

// eventQueue holds events until the sender posts them. Adding takes a mutex and never waits on
// I/O; past MaxQueuedEvents events are dropped and counted.
type eventQueue struct {
	max      int
	remember int
	kick     chan struct{}
	batch    int

	mu            sync.Mutex
	pending       []event
	held          int // events in the batch being sent or retried
	seen, seenOld map[sentKey]struct{}

	queued, dropped, sent, rejected atomic.Int64
}

func newEventQueue(o *Options) *eventQueue {
	return &eventQueue{max: o.MaxQueuedEvents, remember: o.Remember, batch: o.EventBatchSize,
		kick: make(chan struct{}, 1), seen: map[sentKey]struct{}{}, seenOld: map[sentKey]struct{}{}}
}

// add queues e; false when the queue is full (the event is dropped and counted).
func (q *eventQueue) add(e *event) bool {
	q.mu.Lock()
	if len(q.pending)+q.held >= q.max {
		q.mu.Unlock()
		q.dropped.Add(1)
		return false
	}
	q.pending = append(q.pending, *e)
	full := len(q.pending) >= q.batch
	q.mu.Unlock()
	q.queued.Add(1)
	if full {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// firstSight reports whether k was not sent recently, and remembers it. Two generations of
// Remember keys are kept: forgetting an old one costs one more event, which the server's
// per-user deduplication absorbs.
func (q *eventQueue) firstSight(k sentKey) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.seen[k]; ok {
		return false
	}
	if _, ok := q.seenOld[k]; ok {
		return false
	}
	if len(q.seen) >= q.remember {
		q.seenOld, q.seen = q.seen, make(map[sentKey]struct{}, q.remember)
	}
	q.seen[k] = struct{}{}
	return true
}

// take moves up to batch events out of the queue into the batch being sent.
func (q *eventQueue) take() []event {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.pending), q.batch)
	if n == 0 {
		return nil
	}
	out := make([]event, n)
	copy(out, q.pending)
	q.pending = append(q.pending[:0], q.pending[n:]...)
	q.held += n
	return out
}

// done releases a batch that was delivered or given up.
func (q *eventQueue) done(n int) {
	q.mu.Lock()
	q.held -= n
	q.mu.Unlock()
}

func (q *eventQueue) length() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending) + q.held
}

// errRetry is a batch the server did not keep, to send again after wait (0: the backoff's).
type errRetry struct {
	wait time.Duration
	err  error
}

func (e *errRetry) Error() string { return e.err.Error() }

// post sends one batch. nil: the server kept it (202), or refused it for good (400, 413, 401,
// 403: retrying would not help; logged and counted). *errRetry: send it again.
func (p *Provider) post(ctx context.Context, batch []event) error {
	wire := make([]wireEvent, len(batch))
	for i := range batch {
		wire[i] = batch[i].wire()
	}
	body, err := json.Marshal(map[string]any{"events": wire})
	if err != nil {
		return fmt.Errorf("vexil: encode events: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.opts.BaseURL+"/sdk/v1/events", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("vexil: events request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.opts.ServerKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := p.http.Do(req)
	if err != nil {
		return &errRetry{err: fmt.Errorf("vexil: post events: %w", err)}
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	switch {
	case res.StatusCode == http.StatusAccepted || res.StatusCode == http.StatusOK:
		var a struct {
			Accepted int `json:"accepted"`
			Rejected int `json:"rejected"`
		}
		_ = json.Unmarshal(answer, &a)
		p.queue.sent.Add(int64(len(batch) - a.Rejected))
		if a.Rejected > 0 {
			p.queue.rejected.Add(int64(a.Rejected))
			p.opts.Logger.Warn("vexil: the server refused some events", "rejected", a.Rejected, "answer", string(answer))
		}
		return nil
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
		return &errRetry{wait: retryAfter(res.Header.Get("Retry-After")),
			err: fmt.Errorf("vexil: post events: status %d: %s", res.StatusCode, answer)}
	}
	p.queue.rejected.Add(int64(len(batch)))
	p.opts.Logger.Warn("vexil: the server refused a batch of events", "status", res.StatusCode, "events", len(batch), "answer", string(answer))
	return nil
}

// retryAfter reads Retry-After in seconds (the form Vexil answers); 0 when absent or unreadable.
func retryAfter(h string) time.Duration {
	secs, err := strconv.Atoi(h)
	if err != nil || secs < 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// sendLoop posts batches every FlushInterval, or as soon as a batch is full, until stop is
// closed; then it drains the queue, retrying until drainCtx ends.
func (p *Provider) sendLoop(stop <-chan struct{}, drainCtx func() context.Context) {
	tick := time.NewTicker(p.opts.FlushInterval)
	defer tick.Stop()
	runCtx, cancel := context.WithCancel(context.Background())
	go func() { <-stop; cancel() }()
	defer cancel()
	for {
		select {
		case <-stop:
			p.drain(drainCtx())
			return
		case <-tick.C:
		case <-p.queue.kick:
		}
		for {
			batch := p.queue.take()
			if batch == nil {
				break
			}
			if !p.deliver(runCtx, batch) { // stopping: what is left goes out in the drain
				p.requeue(batch)
				break
			}
		}
	}
}

// deliver sends batch until the server keeps it; false when ctx ended first (the batch is then
// still the caller's).
func (p *Provider) deliver(ctx context.Context, batch []event) bool {
	for attempt := 1; ; attempt++ {
		err := p.post(ctx, batch)
		var retry *errRetry
		if !errors.As(err, &retry) {
			if err != nil {
				p.opts.Logger.Warn("vexil: events dropped", "events", len(batch), "err", err)
				p.queue.rejected.Add(int64(len(batch)))
			}
			p.queue.done(len(batch))
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := max(retry.wait, backoff(p.opts.ReconnectMin, p.opts.ReconnectMax, attempt))
		if attempt == 1 || attempt%10 == 0 {
			p.opts.Logger.Warn("vexil: events not delivered yet; retrying", "events", len(batch), "in", wait, "err", retry.err)
		}
		sleep(ctx, wait)
		if ctx.Err() != nil {
			return false
		}
	}
}

// requeue puts an undelivered batch back at the head of the queue (same event ids).
func (p *Provider) requeue(batch []event) {
	q := p.queue
	q.mu.Lock()
	q.pending = append(batch, q.pending...)
	q.held -= len(batch)
	q.mu.Unlock()
}

// drain sends every queued event, retrying until ctx ends; what is left then is counted as
// dropped.
func (p *Provider) drain(ctx context.Context) {
	for {
		batch := p.queue.take()
		if batch == nil {
			return
		}
		if !p.deliver(ctx, batch) {
			p.requeue(batch)
			n := p.queue.length()
			p.queue.dropped.Add(int64(n))
			p.opts.Logger.Warn("vexil: Shutdown gave up on undelivered events", "events", n, "err", ctx.Err())
			return
		}
	}
}
