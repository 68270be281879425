package redisstream_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/testkit"
)

// logBuffer collects log lines safely from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many lines contain every one of parts.
func (b *logBuffer) count(parts ...string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, line := range strings.Split(b.buf.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// A consumer-group subscriber and a fan-out subscriber keep delivering when Redis loses its data
// (FLUSHALL) and when it is killed and started again empty: the group and the stream are
// re-created, the OnRecovered hook runs, and each incident is logged once when it begins and once
// when it ends, not on every retry.
func TestSubscriptionsSurviveRedisLosingItsData(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	logs := &logBuffer{}
	redisstream.RouteClientLogs(quiet)
	cfg := redisstream.Config{URL: srv.URL(), Prefix: "recover", BlockTime: 50 * time.Millisecond,
		NackResendSleep: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	stream := cfg.Stream("t")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	recovered := map[string]chan struct{}{"group": make(chan struct{}, 8), "fan-out": make(chan struct{}, 8)}
	group, err := redisstream.NewSubscriber(cfg, cfg.Group("t"),
		redisstream.OnRecovered(func(context.Context) { recovered["group"] <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	fanOut, err := redisstream.NewFanOutSubscriber(cfg,
		redisstream.OnRecovered(func(context.Context) { recovered["fan-out"] <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer fanOut.Close()
	received := map[string]chan string{}
	for name, sub := range map[string]interface {
		Subscribe(context.Context, string) (<-chan *message.Message, error)
	}{"group": group, "fan-out": fanOut} {
		ch := make(chan string, 1024)
		received[name] = ch
		// Three subscriptions share the group (as the telemetry projector's workers do): each
		// finds the broken connections at its own next read, and the incident is still one.
		n := 1
		if name == "group" {
			n = 3
		}
		for range n {
			msgs, err := sub.Subscribe(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for m := range msgs {
					ch <- string(m.Payload)
					m.Ack()
				}
			}()
		}
	}
	pub, err := redisstream.NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publish := func(payload string) {
		t.Helper()
		// Redis may be starting again: retry until it takes the message.
		testkit.WaitFor(t, 15*time.Second, "publishing "+payload, func() bool {
			return pub.Publish(stream, message.NewMessage(payload, []byte(payload))) == nil
		})
	}
	// expect waits for payload on both subscriptions, skipping earlier ones seen again (the
	// fan-out subscription rewinds a little after an incident).
	expect := func(payload string) {
		t.Helper()
		for name, ch := range received {
			timeout := time.After(15 * time.Second)
		wait:
			for {
				select {
				case got := <-ch:
					if got == payload {
						break wait
					}
				case <-timeout:
					t.Fatalf("%s subscription: %q not delivered", name, payload)
				}
			}
		}
	}
	expectRecovered := func(names ...string) {
		t.Helper()
		for _, name := range names {
			ch := recovered[name]
			select {
			case <-ch:
			case <-time.After(15 * time.Second):
				t.Fatalf("%s subscription: OnRecovered not called", name)
			}
		}
	}
	// The fan-out subscription starts at the end of the stream: wait until it reads.
	transactional := func(payload string) {
		t.Helper()
		publish(payload)
		expect(payload)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		publish("warm-up")
		select {
		case <-received["fan-out"]:
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the fan-out subscription never read")
			}
			continue
		}
		break
	}
	transactional("before")

	client := srv.Client()
	if err := client.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	transactional("after-flush")
	// The group is back (re-created at the start of the new stream).
	if lags, err := redisstream.StreamLag(ctx, client, stream); err != nil || len(lags) != 1 || lags[0].Group != cfg.Group("t") {
		t.Fatalf("groups after the flush: %+v, %v", lags, err)
	}
	// A fan-out read (XREAD) of a missing stream just waits: the fan-out subscription sees the
	// new stream without an incident.
	expectRecovered("group")

	// Down long enough for both subscriptions to notice (go-redis retries a failed read a few
	// times first), then back, empty.
	srv.Kill()
	testkit.WaitFor(t, 15*time.Second, "both subscriptions' incidents logged while Redis is down", func() bool {
		return logs.count("Redis stream unavailable", `group=""`) > 0 && logs.count("Redis stream unavailable", "group="+cfg.Group("t")) >= 2
	})
	srv.Start()
	transactional("after-restart")
	expectRecovered("group", "fan-out")

	// The hooks may also run for the echoes of an incident (merged into it, so not logged): wait
	// for the last recovery line rather than trust the hook's signal.
	testkit.WaitFor(t, 15*time.Second, "the third recovery line", func() bool { return logs.count("Redis stream recovered") >= 3 })
	if n := logs.count("Redis stream unavailable", "group="+cfg.Group("t")); n != 2 {
		t.Errorf("%d incident lines of the consumer group, want 2 (one per incident):\n%s", n, logs.buf.String())
	}
	if n := logs.count("Redis stream unavailable"); n != 3 {
		t.Errorf("%d incident lines, want 3 (the group's 2, the fan-out's restart):\n%s", n, logs.buf.String())
	}
	if n := logs.count("Redis stream recovered"); n != 3 {
		t.Errorf("%d recovery lines, want 3:\n%s", n, logs.buf.String())
	}
	if n := logs.count("level=ERROR"); n != 0 {
		t.Errorf("%d ERROR lines:\n%s", n, logs.buf.String())
	}
}
