package redisstream_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/vexil-flags/vexil/services/adapters/redisstream"
)

// Concurrent publishes through a pipelined publisher all land, each once, with their metadata,
// readable by an ordinary consumer group subscriber; a call's messages stay in order; the
// stream's cap applies; streams outside the prefix are refused; a closed publisher refuses.
func TestPipelinedPublisher(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxLen = 100_000
	pub, err := redisstream.NewPipelinedPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stream := cfg.Stream("pipelined")
	if err := pub.Publish("other:pipelined", message.NewMessage("x", nil)); err == nil {
		t.Fatal("published outside the prefix")
	}
	const callers, calls = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, callers*calls)
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				a := message.NewMessage(fmt.Sprintf("%d-%d-a", c, i), []byte("payload"))
				a.Metadata.Set("caller", fmt.Sprint(c))
				b := message.NewMessage(fmt.Sprintf("%d-%d-b", c, i), []byte("payload"))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				a.SetContext(ctx)
				errs <- pub.Publish(stream, a, b)
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(stream, message.NewMessage("late", nil)); err == nil {
		t.Fatal("a closed publisher published")
	}

	sub, err := redisstream.NewSubscriber(cfg, cfg.Group("pipelined"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 2*callers*calls {
		select {
		case m := <-msgs:
			if seen[m.UUID] {
				t.Fatalf("message %s delivered twice", m.UUID)
			}
			if m.UUID[len(m.UUID)-1] == 'b' && !seen[m.UUID[:len(m.UUID)-1]+"a"] {
				t.Fatalf("message %s before the one published before it in the same call", m.UUID)
			}
			if m.UUID[len(m.UUID)-1] == 'a' && m.Metadata.Get("caller") == "" {
				t.Fatalf("message %s lost its metadata", m.UUID)
			}
			seen[m.UUID] = true
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("%d of %d messages read", len(seen), 2*callers*calls)
		}
	}
}
