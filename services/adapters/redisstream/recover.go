package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// SubscriberOption adjusts a subscriber built by NewSubscriber or NewFanOutSubscriber.
type SubscriberOption func(*recoveringSubscriber)

// OnRecovered sets fn to be called when a subscription resumes after an incident: Redis was
// unreachable, restarted, failed over, or lost the stream or the consumer group (FLUSHALL, a
// restart without persistence). Messages published before or during the incident may be gone,
// so fn repairs from the record (the projector catches up from the event store, the api role
// reconciles its snapshots). It runs on the subscription's goroutine before consumption resumes,
// with the subscription's context.
func OnRecovered(fn func(ctx context.Context)) SubscriberOption {
	return func(s *recoveringSubscriber) { s.onRecovered = fn }
}

// Subscriptions says how many subscriptions the subscriber will hold at once, so its Redis
// client keeps a connection for each one's blocking read besides those its acks and claims
// need: with fewer, acks wait in the pool for reads that block up to BlockTime.
func Subscriptions(n int) SubscriberOption {
	return func(s *recoveringSubscriber) { s.subscriptions = n }
}

// redisSpareConnections are the connections a subscriber's client keeps beyond one per
// subscription (acks, claims, group creation).
const redisSpareConnections = 8

// retryInterval is how often a subscription in an incident tries Redis again: short, so
// consumers resume well within seconds of Redis coming back, and cheap (one command).
const retryInterval = 250 * time.Millisecond

// fanOutRewind is how far before an incident began a fan-out subscription resumes reading:
// stream ids are Redis's clock in milliseconds, so anything published since the incident began
// (into a stream that survived, or into a new one after Redis lost its data) is read again.
// Fan-out consumers are idempotent; a few notifications seen twice cost a refresh each.
const fanOutRewind = 5 * time.Second

// recoveringSubscriber keeps each subscription alive across Redis incidents. Every subscription
// is a loop: make sure the stream and the consumer group exist (XGROUP CREATE ... MKSTREAM; a
// PING for fan-out), consume through watermill-redisstream until a read fails, then start over.
// watermill-redisstream creates the group only when subscribing and otherwise logs "read fail"
// every 500ms forever when the group is gone (NOGROUP): its reads here stop at the first error
// instead, and the incident is logged once when it begins and once when it ends.
type recoveringSubscriber struct {
	cfg         Config
	group       string // "" for fan-out
	consumer    string
	client      *redis.Client
	log         *slog.Logger
	wmLog       watermill.LoggerAdapter
	onRecovered func(ctx context.Context)
	// subscriptions expected at once (Subscriptions), to size the client's pool; 0: unknown.
	subscriptions int

	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	mu          sync.Mutex
	failing     int       // subscriptions currently in an incident
	since       time.Time // when the current incident began
	announced   bool      // the current incident was logged
	recoveredAt time.Time // when the last incident ended
}

