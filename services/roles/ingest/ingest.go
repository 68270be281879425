package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/vexil-flags/vexil/domain"
	ptelemetry "github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/redisstream"
)

// StreamName is the telemetry stream under the prefix ("<prefix>:telemetry"), and Role the
// suffix of its consumer group ("<prefix>-telemetry").
const (
	StreamName = "telemetry"
	Role       = "telemetry"
)

// Metadata of a telemetry stream message (besides its UUID, the batch id).
const (
	MetaProject     = "project"
	MetaEnvironment = "environment"
	MetaEvents      = "events"
)

// IngestConfig configures an Ingestor.
type IngestConfig struct {
	// Bus says how to reach Redis and the stream prefix. Required.
	Bus redisstream.Config
	// MaxLag is how many messages the consumer group may be behind (pending + undelivered)
	// before ingest answers 429 with Retry-After. Default 1000.
	MaxLag int64
	// StreamMaxLen caps the stream (approximate trimming of the oldest entries). It must leave
	// room above MaxLag, so that trimming only removes stored messages. Default 20 * MaxLag;
	// at least 4 * MaxLag.
	StreamMaxLen int64
	// LagInterval is how often the consumer group's lag is sampled (XINFO GROUPS). Default 500ms.
	LagInterval time.Duration
	// PublishTimeout bounds one publish; past it ingest answers 503. Default 2s.
	PublishTimeout time.Duration
	// Limits of one request. Zero fields take DefaultLimits'.
	Limits Limits
	// CountBuffer is how many batches of server-side evaluation counts are kept while the stream
	// is unreachable, to be published later (one batch per environment per flush). Default 1000.
	CountBuffer int
	Metrics     *Metrics
	Logger      *slog.Logger
}

// Ingestor publishes accepted batches to the telemetry stream, one message per batch,
// synchronously: a batch is answered 202 only once Redis has it. It refuses batches with 429
// while the projector lags past MaxLag, and with 503 while Redis is unreachable. Run samples the
// lag; Publish works without it (no back-pressure until the first sample).
type Ingestor struct {
	cfg    IngestConfig
	pub    message.Publisher
	client *redis.Client
	stream string
	group  string
	log    *slog.Logger

	lag     atomic.Int64
	lagAt   atomic.Int64 // unix nanoseconds of the last good sample; 0: none
	groupOK atomic.Bool

	closeMu sync.RWMutex // publishes hold it shared; Close exclusively
	closed  bool

	countsMu sync.Mutex
	counts   []*ptelemetry.Batch // server-side counts waiting for the stream
}

