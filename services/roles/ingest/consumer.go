package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	ptelemetry "github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/adapters/resubscribe"
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Pool *pgxpool.Pool
	// Bus says how to reach Redis and the stream prefix. Its MaxIdleTime is how long a message
	// held by a consumer that died (SIGKILL, lost machine) waits before another consumer of the
	// group takes it over. Required.
	Bus redisstream.Config
	// Workers is how many writes this process runs at once (database connections it uses).
	// Default 4.
	Workers int
	// GroupMessages is how many messages one write may store together, in one transaction
	// (WriteAll). The consumer holds Workers * GroupMessages subscriptions
	// (watermill-redisstream delivers one message at a time per subscription and waits for its
	// ack), so that while a write runs the next one's messages arrive. Default 8; 1 stores each
	// message alone.
	GroupMessages int
	// MaxAttempts at a message failing with a non-transient error before it is dead-lettered.
	// Default 5. Transient errors (database down) are retried until they stop.
	MaxAttempts int
	// WriteTimeout bounds one write. Default 30s.
	WriteTimeout time.Duration
	// LagInterval is how often the stream lag gauge is sampled. Default 5s.
	LagInterval time.Duration
	// UnitCache is how many experiment units the consumer remembers, so evaluations that cannot
	// change their unit skip the exposure statements (see projections/telemetry.Writer).
	// Default 250,000 (some 50 MB); -1 disables it.
	UnitCache int
	Metrics   *Metrics
	Logger    *slog.Logger
}

// Consumer is the telemetry projector: it stores every message of the telemetry stream, in the
// consumer group "<prefix>-telemetry" shared by every projector instance. A message is acked
// only after its write committed; the write is idempotent, so a message delivered again (its
// consumer died before the ack, or the ack was lost) stores nothing twice. A message that cannot
// be decoded, or keeps failing, goes to "<prefix>:dead-letter" and never blocks the stream.
//
// Messages are stored in groups: each subscription's handler decodes its message and hands it
// to the writers, and each writer stores the messages waiting (up to GroupMessages, at most
// maxGroupEvents events) in one transaction, then answers every handler, which acks. Grouping
// costs no waiting: a writer takes what is there when it is free, so a quiet stream is stored
// message by message and a busy one in groups.
type Consumer struct {
	cfg    ConsumerConfig
	stream string
	writer *ptelemetry.Writer
	log    *slog.Logger
}

// maxGroupEvents bounds the events of one write, so one transaction's arrays stay moderate
// (a message holds up to ptelemetry.MaxBatchEvents).
const maxGroupEvents = 10_000

// queued is a decoded message waiting for a writer; done receives the write's outcome.
type queued struct {
	batch *ptelemetry.Batch
	done  chan error
}

// NewConsumer validates cfg.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Pool == nil {
		return nil, errors.New("telemetry: consumer needs a pool")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.GroupMessages <= 0 {
		cfg.GroupMessages = 8
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.LagInterval <= 0 {
		cfg.LagInterval = 5 * time.Second
	}
	if cfg.UnitCache == 0 {
		cfg.UnitCache = 250_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Consumer{cfg: cfg, stream: cfg.Bus.Stream(StreamName), writer: ptelemetry.NewWriter(cfg.UnitCache),
		log: cfg.Logger.With("role", "projector", "component", "telemetry")}, nil
}

// Run consumes the telemetry stream until ctx ends (and returns nil then). If Redis is
// unreachable it retries with backoff; it returns an error only for a configuration mistake.
func (c *Consumer) Run(ctx context.Context) error {
	go c.sampleLag(ctx)
	resubscribe.Loop(ctx, c.log, "telemetry stream subscription ended; resubscribing", "telemetry consumer stopped",
		c.consume)
	return nil
}

func (c *Consumer) consume(ctx context.Context) error {
	subscriptions := c.cfg.Workers * c.cfg.GroupMessages
	sub, err := redisstream.NewSubscriber(c.cfg.Bus, c.cfg.Bus.Group(Role), redisstream.Subscriptions(subscriptions))
	if err != nil {
		return err
	}
	defer sub.Close() // also closed by the router; closing twice is harmless
	dead, err := redisstream.NewPublisher(c.cfg.Bus)
	if err != nil {
		return err
	}
	defer dead.Close()
	mw, err := redisstream.DeadLetter(redisstream.DeadLetterConfig{
		Publisher:   dead,
		Topic:       c.cfg.Bus.DeadLetterStream(),
		MaxAttempts: c.cfg.MaxAttempts,
		Retryable:   postgres.IsTransient,
		OnDeadLetter: func(*message.Message, error) {
			c.cfg.Metrics.message("dead_lettered")
		},
		Logger: c.log,
	})
	if err != nil {
		return err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, watermill.NewSlogLogger(c.log))
	if err != nil {
		return err
	}
	queue := make(chan queued)
	writers, stopWriters := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for w := 0; w < c.cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.write(writers, queue)
		}()
	}
	// The writers outlive the router: handlers still waiting for their write at shutdown get
	// its outcome (and ack) before the writers stop.
	defer func() {
		stopWriters()
		wg.Wait()
	}()
	handle := func(msg *message.Message) error { return c.handle(msg, queue) }
	for s := 0; s < subscriptions; s++ {
		h := router.AddConsumerHandler(fmt.Sprintf("telemetry-%d", s), c.stream, sub, handle)
		h.AddMiddleware(mw)
	}
	c.log.Info("telemetry consumer started", "stream", c.stream, "workers", c.cfg.Workers, "group_messages", c.cfg.GroupMessages)
	return router.Run(ctx) // closes the subscriber
}