// newRecoveringSubscriber returns a subscriber without its client (set it before use).
func newRecoveringSubscriber(cfg Config, group string, opts []SubscriberOption) *recoveringSubscriber {
	s := &recoveringSubscriber{cfg: cfg, group: group, consumer: watermill.NewShortUUID(),
		log: cfg.Logger.With("component", "redisstream"), closing: make(chan struct{})}
	s.wmLog = quietReadErrors{watermill.NewSlogLogger(cfg.Logger)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Subscribe returns at once; the subscription waits for Redis if it is unreachable. The channel
// closes when ctx ends or the subscriber is closed.
func (s *recoveringSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	select {
	case <-s.closing:
		return nil, errors.New("redisstream: subscriber closed")
	default:
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		s.follow(ctx, topic, out)
	}()
	return out, nil
}

func (s *recoveringSubscriber) stopped(ctx context.Context) bool {
	select {
	case <-s.closing:
		return true
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// follow runs one subscription's loop until ctx ends or the subscriber closes.
func (s *recoveringSubscriber) follow(ctx context.Context, topic string, out chan<- *message.Message) {
	inIncident := false
	var began time.Time
	for !s.stopped(ctx) {
		if err := s.prepare(ctx, topic); err != nil {
			if s.stopped(ctx) {
				return
			}
			if !inIncident {
				inIncident, began = true, time.Now()
				s.incidentBegan(topic, err)
			}
			select {
			case <-ctx.Done():
			case <-s.closing:
			case <-time.After(retryInterval):
			}
			continue
		}
		if inIncident {
			// (inIncident is set again below: every end of consume starts an incident.)
			s.incidentEnded(ctx, topic)
		}
		readErr := s.consume(ctx, topic, out, began)
		if s.stopped(ctx) {
			return
		}
		if readErr == nil {
			readErr = errors.New("subscription ended")
		}
		inIncident, began = true, time.Now()
		s.incidentBegan(topic, readErr)
		// No wait: after a flush the group can be re-created at once.
	}
}

// prepare makes sure the stream and the consumer group exist, starting a new group at the
// beginning of the stream so nothing published before it existed is skipped.
func (s *recoveringSubscriber) prepare(ctx context.Context, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if s.group == "" {
		return s.client.Ping(ctx).Err()
	}
	err := s.client.XGroupCreateMkStream(ctx, topic, s.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s on %s: %w", s.group, topic, err)
	}
	return nil
}

// consume forwards one watermill-redisstream subscription to out until its first read error
// (returned), ctx's end or Close. resumeAfter is when the incident it follows began (zero for
// the first subscription): a fan-out subscription reads from shortly before it.
func (s *recoveringSubscriber) consume(ctx context.Context, topic string, out chan<- *message.Message, resumeAfter time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		readErr error
	)
	fanOutFrom := "$"
	if !resumeAfter.IsZero() {
		fanOutFrom = fmt.Sprintf("%d-0", resumeAfter.Add(-fanOutRewind).UnixMilli())
	}
	sub, err := wrs.NewSubscriber(wrs.SubscriberConfig{
		Client:          s.client,
		Unmarshaller:    tolerantUnmarshaller{},
		Consumer:        s.consumer,
		ConsumerGroup:   s.group,
		NackResendSleep: s.cfg.NackResendSleep,
		BlockTime:       s.cfg.BlockTime,
		ClaimInterval:   s.cfg.ClaimInterval,
		MaxIdleTime:     s.cfg.MaxIdleTime,
		OldestId:        "0",
		FanOutOldestId:  fanOutFrom,
		// Without it the first read blocks forever and leaks a goroutine past Close.
		DisableIndefiniteInitialBlock: true,
		// Stop at the first failed read (NOGROUP after a flush or an empty restart, a dropped
		// connection): follow re-creates what is missing and subscribes again.
		// Canceling also ends an ack that watermill-redisstream would otherwise retry every 100ms
		// until Redis is back; the message stays pending and is redelivered (handlers are
		// idempotent), or was lost with the stream.
		ShouldStopOnReadErrors: func(err error) bool {
			mu.Lock()
			readErr = err
			mu.Unlock()
			cancel()
			return true
		},
	}, s.wmLog)
	if err != nil {
		return err
	}
	// The inner subscriber is never closed: that would close the shared client. Canceling ctx
	// stops it.
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	for msg := range msgs {
		select {
		case out <- msg:
		case <-ctx.Done(): // the inner subscription ends too, without acking msg
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return readErr
}

// incidentBegan logs the first subscription of this subscriber to fail; the others join silently.
// A failure soon after a recovery (within two reads and a retry) is the same incident: the other
// subscriptions of the subscriber find the connections the incident broke in the client's pool at
// their next read, after the first one already recovered.
func (s *recoveringSubscriber) incidentBegan(topic string, err error) {
	merge := 2*s.cfg.BlockTime + retryInterval
	s.mu.Lock()
	s.failing++
	announce := s.failing == 1 && (s.recoveredAt.IsZero() || time.Since(s.recoveredAt) > merge)
	if announce {
		s.since, s.announced = time.Now(), true
	}
	s.mu.Unlock()
	if announce {
		s.log.Warn("Redis stream unavailable or lost; consumers will re-create it and resume by themselves",
			"stream", topic, "group", s.group, "err", err, "retry_every", retryInterval)
	}
}

// incidentEnded logs the recovery when the last failing subscription resumed (once per logged
// incident), and runs the OnRecovered hook.
func (s *recoveringSubscriber) incidentEnded(ctx context.Context, topic string) {
	s.mu.Lock()
	s.failing--
	last := s.failing == 0
	announced := last && s.announced
	if last {
		s.recoveredAt, s.announced = time.Now(), false
	}
	since := s.since
	s.mu.Unlock()
	if !last {
		return
	}
	if announced {
		s.log.Info("Redis stream recovered; consuming again", "stream", topic, "group", s.group,
			"after", time.Since(since).Round(time.Millisecond))
	}
	if s.onRecovered != nil {
		s.onRecovered(ctx)
	}
}

// Close ends every subscription and closes the client. It is idempotent (the router and the
// role both close it).
func (s *recoveringSubscriber) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.wg.Wait()
		s.closeErr = s.client.Close()
	})
	return s.closeErr
}

// quietReadErrors turns the errors that recoveringSubscriber reports itself (once per incident)
// into debug lines, so an incident is not logged by watermill-redisstream again on every retry.
// An ack lost in an incident is one of them: the message stays pending and is redelivered.
type quietReadErrors struct{ watermill.LoggerAdapter }

func (l quietReadErrors) Error(msg string, err error, fields watermill.LogFields) {
	switch msg {
	case "stop reading after error", "read fail", "xpendingext fail", "xinfoconsumers failed", "xclaim fail", "Message Acked fail":
		l.LoggerAdapter.Debug(msg, fields.Add(watermill.LogFields{"err": err}))
	default:
		l.LoggerAdapter.Error(msg, err, fields)
	}
}

func (l quietReadErrors) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return quietReadErrors{l.LoggerAdapter.With(fields)}
}

// RouteClientLogs sends go-redis's own log lines (each failed dial while Redis is unreachable,
// several a second) to log at debug level: subscriptions log an incident once when it begins and
// once when it ends, and errors reach callers. It sets go-redis's process-wide logger: call it
// once, from the composition root.
func RouteClientLogs(log *slog.Logger) {
	redis.SetLogger(clientLogs{log})
}

type clientLogs struct{ log *slog.Logger }

func (l clientLogs) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