// NewIngestor validates cfg and connects the publisher (lazily: nothing is dialled until used).
func NewIngestor(cfg IngestConfig) (*Ingestor, error) {
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 1000
	}
	if cfg.StreamMaxLen == 0 {
		cfg.StreamMaxLen = 20 * cfg.MaxLag
	}
	if cfg.StreamMaxLen < 4*cfg.MaxLag {
		return nil, fmt.Errorf("telemetry: stream max length %d must be at least 4 times the lag bound %d, so trimming never drops unstored messages", cfg.StreamMaxLen, cfg.MaxLag)
	}
	if cfg.LagInterval <= 0 {
		cfg.LagInterval = 500 * time.Millisecond
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	if cfg.CountBuffer <= 0 {
		cfg.CountBuffer = 1000
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	bus := cfg.Bus
	bus.MaxLen = cfg.StreamMaxLen
	pub, err := redisstream.NewPipelinedPublisher(bus)
	if err != nil {
		return nil, err
	}
	client, err := redisstream.NewClient(bus.URL)
	if err != nil {
		_ = pub.Close()
		return nil, err
	}
	return &Ingestor{cfg: cfg, pub: pub, client: client, stream: bus.Stream(StreamName), group: bus.Group(Role),
		log: cfg.Logger.With("component", "telemetry-ingest")}, nil
}

func (l Limits) withDefaults() Limits {
	if l.MaxBatch <= 0 {
		l.MaxBatch = DefaultLimits.MaxBatch
	}
	if l.MaxBatch > ptelemetry.MaxBatchEvents {
		l.MaxBatch = ptelemetry.MaxBatchEvents
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultLimits.MaxBodyBytes
	}
	if l.MaxAge <= 0 {
		l.MaxAge = DefaultLimits.MaxAge
	}
	if l.MaxSkew <= 0 {
		l.MaxSkew = DefaultLimits.MaxSkew
	}
	return l
}

// Limits are the limits of one request.
func (i *Ingestor) Limits() Limits { return i.cfg.Limits }

// Stream is the telemetry stream's full name.
func (i *Ingestor) Stream() string { return i.stream }

// Run samples the consumer group's lag until ctx ends. It creates the consumer group (at the
// start of the stream) if the projector has not yet, so the lag, and so the back-pressure,
// counts every message even before a projector ever ran. It does not close the Ingestor: the
// api role's last flush of evaluation counts comes after; call Close then.
func (i *Ingestor) Run(ctx context.Context) error {
	t := time.NewTicker(i.cfg.LagInterval)
	defer t.Stop()
	failing := false
	for {
		if err := i.sample(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				i.log.Warn("telemetry stream lag unavailable", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		i.retryCounts(ctx)
	}
}

func (i *Ingestor) sample(ctx context.Context) error {
	i.closeMu.RLock()
	defer i.closeMu.RUnlock()
	if i.closed {
		return errClosed
	}
	ctx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
	defer cancel()
	if !i.groupOK.Load() {
		err := i.client.XGroupCreateMkStream(ctx, i.stream, i.group, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("create consumer group %s: %w", i.group, err)
		}
		i.groupOK.Store(true)
	}
	lags, err := redisstream.StreamLag(ctx, i.client, i.stream)
	if err != nil {
		return err
	}
	var behind int64
	found := false
	for _, g := range lags {
		if g.Group == i.group {
			behind, found = g.Behind(), true
		}
	}
	if !found { // the stream or group was deleted: create it again
		i.groupOK.Store(false)
	}
	i.lag.Store(behind)
	i.lagAt.Store(time.Now().UnixNano())
	i.cfg.Metrics.setLag(behind)
	return nil
}

// Lag is the last sampled lag of the consumer group, in messages, and when it was sampled.
func (i *Ingestor) Lag() (int64, time.Time) {
	at := i.lagAt.Load()
	if at == 0 {
		return 0, time.Time{}
	}
	return i.lag.Load(), time.Unix(0, at)
}

// Retry-After of the two refusals: the lag is sampled every LagInterval and drains at the
// projector's pace; Redis outages are usually short or long, and polling every few seconds is cheap.
const (
	backlogRetryAfter     = 2
	unavailableRetryAfter = 5
)

// RetryAfterDetail is the Details key of a refusal's Retry-After seconds.
const RetryAfterDetail = "retry_after_seconds"

// Publish hands a batch to the stream and returns once Redis holds it, even if ctx (the request)
// ends meanwhile: the publish is bounded by PublishTimeout only. It returns a
// *domain.Error with Details[RetryAfterDetail] when the batch was not taken: ERateLimited while
// the projector lags past the bound, EUnavailable while Redis is unreachable.
func (i *Ingestor) Publish(ctx context.Context, b *ptelemetry.Batch) error {
	if lag, at := i.Lag(); lag > i.cfg.MaxLag && time.Since(at) < 10*i.cfg.LagInterval+time.Second {
		i.cfg.Metrics.ingested("backlog", 0, 0)
		return &domain.Error{Code: domain.ERateLimited,
			Message: fmt.Sprintf("telemetry is %d batches behind (bound %d); retry later", lag, i.cfg.MaxLag),
			Details: map[string]any{RetryAfterDetail: backlogRetryAfter}}
	}
	// The batch outlives the request: a client that leaves while its batch is on the way to
	// Redis (a timeout, a closed tab) must not turn a publish that Redis may well have taken into
	// a reported outage. The publish has its own bound (PublishTimeout) instead.
	if err := i.publish(context.WithoutCancel(ctx), b); err != nil {
		i.cfg.Metrics.ingested("unavailable", 0, 0)
		i.log.Warn("telemetry batch not published", "err", err, "events", b.Len())
		return &domain.Error{Code: domain.EUnavailable, Message: "the telemetry stream is unavailable; nothing was kept; retry later",
			Details: map[string]any{RetryAfterDetail: unavailableRetryAfter, domain.DependencyDetail: domain.DependencyRedis}}
	}
	if ctx.Err() != nil {
		// Stored, but nobody hears the 202: count it apart so a dashboard tells departed clients
		// (timeouts too short, crashes) from Redis outages. The SDK's retry, if any, dedupes by
		// event id.
		i.cfg.Metrics.ingested("client_gone", b.Len(), 0)
		i.log.Debug("telemetry batch stored after its client left", "batch", b.ID.String(), "events", b.Len(), "cause", context.Cause(ctx))
		return nil
	}
	i.cfg.Metrics.ingested("accepted", b.Len(), 0)
	return nil
}

// Refused records a request refused before publishing (outcome invalid or too_large) for /metrics.
func (i *Ingestor) Refused(outcome string, rejected int) {
	i.cfg.Metrics.ingested(outcome, 0, rejected)
}

// Rejected records events of an accepted batch that were refused one by one.
func (i *Ingestor) Rejected(n int) {
	if i.cfg.Metrics != nil && n > 0 {
		i.cfg.Metrics.ingestEvents.WithLabelValues("rejected").Add(float64(n))
	}
}

// Close publishes the evaluation counts still waiting (briefly), then closes the connections;
// later publishes fail. It is idempotent.
func (i *Ingestor) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), i.cfg.PublishTimeout)
	defer cancel()
	if err := i.flushCounts(ctx); err != nil {
		i.log.Warn("evaluation counts lost at shutdown", "err", err)
	}
	i.closeMu.Lock()
	defer i.closeMu.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	err := i.pub.Close()
	_ = i.client.Close()
	return err
}

