// Package redisstream adapts Redis Streams, through watermill-redisstream, as Vexil's event bus:
// publishers and consumer-group or fan-out subscribers built from configuration, stream names
// under one prefix, a dead-letter stream for poison messages, and stream lag for /metrics.
//
// Everything above this package sees only watermill's message.Publisher and message.Subscriber,
// so another watermill engine can replace Redis by configuration.
//
// Streams (with the default prefix "vexil"):
//
//	vexil:domain       domain events, one message per append (see postgres.AppendedEvents)
//	vexil:dead-letter  messages a consumer could not decode or kept failing on
//
// Consumer groups are named "<prefix>-<role>", e.g. "vexil-projector".
package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// Stream names under the prefix.
const (
	DomainStreamName     = "domain"
	DeadLetterStreamName = "dead-letter"
)

// Config says how to reach Redis and how consumers behave. The zero value of every duration
// picks the default documented on it.
type Config struct {
	// URL of the Redis server, e.g. redis://127.0.0.1:6379/0 (rediss:// for TLS).
	URL string
	// Prefix of every stream and consumer group, so several Vexil installations (or tests) can
	// share one Redis. Required.
	Prefix string
	// NackResendSleep is how long a consumer waits before a failed (nacked) message is delivered
	// again. Default 500ms. watermill-redisstream's own default redelivers at once, in a hot loop.
	NackResendSleep time.Duration
	// BlockTime bounds each XREADGROUP/XREAD wait, and so how long Close may take. Default 500ms.
	BlockTime time.Duration
	// MaxIdleTime after which another consumer of the group claims a message delivered to a
	// consumer that died before acking it. Default 60s.
	MaxIdleTime time.Duration
	// ClaimInterval is how often consumers look for such messages. Default 5s.
	ClaimInterval time.Duration
	// MaxLen trims published streams to about this many entries; 0 keeps everything. The event
	// store is the record, but a trimmed stream loses notifications a stopped consumer had not
	// read yet (the projector's catch-up at start repairs that).
	MaxLen int64
	// Logger for watermill's logs (default slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.NackResendSleep == 0 {
		c.NackResendSleep = 500 * time.Millisecond
	}
	if c.BlockTime == 0 {
		c.BlockTime = 500 * time.Millisecond
	}
	if c.MaxIdleTime == 0 {
		c.MaxIdleTime = 60 * time.Second
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if c.URL == "" {
		return errors.New("redisstream: empty Redis URL")
	}
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, " \t\r\n") {
		return fmt.Errorf("redisstream: invalid stream prefix %q", c.Prefix)
	}
	return nil
}

// Stream returns the full name of the stream called name: "<prefix>:<name>".
func (c Config) Stream(name string) string { return c.Prefix + ":" + name }

// DomainStream is the stream of domain events: "<prefix>:domain".
func (c Config) DomainStream() string { return c.Stream(DomainStreamName) }

// DeadLetterStream is where poison messages go: "<prefix>:dead-letter".
func (c Config) DeadLetterStream() string { return c.Stream(DeadLetterStreamName) }

// Group returns the consumer group of a role: "<prefix>-<role>", e.g. "vexil-projector".
func (c Config) Group(role string) string { return c.Prefix + "-" + role }

// NewClient returns a go-redis client for a redis:// or rediss:// URL. It does not connect until
// first used.
func NewClient(url string) (*redis.Client, error) { return newClient(url, 0) }

// newClient is NewClient with at least minPool connections in the client's pool (0: go-redis's
// default, 10 per CPU), unless the URL sets pool_size.
func newClient(url string, minPool int) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redisstream: parse Redis URL: %w", err)
	}
	if minPool > 0 && opts.PoolSize == 0 {
		opts.PoolSize = max(minPool, 10*runtime.GOMAXPROCS(0))
	}
	return redis.NewClient(opts), nil
}

// NewPublisher returns a publisher of messages to streams under the prefix (XADD, one per
// message). It owns its Redis client: Close closes it. Publishing to a stream outside the
// prefix is an error.
func NewPublisher(cfg Config) (message.Publisher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := NewClient(cfg.URL)
	if err != nil {
		return nil, err
	}
	pub, err := wrs.NewPublisher(wrs.PublisherConfig{Client: client, DefaultMaxlen: cfg.MaxLen},
		watermill.NewSlogLogger(cfg.Logger))
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redisstream: publisher: %w", err)
	}
	return prefixedPublisher{pub: pub, prefix: cfg.Prefix + ":"}, nil
}

// NewSubscriber returns a subscriber in consumer group group (see Config.Group): the group's
// consumers share the messages, each delivered to one of them and redelivered until acked
// (at-least-once). A new group starts at the beginning of the stream. Messages that cannot be
// unmarshalled are delivered flagged as undecodable (see DeadLetter) instead of stopping the
// subscription. It owns its Redis client: Close closes it.
//
// Subscriptions survive Redis incidents: when Redis is unreachable, restarted or failed over,
// or lost the stream or the group (NOGROUP after a flush or a restart without persistence),
// the subscription re-creates the stream and the group and resumes, logging once when the
// incident begins and once when it ends (see OnRecovered to repair what the incident lost).
func NewSubscriber(cfg Config, group string, opts ...SubscriberOption) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("redisstream: empty consumer group (use NewFanOutSubscriber for fan-out)")
	}
	return newSubscriber(cfg, group, opts)
}

// NewFanOutSubscriber returns a subscriber outside any consumer group: every subscriber sees every
// message published after it subscribed (the SDK serving replicas use it). Nothing is acked in
// Redis, and a replica that was down catches up by reconciling with the database, not the stream.
// After a Redis incident it resumes reading from shortly before the incident began.
func NewFanOutSubscriber(cfg Config, opts ...SubscriberOption) (message.Subscriber, error) {
	return newSubscriber(cfg, "", opts)
}

func newSubscriber(cfg Config, group string, opts []SubscriberOption) (message.Subscriber, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := newRecoveringSubscriber(cfg, group, opts)
	minPool := 0
	if s.subscriptions > 0 {
		minPool = s.subscriptions + redisSpareConnections
	}
	client, err := newClient(cfg.URL, minPool)
	if err != nil {
		return nil, err
	}
	s.client = client
	return prefixedSubscriber{sub: s, prefix: cfg.Prefix + ":"}, nil
}

// prefixedPublisher refuses streams outside the prefix, so no role writes where another
// installation sharing the Redis would read.
type prefixedPublisher struct {
	pub    message.Publisher
	prefix string
}

func (p prefixedPublisher) Publish(topic string, msgs ...*message.Message) error {
	if !strings.HasPrefix(topic, p.prefix) {
		return fmt.Errorf("redisstream: stream %q is outside the prefix %q", topic, p.prefix)
	}
	return p.pub.Publish(topic, msgs...)
}

func (p prefixedPublisher) Close() error { return p.pub.Close() }

type prefixedSubscriber struct {
	sub    message.Subscriber
	prefix string
}

func (s prefixedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if !strings.HasPrefix(topic, s.prefix) {
		return nil, fmt.Errorf("redisstream: stream %q is outside the prefix %q", topic, s.prefix)
	}
	return s.sub.Subscribe(ctx, topic)
}

func (s prefixedSubscriber) Close() error { return s.sub.Close() }