// handle decodes one message and waits until a writer stored it. Decoding failures are
// permanent (dead-lettered at once); database failures are retried (transient ones until they
// stop).
func (c *Consumer) handle(msg *message.Message, queue chan<- queued) error {
	b, err := ptelemetry.UnmarshalBatch(msg.Payload)
	if err != nil {
		c.cfg.Metrics.message("failed")
		return redisstream.Permanent(fmt.Errorf("telemetry: message %s: %w", msg.UUID, err))
	}
	q := queued{batch: b, done: make(chan error, 1)}
	select {
	case queue <- q:
	case <-msg.Context().Done(): // shutting down: not acked, so delivered again
		return fmt.Errorf("telemetry: message %s not stored: %w", msg.UUID, msg.Context().Err())
	}
	// Once queued, the write's outcome is awaited whatever happens to the message's context:
	// answering before it could ack a message whose write then fails.
	return <-q.done
}

// write stores queued messages in groups until ctx ends.
func (c *Consumer) write(ctx context.Context, queue <-chan queued) {
	group := make([]queued, 0, c.cfg.GroupMessages)
	for {
		group = group[:0]
		select {
		case q := <-queue:
			group = append(group, q)
		case <-ctx.Done():
			return
		}
		events := group[0].batch.Len()
	more:
		for len(group) < c.cfg.GroupMessages && events < maxGroupEvents {
			select {
			case q := <-queue:
				group = append(group, q)
				events += q.batch.Len()
			default:
				break more
			}
		}
		c.store(group)
	}
}

// store writes a group and answers each of its handlers. When the group fails for a reason
// other than a transient one, each message is written alone, so one that cannot be stored is
// retried and dead-lettered by itself and the others are stored.
func (c *Consumer) store(group []queued) {
	batches := make([]*ptelemetry.Batch, len(group))
	for i, q := range group {
		batches[i] = q.batch
	}
	err := c.storeBatches(batches)
	if err != nil && len(group) > 1 && !postgres.IsTransient(err) {
		for i, q := range group {
			q.done <- c.storeBatches(batches[i : i+1])
		}
		return
	}
	for _, q := range group {
		q.done <- err
	}
}

func (c *Consumer) storeBatches(batches []*ptelemetry.Batch) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.WriteTimeout)
	defer cancel()
	start := time.Now()
	res, isNew, err := c.writer.WriteAll(ctx, c.cfg.Pool, batches)
	if err != nil {
		for range batches {
			c.cfg.Metrics.message("failed")
		}
		return err
	}
	c.cfg.Metrics.stored(batches, isNew, res, time.Since(start).Seconds())
	return nil
}

// sampleLag keeps the stream lag gauge current where no ingestor runs (a projector-only process).
func (c *Consumer) sampleLag(ctx context.Context) {
	if c.cfg.Metrics == nil {
		return
	}
	client, err := redisstream.NewClient(c.cfg.Bus.URL)
	if err != nil {
		return
	}
	defer client.Close()
	group := c.cfg.Bus.Group(Role)
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		lags, err := redisstream.StreamLag(sctx, client, c.stream)
		cancel()
		if err != nil {
			continue
		}
		for _, g := range lags {
			if g.Group == group {
				c.cfg.Metrics.setLag(g.Behind())
			}
		}
	}
}
