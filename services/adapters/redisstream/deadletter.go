package redisstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// MetaUndecodable is set on a message whose stream entry could not be unmarshalled; its value is
// the error, and the payload is the raw entry as JSON. DeadLetter sends such messages straight to
// the dead-letter stream.
const MetaUndecodable = "vexil_undecodable"

// Metadata DeadLetter adds to a dead-lettered message, besides watermill's poison-queue keys
// (reason_poisoned, topic_poisoned, handler_poisoned, subscriber_poisoned).
const MetaDeadLetteredAt = "vexil_dead_lettered_at"

// tolerantUnmarshaller never fails: an entry watermill cannot unmarshal (no message uuid, bad
// metadata) would otherwise end the subscription and be redelivered forever, blocking the group.
type tolerantUnmarshaller struct {
	wrs.DefaultMarshallerUnmarshaller
}

func (u tolerantUnmarshaller) Unmarshal(values map[string]any) (*message.Message, error) {
	msg, err := u.unmarshal(values)
	if err == nil {
		return msg, nil
	}
	raw, jerr := json.Marshal(values)
	if jerr != nil {
		raw = []byte(fmt.Sprintf("%q", fmt.Sprint(values)))
	}
	msg = message.NewMessage(watermill.NewUUID(), raw)
	msg.Metadata.Set(MetaUndecodable, err.Error())
	return msg, nil
}

func (u tolerantUnmarshaller) unmarshal(values map[string]any) (msg *message.Message, err error) {
	defer func() { // the default unmarshaller type-asserts field values
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("unmarshal stream entry: %v", r)
		}
	}()
	return u.DefaultMarshallerUnmarshaller.Unmarshal(values)
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as a failure that no retry can fix (the payload cannot be decoded, it
// names nothing valid): DeadLetter sends the message to the dead-letter stream at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// DeadLetterConfig configures DeadLetter.
type DeadLetterConfig struct {
	// Publisher and Topic of the dead-letter stream (Config.DeadLetterStream()). Required.
	Publisher message.Publisher
	Topic     string
	// MaxAttempts is how many times the handler runs, with exponential backoff between attempts
	// (InitialBackoff doubling up to MaxBackoff), before the message is dead-lettered. Default 5.
	MaxAttempts    int
	InitialBackoff time.Duration // default 100ms
	MaxBackoff     time.Duration // default 2s
	// Retryable marks errors that never dead-letter a message: the message is nacked and
	// redelivered (after NackResendSleep) until it succeeds. Use it for outages of a dependency
	// (postgres.IsTransient), where every message would fail and none is at fault. Context
	// cancellation (shutdown) is always retryable.
	Retryable func(error) bool
	// OnDeadLetter, if set, is called after a message was published to the dead-letter stream.
	OnDeadLetter func(msg *message.Message, reason error)
	Logger       *slog.Logger
}

// DeadLetter returns handler middleware that keeps one bad message from blocking a stream
// (watermill-redisstream delivers one message at a time per consumer and redelivers a nacked
// message forever). A message goes to the dead-letter stream, and is acked, when:
//   - it could not be unmarshalled from the stream (MetaUndecodable), or
//   - the handler returns an error marked Permanent, or
//   - the handler still fails after MaxAttempts attempts with an error that is not Retryable
//     (a panic counts as such an error).
//
// The dead-lettered message keeps its uuid, payload and metadata, plus the reason. If the
// dead-letter stream cannot be written either, the message is nacked and redelivered. It is
// engine-independent watermill middleware (watermill's PoisonQueue and Retry underneath).
func DeadLetter(cfg DeadLetterConfig) (message.HandlerMiddleware, error) {
	if cfg.Publisher == nil || cfg.Topic == "" {
		return nil, errors.New("redisstream: dead letter needs a publisher and a topic")
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	retryable := func(err error) bool {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return true
		}
		return !IsPermanent(err) && cfg.Retryable != nil && cfg.Retryable(err)
	}
	pub := &deadLetterPublisher{cfg: cfg}
	poison, err := middleware.PoisonQueueWithFilter(pub, cfg.Topic, func(err error) bool { return !retryable(err) })
	if err != nil {
		return nil, err
	}
	retry := middleware.Retry{
		MaxRetries:          cfg.MaxAttempts - 1,
		InitialInterval:     cfg.InitialBackoff,
		MaxInterval:         cfg.MaxBackoff,
		Multiplier:          2,
		RandomizationFactor: 0.2,
		ShouldRetry:         func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) && !retryable(p.Err) },
		ResetContextOnRetry: true,
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		inner := retry.Middleware(middleware.Recoverer(h))
		return poison(func(msg *message.Message) ([]*message.Message, error) {
			if reason := msg.Metadata.Get(MetaUndecodable); reason != "" {
				return nil, Permanent(fmt.Errorf("undecodable stream entry: %s", reason))
			}
			return inner(msg)
		})
	}, nil
}

// deadLetterPublisher stamps, logs and reports each dead-lettered message.
type deadLetterPublisher struct{ cfg DeadLetterConfig }

func (p *deadLetterPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		m.Metadata.Set(MetaDeadLetteredAt, time.Now().UTC().Format(time.RFC3339Nano))
	}
	if err := p.cfg.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	for _, m := range msgs {
		reason := m.Metadata.Get(middleware.ReasonForPoisonedKey)
		p.cfg.Logger.Warn("message dead-lettered", "uuid", m.UUID, "stream", topic,
			"from", m.Metadata.Get(middleware.PoisonedTopicKey), "reason", reason)
		if p.cfg.OnDeadLetter != nil {
			p.cfg.OnDeadLetter(m, errors.New(reason))
		}
	}
	return nil
}

func (p *deadLetterPublisher) Close() error { return nil }
