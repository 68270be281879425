// Package relay is the `relay` role: it forwards the transactional outbox, which the event store
// writes in every append's transaction, to the domain stream of the event bus.
//
// The outbox is read with a watermill-sql subscriber (topic postgres.OutboxTopic, table
// "watermill_outbox", consumer group "relay", offsets in "watermill_offsets_outbox"). It delivers
// rows in (transaction_id, offset) order and only from transactions older than every transaction
// still running, so no row is skipped and appends to one stream reach the bus in version order.
// Several relay instances may run: the offsets row is locked while a batch is forwarded, so one
// forwards at a time and another takes over if it dies.
//
// Each outbox message is published unchanged (same uuid, payload and metadata) to the domain
// stream and acknowledged in the outbox only after the bus accepted it. XADD creates the stream
// if Redis lost it. Messages forwarded before Redis lost its data are not forwarded again: they
// are notifications, and the projector catches up from the event store when its subscription
// recovers (projector.Runner.StreamRecovered), which repairs every stream they announced. If the bus is down the
// message is retried with exponential backoff, never dropped: it stays in the outbox and later
// appends queue behind it. Delivery is at-least-once (a crash between publish and acknowledgement
// publishes again); consumers are idempotent.
//
// Forwarded rows are deleted after Retention, so the outbox stays small.
package relay

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/resubscribe"
)

// DefaultConsumerGroup is the relay's consumer group in watermill_offsets_outbox.
const DefaultConsumerGroup = "relay"

// Metrics receives the relay's counts; implement it with Prometheus counters. Methods must be
// safe for concurrent use.
type Metrics interface {
	MessageForwarded()   // one outbox message reached the bus
	PublishFailed(error) // one attempt to publish failed; it will be retried
}

// Config configures a Relay.
type Config struct {
	// Pool of the database holding the outbox. Required.
	Pool *pgxpool.Pool
	// Publisher of the event bus (redisstream.NewPublisher) and the stream to publish to
	// (redisstream.Config.DomainStream()). Required. Run closes the publisher when it returns.
	Publisher message.Publisher
	Topic     string
	// ConsumerGroup in the outbox offsets table. Default "relay".
	ConsumerGroup string
	// PollInterval between outbox queries when it is empty: the added latency of a quiet
	// system. Default 100ms.
	PollInterval time.Duration
	// InitialBackoff and MaxBackoff bound the exponential backoff between publish attempts while
	// the bus is down. Defaults 100ms and 1s: an attempt is one connection attempt, cheap, and
	// the cap bounds how long the outbox waits after the bus is back.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// AckDeadline bounds how long one outbox read transaction stays open while a message cannot
	// be published; the message is then read again in a new transaction. Default 30s.
	AckDeadline time.Duration
	// BatchSize is how many outbox rows one read transaction fetches. Default 100.
	BatchSize int
	// Retention keeps forwarded outbox rows this long before deleting them (for inspection);
	// PruneInterval is how often that runs. Defaults 1h and 1m. A negative Retention never prunes.
	Retention     time.Duration
	PruneInterval time.Duration
	Metrics       Metrics
	Logger        *slog.Logger
}

// Relay forwards the outbox to the bus. Create it with New and start it with Run.
type Relay struct {
	cfg Config
	log *slog.Logger

	// outageSince is when publishing started failing (zero while the bus takes messages), so an
	// outage is logged once when it begins and once when it ends, however many attempts it takes.
	outageMu    sync.Mutex
	outageSince time.Time
	outageTries int
}

