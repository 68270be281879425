package ingest_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/services/adapters/redisstream"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/roles/ingest"
	"github.com/vexil-flags/vexil/services/testkit"
)

// replyDropper forwards to the test Redis, except that once armed it lets the next XADD reach
// Redis, then, when Redis answers, calls onDrop and closes the connection instead of passing
// the answer on: Redis holds the batch, the publisher does not know.
type replyDropper struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	onDrop func()
}

func newReplyDropper(t *testing.T, onDrop func()) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(redistest.URL(), "redis://")
	if i := strings.IndexByte(target, '/'); i >= 0 {
		target = target[:i]
	}
	d := &replyDropper{ln: ln, target: target, onDrop: onDrop}
	go d.serve()
	t.Cleanup(func() { ln.Close() })
	return d
}

func (d *replyDropper) URL() string { return "redis://" + d.ln.Addr().String() + "/0" }

func (d *replyDropper) serve() {
	for {
		client, err := d.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", d.target)
		if err != nil {
			client.Close()
			continue
		}
		var sawXAdd atomic.Bool
		go func() { // client -> Redis
			defer server.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					if d.armed.Load() && bytes.Contains(bytes.ToUpper(buf[:n]), []byte("XADD")) {
						sawXAdd.Store(true)
					}
					if _, werr := server.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // Redis -> client
			defer client.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 {
					if sawXAdd.Load() && d.armed.CompareAndSwap(true, false) {
						d.onDrop()
						server.Close()
						return
					}
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ingestOutcomes reads vexil_telemetry_ingest_requests_total by outcome.
func ingestOutcomes(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "vexil_telemetry_ingest_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// A client that leaves while its batch is being published (Redis took the batch, the answer is
// lost, the client's request context ends before the publisher retries) does not turn the publish
// into an outage: the publish goes on with its own bounded context, the batch is stored exactly
// once, the outcome is counted as client_gone, and nothing is logged as a Redis failure.
func TestPublishOutlivesADepartedClient(t *testing.T) {
	t.Parallel()
	pool := migratedPool(t)
	ctx, leave := context.WithCancel(context.Background())
	defer leave()
	dropper := newReplyDropper(t, leave) // the client leaves the moment Redis has the batch
	bus := busConfig(t, dropper.URL())
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	ing, err := ingest.NewIngestor(ingest.IngestConfig{Bus: bus, PublishTimeout: 10 * time.Second,
		Metrics: ingest.NewMetrics(reg), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ing.Close()
	direct := bus
	direct.URL = redistest.URL()
	startConsumer(t, pool, direct, 1)

	// A first batch, so the publisher's connection exists and the next XADD is the batch's.
	if err := ing.Publish(context.Background(), batchOf(1, "warm-up")); err != nil {
		t.Fatal(err)
	}
	dropper.armed.Store(true)
	b := batchOf(10, "departed")
	err = ing.Publish(ctx, b)
	if ctx.Err() == nil {
		t.Fatal("the client never left: the answer to the XADD was not dropped")
	}
	if err != nil {
		t.Fatalf("publish after the client left: %v (Redis was fine and took the batch)", err)
	}

	// Redis got the batch twice (the answer to the first XADD was lost, go-redis sent it again);
	// the consumer stores it once.
	client := redistest.NewClient(t)
	stream := bus.Stream(ingest.StreamName)
	testkit.WaitFor(t, 15*time.Second, "both copies of the batch to be handled", func() bool {
		n, err := redisstream.StreamLength(context.Background(), client, stream)
		if err != nil || n != 3 {
			return false
		}
		lags, err := redisstream.StreamLag(context.Background(), client, stream)
		return err == nil && len(lags) == 1 && lags[0].Behind() == 0
	})
	if n := count(t, pool, `SELECT count(*) FROM evaluation_events WHERE user_key = 'departed'`); n != 10 {
		t.Fatalf("%d events of the batch stored, want 10 (exactly once)", n)
	}

	outcomes := ingestOutcomes(t, reg)
	if outcomes["unavailable"] != 0 || outcomes["client_gone"] != 1 || outcomes["accepted"] != 1 {
		t.Fatalf("ingest outcomes %v, want accepted 1 (the warm-up), client_gone 1, unavailable 0", outcomes)
	}
	if s := logs.String(); strings.Contains(s, "level=ERROR") || strings.Contains(s, "not published") {
		t.Fatalf("a departed client was logged as a Redis failure:\n%s", s)
	}
}