var errClosed = errors.New("telemetry: the ingestor is closed")

func (i *Ingestor) publish(ctx context.Context, b *ptelemetry.Batch) error {
	i.closeMu.RLock()
	defer i.closeMu.RUnlock()
	if i.closed {
		return errClosed
	}
	payload, err := b.Marshal()
	if err != nil {
		return err
	}
	msg := message.NewMessage(b.ID.String(), payload)
	msg.Metadata.Set(MetaProject, b.Project)
	msg.Metadata.Set(MetaEnvironment, b.Environment)
	msg.Metadata.Set(MetaEvents, fmt.Sprint(b.Len()))
	ctx, cancel := context.WithTimeout(ctx, i.cfg.PublishTimeout)
	defer cancel()
	msg.SetContext(ctx)
	return i.pub.Publish(i.stream, msg)
}

// EvaluationCount is how often a variation of a flag was served by the api role during a window
// (its server-side evaluation counters).
type EvaluationCount struct {
	Project, Environment, Flag, Variation string
	Count                                 int64
	From, To                              time.Time
}

// RecordCounts publishes server-side evaluation counts as evaluation rows without a user (one
// batch per environment; each row counts Count evaluations, at the middle of its window), the
// same path as SDK events. While the stream is unreachable the batches wait in memory (up to
// CountBuffer, oldest dropped first) and are published later with the same event ids, so a
// batch that did reach Redis before an error is not stored twice.
func (i *Ingestor) RecordCounts(ctx context.Context, counts []EvaluationCount) error {
	byEnv := map[[2]string]*ptelemetry.Batch{}
	now := time.Now()
	var order []*ptelemetry.Batch
	for _, c := range counts {
		if c.Count <= 0 || c.Flag == "" {
			continue
		}
		key := [2]string{c.Project, c.Environment}
		b := byEnv[key]
		if b == nil || b.Len() >= ptelemetry.MaxBatchEvents-1 {
			b = ptelemetry.NewBatch(c.Project, c.Environment, now)
			byEnv[key] = b
			order = append(order, b)
		}
		at := c.From.Add(c.To.Sub(c.From) / 2)
		for n := c.Count; n > 0; n -= math.MaxInt32 {
			b.AddEvaluation(ptelemetry.EvaluationEvent{EventID: ptelemetry.NewEventID(), OccurredAt: at,
				Flag: c.Flag, Variation: c.Variation, Count: int32(min(n, math.MaxInt32))})
		}
	}
	i.countsMu.Lock()
	i.counts = append(i.counts, order...)
	if over := len(i.counts) - i.cfg.CountBuffer; over > 0 {
		i.counts = append([]*ptelemetry.Batch(nil), i.counts[over:]...)
		if i.cfg.Metrics != nil {
			i.cfg.Metrics.countsDropped.Add(float64(over))
		}
		i.log.Error("server-side evaluation counts dropped: the telemetry stream stayed unreachable", "batches", over)
	}
	i.countsMu.Unlock()
	return i.flushCounts(ctx)
}

func (i *Ingestor) retryCounts(ctx context.Context) {
	i.countsMu.Lock()
	n := len(i.counts)
	i.countsMu.Unlock()
	if n > 0 {
		_ = i.flushCounts(ctx)
	}
}

// flushCounts publishes waiting count batches in order and stops at the first failure.
func (i *Ingestor) flushCounts(ctx context.Context) error {
	i.countsMu.Lock()
	defer i.countsMu.Unlock()
	for len(i.counts) > 0 {
		b := i.counts[0]
		if b.Len() > 0 {
			if err := i.publish(ctx, b); err != nil {
				return fmt.Errorf("telemetry: publish evaluation counts (%d batches wait): %w", len(i.counts), err)
			}
		}
		i.counts = i.counts[1:]
	}
	return nil
}

// RetryAfter returns the Retry-After seconds of a refusal returned by Publish.
func RetryAfter(err error) (int, bool) {
	var de *domain.Error
	if !errors.As(err, &de) || de.Details == nil {
		return 0, false
	}
	n, ok := de.Details[RetryAfterDetail].(int)
	return n, ok
}