// New validates cfg and returns a relay.
func New(cfg Config) (*Relay, error) {
	switch {
	case cfg.Pool == nil:
		return nil, errors.New("relay: nil pool")
	case cfg.Publisher == nil:
		return nil, errors.New("relay: nil publisher")
	case cfg.Topic == "":
		return nil, errors.New("relay: empty destination topic")
	}
	if cfg.ConsumerGroup == "" {
		cfg.ConsumerGroup = DefaultConsumerGroup
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Second
	}
	if cfg.AckDeadline <= 0 {
		cfg.AckDeadline = 30 * time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.Retention == 0 {
		cfg.Retention = time.Hour
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Relay{cfg: cfg, log: cfg.Logger.With("role", "relay")}, nil
}

// Run forwards until ctx is canceled, then stops (finishing the message in hand) and returns
// nil. If the database is unreachable (at start or later) it keeps retrying with backoff; it
// returns an error only for a configuration mistake. It closes the publisher on return.
func (r *Relay) Run(ctx context.Context) error {
	defer func() {
		if err := r.cfg.Publisher.Close(); err != nil {
			r.log.Warn("close publisher", "err", err)
		}
	}()
	// Appends NOTIFY postgres.NotifyOutbox at commit: the relay forwards at once instead of at
	// its next poll (on average half of PollInterval later), and polls only as the fallback.
	appended := postgres.NewSignal()
	listenCtx, stopListening := context.WithCancel(ctx)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		postgres.Listen(listenCtx, r.cfg.Pool, postgres.NotifyOutbox, appended, r.log)
	}()
	defer func() {
		stopListening()
		<-listening
	}()
	wake := &wakeOnAppend{inner: wsql.NewDefaultBackoffManager(r.cfg.PollInterval, time.Second), appended: appended, poll: r.cfg.PollInterval,
		done: ctx.Done()}
	sub, err := wsql.NewSubscriber(armingBeginner{Beginner: wsql.BeginnerFromPgx(r.cfg.Pool), wake: wake}, wsql.SubscriberConfig{
		ConsumerGroup:  r.cfg.ConsumerGroup,
		AckDeadline:    &r.cfg.AckDeadline,
		PollInterval:   r.cfg.PollInterval,
		BackoffManager: wake,
		ResendInterval: r.cfg.InitialBackoff,
		RetryInterval:  time.Second,
		SchemaAdapter:  wsql.DefaultPostgreSQLSchema{SubscribeBatchSize: r.cfg.BatchSize},
		OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{},
	}, watermill.NewSlogLogger(r.log))
	if err != nil {
		return fmt.Errorf("relay: outbox subscriber: %w", err)
	}
	defer func() { _ = sub.Close() }()

	pruneDone := make(chan struct{})
	pruneCtx, stopPrune := context.WithCancel(ctx)
	go func() {
		defer close(pruneDone)
		r.pruneLoop(pruneCtx)
	}()
	defer func() {
		stopPrune()
		<-pruneDone
	}()

	r.log.Info("relay started", "outbox", postgres.OutboxTopic, "destination", r.cfg.Topic)
	resubscribe.Loop(ctx, r.log, "outbox subscription ended; resubscribing", "relay stopped",
		func(ctx context.Context) error { return r.consume(ctx, sub) })
	return nil
}

// wakeOnAppend is the outbox subscriber's backoff: after a query that found the outbox empty it
// waits for an append's notification or PollInterval, whichever comes first, then queries again.
// Errors and a busy outbox keep watermill-sql's default behaviour. The notification channel is
// taken when the query's transaction begins (armingBeginner), so an append that commits while
// the query runs wakes the wait that follows it.
type wakeOnAppend struct {
	inner    wsql.BackoffManager
	appended *postgres.Signal
	poll     time.Duration
	// done is the relay's shutdown: the wait ends with it, and answers a whole poll interval so
	// the subscriber's own loop sees the shutdown before it begins another query (which would
	// fail, and log an error, on the canceled context).
	done <-chan struct{}

	mu    sync.Mutex
	armed <-chan struct{}
	retry time.Duration // after a wake that found nothing yet: the next short wait (doubling)
}

func (w *wakeOnAppend) arm() {
	ch := w.appended.C("")
	w.mu.Lock()
	w.armed = ch
	w.mu.Unlock()
}

func (w *wakeOnAppend) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	if err != nil {
		return w.inner.HandleError(logger, noMsg, err)
	}
	d := w.next(noMsg)
	select {
	case <-w.done: // never a zero wait at shutdown: the loop must see it before querying again
		return max(d, w.poll)
	default:
		return d
	}
}

func (w *wakeOnAppend) next(noMsg bool) time.Duration {
	w.mu.Lock()
	woken, retry := w.armed, w.retry
	if !noMsg {
		w.retry = 0
	} else if retry > 0 && retry < w.poll {
		// Woken, but the row was not there yet: the subscriber reads a row only once every
		// transaction older than it has ended (so none is skipped), and some other transaction
		// was still open. Look again soon rather than at the next poll.
		w.retry = 2 * retry
	} else {
		w.retry = 0
	}
	w.mu.Unlock()
	if !noMsg {
		return 0
	}
	if retry > 0 && retry < w.poll {
		return retry
	}
	t := time.NewTimer(w.poll)
	defer t.Stop()
	select {
	case <-w.done:
		return w.poll
	case <-woken:
		w.mu.Lock()
		w.retry = time.Millisecond
		w.mu.Unlock()
	case <-t.C:
	}
	return 0
}

// armingBeginner arms the wake before each outbox query's transaction, which it begins without
// waiting for the WAL flush at commit.
type armingBeginner struct {
	wsql.Beginner
	wake *wakeOnAppend
}

