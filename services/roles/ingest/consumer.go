package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Workers is how many messages this process stores at once (one subscription each:
	// watermill-redisstream delivers one message at a time per subscription and waits for its
	// ack). Default 4.
	Workers int
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
	// OnStored, if set, is called after a message was stored (tests).
	OnStored func(*ptelemetry.Batch, ptelemetry.WriteResult)
	Metrics  *Metrics
	Logger   *slog.Logger
}

// Consumer is the telemetry projector: it stores every message of the telemetry stream, in the
// consumer group "<prefix>-telemetry" shared by every projector instance. A message is acked
// only after its write committed; the write is idempotent, so a message delivered again (its
// consumer died before the ack, or the ack was lost) stores nothing twice. A message that cannot
// be decoded, or keeps failing, goes to "<prefix>:dead-letter" and never blocks the stream.
type Consumer struct {
	cfg    ConsumerConfig
	stream string
	writer *ptelemetry.Writer
	log    *slog.Logger
}

// NewConsumer validates cfg.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Pool == nil {
		return nil, errors.New("telemetry: consumer needs a pool")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
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
	sub, err := redisstream.NewSubscriber(c.cfg.Bus, c.cfg.Bus.Group(Role))
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
	for w := 0; w < c.cfg.Workers; w++ {
		h := router.AddConsumerHandler(fmt.Sprintf("telemetry-%d", w), c.stream, sub, c.handle)
		h.AddMiddleware(mw)
	}
	c.log.Info("telemetry consumer started", "stream", c.stream, "workers", c.cfg.Workers)
	return router.Run(ctx) // closes the subscriber
}

// handle stores one message. Decoding failures are permanent (dead-lettered at once); database
// failures are retried (transient ones until they stop).
func (c *Consumer) handle(msg *message.Message) error {
	b, err := ptelemetry.UnmarshalBatch(msg.Payload)
	if err != nil {
		c.cfg.Metrics.message("failed")
		return redisstream.Permanent(fmt.Errorf("telemetry: message %s: %w", msg.UUID, err))
	}
	ctx, cancel := context.WithTimeout(msg.Context(), c.cfg.WriteTimeout)
	defer cancel()
	start := time.Now()
	res, err := c.writer.Write(ctx, c.cfg.Pool, b)
	if err != nil {
		c.cfg.Metrics.message("failed")
		return err
	}
	c.cfg.Metrics.stored(b, res, time.Since(start).Seconds(), time.Since(b.ReceivedAt).Seconds())
	if c.cfg.OnStored != nil {
		c.cfg.OnStored(b, res)
	}
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
