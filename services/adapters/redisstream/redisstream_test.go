package redisstream_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/testkit"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testConfig(t *testing.T) redisstream.Config {
	return redisstream.Config{URL: redistest.URL(), Prefix: redistest.NewPrefix(t), Logger: quiet,
		NackResendSleep: 10 * time.Millisecond, BlockTime: 50 * time.Millisecond}
}

func TestNamesAndPrefixGuard(t *testing.T) {
	t.Parallel()
	cfg := redisstream.Config{URL: redistest.URL(), Prefix: "vexil", Logger: quiet}
	if cfg.DomainStream() != "vexil:domain" || cfg.DeadLetterStream() != "vexil:dead-letter" || cfg.Group("projector") != "vexil-projector" {
		t.Fatalf("names %s %s %s", cfg.DomainStream(), cfg.DeadLetterStream(), cfg.Group("projector"))
	}
	pub, err := redisstream.NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish("other:domain", message.NewMessage("1", nil)); err == nil {
		t.Fatal("published outside the prefix")
	}
	sub, err := redisstream.NewSubscriber(cfg, cfg.Group("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(context.Background(), "other:domain"); err == nil {
		t.Fatal("subscribed outside the prefix")
	}
	if _, err := redisstream.NewPublisher(redisstream.Config{URL: redistest.URL()}); err == nil {
		t.Fatal("empty prefix accepted")
	}
	if _, err := redisstream.NewSubscriber(cfg, ""); err == nil {
		t.Fatal("empty group accepted")
	}
}

type recordingPublisher struct {
	mu   sync.Mutex
	msgs []*message.Message
	err  error
}

func (p *recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.msgs = append(p.msgs, msgs...)
	return nil
}
func (p *recordingPublisher) Close() error { return nil }

func TestDeadLetterMiddleware(t *testing.T) {
	t.Parallel()
	errDown := errors.New("database down")
	for _, c := range []struct {
		name        string
		undecodable bool
		err         error
		calls       int
		dead        bool
		returnsErr  bool
	}{
		{name: "success", err: nil, calls: 1},
		{name: "permanent", err: redisstream.Permanent(errors.New("bad payload")), calls: 1, dead: true},
		{name: "keeps failing", err: errors.New("bug"), calls: 3, dead: true},
		{name: "retryable", err: errDown, calls: 1, returnsErr: true},
		{name: "canceled", err: context.Canceled, calls: 1, returnsErr: true},
		{name: "undecodable", undecodable: true, calls: 0, dead: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			pub := &recordingPublisher{}
			var mu sync.Mutex
			deadLettered := 0
			mw, err := redisstream.DeadLetter(redisstream.DeadLetterConfig{
				Publisher: pub, Topic: "p:dead-letter", MaxAttempts: 3, InitialBackoff: time.Millisecond,
				Retryable:    func(err error) bool { return errors.Is(err, errDown) },
				OnDeadLetter: func(*message.Message, error) { mu.Lock(); deadLettered++; mu.Unlock() },
				Logger:       quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			calls := 0
			h := mw(func(*message.Message) ([]*message.Message, error) { calls++; return nil, c.err })
			msg := message.NewMessage("m1", []byte("payload"))
			if c.undecodable {
				msg.Metadata.Set(redisstream.MetaUndecodable, "no uuid")
			}
			_, err = h(msg)
			if (err != nil) != c.returnsErr || calls != c.calls || (len(pub.msgs) == 1) != c.dead || (deadLettered == 1) != c.dead {
				t.Fatalf("err %v, calls %d, dead letters %d/%d", err, calls, len(pub.msgs), deadLettered)
			}
			if c.dead && (pub.msgs[0].UUID != "m1" || pub.msgs[0].Metadata.Get("reason_poisoned") == "") {
				t.Fatalf("dead letter %+v", pub.msgs[0])
			}
		})
	}
	// When the dead-letter stream cannot be written either, the message is not acked.
	pub := &recordingPublisher{err: errors.New("redis down")}
	mw, _ := redisstream.DeadLetter(redisstream.DeadLetterConfig{Publisher: pub, Topic: "p:dl", MaxAttempts: 1, Logger: quiet})
	if _, err := mw(func(*message.Message) ([]*message.Message, error) {
		return nil, redisstream.Permanent(errors.New("bad"))
	})(message.NewMessage("m", nil)); err == nil {
		t.Fatal("acked a message that could not be dead-lettered")
	}
}

func TestUndecodableEntryDoesNotStopSubscription(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := redisstream.NewClient(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	stream := cfg.Stream("t")
	if err := client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"junk": "1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	pub, err := redisstream.NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(stream, message.NewMessage("good", []byte("ok"))); err != nil {
		t.Fatal(err)
	}
	sub, err := redisstream.NewSubscriber(cfg, cfg.Group("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	first := <-msgs
	if first == nil || first.Metadata.Get(redisstream.MetaUndecodable) == "" {
		t.Fatalf("first message %+v, want one flagged undecodable", first)
	}
	first.Ack()
	second := <-msgs
	if second == nil || second.UUID != "good" || string(second.Payload) != "ok" {
		t.Fatalf("second message %+v", second)
	}
	second.Ack()

	// Lag: nothing behind once both are acked.
	testkit.WaitFor(t, 5*time.Second, "no lag in the group", func() bool {
		lags, err := redisstream.StreamLag(ctx, client, stream)
		if err != nil {
			t.Fatal(err)
		}
		return len(lags) == 1 && lags[0].Behind() == 0 && lags[0].Group == cfg.Group("t")
	})
}

func TestStreamLag(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	ctx := context.Background()
	client, err := redisstream.NewClient(cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	stream := cfg.Stream("lag")
	if lags, err := redisstream.StreamLag(ctx, client, stream); err != nil || lags != nil {
		t.Fatalf("missing stream: %v, %v", lags, err)
	}
	for range 3 {
		client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"k": "v"}})
	}
	if err := client.XGroupCreate(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 1}).Err(); err != nil {
		t.Fatal(err)
	}
	lags, err := redisstream.StreamLag(ctx, client, stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(lags) != 1 || lags[0].Pending != 1 || lags[0].Lag != 2 || lags[0].Behind() != 3 || lags[0].Consumers != 1 {
		t.Fatalf("lag %+v", lags)
	}
	if n, err := redisstream.StreamLength(ctx, client, stream); err != nil || n != 3 {
		t.Fatalf("length %d, %v", n, err)
	}
}