func (b armingBeginner) BeginTx(ctx context.Context, opts *stdsql.TxOptions) (wsql.Tx, error) {
	b.wake.arm()
	tx, err := b.Beginner.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	// The transaction only advances the relay's offset: losing its last commits in a server
	// crash forwards those messages again, which delivery already allows (at least once; the
	// consumers are idempotent). So it does not wait for the WAL flush (docs/write-path.md).
	if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
		_ = tx.Rollback()
		return nil, fmt.Errorf("relay: outbox transaction: %w", err)
	}
	return tx, nil
}

func (r *Relay) consume(ctx context.Context, sub message.Subscriber) error {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, watermill.NewSlogLogger(r.log))
	if err != nil {
		return err
	}
	router.AddConsumerHandler("relay", postgres.OutboxTopic, sub, r.forward)
	return router.Run(ctx)
}

// forward publishes one outbox message, retrying with exponential backoff until the bus accepts
// it or the message's context ends (ack deadline or shutdown); then the message is nacked and
// read again later. It never acks a message that was not published.
func (r *Relay) forward(msg *message.Message) error {
	ctx := msg.Context()
	out := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		out.Metadata.Set(k, v)
	}
	backoff := r.cfg.InitialBackoff
	for {
		out.SetContext(ctx)
		err := r.cfg.Publisher.Publish(r.cfg.Topic, out)
		if err == nil {
			if r.cfg.Metrics != nil {
				r.cfg.Metrics.MessageForwarded()
			}
			r.published()
			return nil
		}
		if r.cfg.Metrics != nil {
			r.cfg.Metrics.PublishFailed(err)
		}
		r.publishFailed(msg, err)
		// Jitter keeps several relays (or a restarted one) from hammering the bus in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("relay: publish %s: %w (gave up: %w)", msg.UUID, err, ctx.Err())
		case <-time.After(wait):
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// publishFailed logs the first failure of an outage.
func (r *Relay) publishFailed(msg *message.Message, err error) {
	r.outageMu.Lock()
	defer r.outageMu.Unlock()
	r.outageTries++
	if r.outageSince.IsZero() {
		r.outageSince = time.Now()
		r.log.Warn("cannot publish to the bus; the outbox keeps every message and retries until it can", "uuid", msg.UUID,
			"stream_id", msg.Metadata.Get(postgres.MetaStreamID), "err", err, "max_backoff", r.cfg.MaxBackoff)
	}
}

// published logs the end of an outage, if one was going on.
func (r *Relay) published() {
	r.outageMu.Lock()
	defer r.outageMu.Unlock()
	if !r.outageSince.IsZero() {
		r.log.Info("the bus takes messages again; forwarding the outbox", "after", time.Since(r.outageSince).Round(time.Millisecond),
			"failed_attempts", r.outageTries)
		r.outageSince, r.outageTries = time.Time{}, 0
	}
}

func (r *Relay) pruneLoop(ctx context.Context) {
	if r.cfg.Retention < 0 {
		return
	}
	t := time.NewTicker(r.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.Prune(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("prune outbox", "err", err)
			}
			continue
		}
		if n > 0 {
			r.log.Debug("pruned outbox", "rows", n)
		}
	}
}

// Prune deletes outbox rows the relay's consumer group has forwarded and that are older than
// Retention, and returns how many it deleted. Run calls it every PruneInterval.
func (r *Relay) Prune(ctx context.Context) (int64, error) {
	retention := max(r.cfg.Retention, 0)
	tag, err := r.cfg.Pool.Exec(ctx, `
		DELETE FROM watermill_outbox o
		USING watermill_offsets_outbox f
		WHERE f.consumer_group = $1
		  AND (o.transaction_id < f.last_processed_transaction_id
		       OR (o.transaction_id = f.last_processed_transaction_id AND o."offset" <= f.offset_acked))
		  AND o.created_at < LOCALTIMESTAMP - make_interval(secs => $2)`,
		r.cfg.ConsumerGroup, retention.Seconds())
	if err != nil {
		return 0, fmt.Errorf("relay: prune outbox: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Pending returns the number of outbox rows not yet forwarded by the consumer group (for
// /metrics and readiness).
func Pending(ctx context.Context, q postgres.Querier, consumerGroup string) (int64, error) {
	if consumerGroup == "" {
		consumerGroup = DefaultConsumerGroup
	}
	var n int64
	err := q.QueryRow(ctx, `
		SELECT count(*) FROM watermill_outbox o
		LEFT JOIN watermill_offsets_outbox f ON f.consumer_group = $1
		WHERE f.consumer_group IS NULL
		   OR o.transaction_id > f.last_processed_transaction_id
		   OR (o.transaction_id = f.last_processed_transaction_id AND o."offset" > f.offset_acked)`,
		consumerGroup).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("relay: count pending outbox rows: %w", err)
	}
	return n, nil
}
