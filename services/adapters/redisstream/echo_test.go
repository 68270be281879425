package redisstream_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/testkit"
)

// A connection cut seen by several subscriptions of one subscriber, each at its own read (some
// only after the first recovered, through the broken connections left in the client's pool), is
// one incident: logged once when it begins and once when it ends.
func TestConnectionCutIsOneIncidentForEverySubscription(t *testing.T) {
	t.Parallel()
	proxy := redistest.NewProxy(t)
	logs := &logBuffer{}
	cfg := redisstream.Config{URL: proxy.URL(), Prefix: redistest.NewPrefix(t), BlockTime: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	stream := cfg.Stream("t")
	sub, err := redisstream.NewSubscriber(cfg, cfg.Group("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 1024)
	for range 4 {
		msgs, err := sub.Subscribe(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range msgs {
				got <- string(m.Payload)
				m.Ack()
			}
		}()
	}
	pub, err := redisstream.NewPublisher(redisstream.Config{URL: redistest.URL(), Prefix: cfg.Prefix, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	roundTrip := func(payload string) {
		t.Helper()
		if err := pub.Publish(stream, message.NewMessage(payload, []byte(payload))); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(15 * time.Second)
		for {
			select {
			case p := <-got:
				if p == payload {
					return
				}
			case <-timeout:
				t.Fatalf("%s not delivered", payload)
			}
		}
	}
	roundTrip("before")
	proxy.Cut()
	testkit.WaitFor(t, 15*time.Second, "the incident logged", func() bool { return logs.count("Redis stream unavailable") > 0 })
	proxy.Restore()
	testkit.WaitFor(t, 15*time.Second, "the recovery logged", func() bool { return logs.count("Redis stream recovered") > 0 })
	for i := range 20 { // every subscription reads again, through the pool's connections
		roundTrip("after-" + string(rune('a'+i)))
	}
	if n := logs.count("Redis stream unavailable"); n != 1 {
		t.Errorf("%d incident lines, want 1:\n%s", n, logs.buf.String())
	}
	if n := logs.count("Redis stream recovered"); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, logs.buf.String())
	}
}
