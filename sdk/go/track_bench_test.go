package vexil

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
)

// BenchmarkTrack is the cost of OpenFeature's Track to the application: the goal event is given
// its id and time and queued for the sender. (The sender's work, encoding and posting batches of
// EventBatchSize events, happens on its own goroutine.) The queue is emptied, outside the timed
// part, before it fills, so that no event is dropped: a dropped event would cost nearly nothing.
func BenchmarkTrack(b *testing.B) {
	p, err := NewProvider(Options{BaseURL: "http://127.0.0.1:1", ServerKey: "key", MaxQueuedEvents: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	ec := openfeature.NewEvaluationContext("user-123", map[string]any{"plan": "pro"})
	details := openfeature.NewTrackingEventDetails(12.5)
	b.ReportAllocs()
	n := 0
	before := processCPU()
	for b.Loop() {
		if n++; n == 5_000 {
			b.StopTimer()
			p.queue.mu.Lock()
			p.queue.pending = p.queue.pending[:0]
			p.queue.mu.Unlock()
			n = 0
			b.StartTimer()
		}
		p.Track(context.Background(), "purchase", ec, details)
	}
	// CPU time per call beside the wall clock's ns/op, as the evaluation benchmarks report it:
	// on a shared machine ns/op mostly measures the wait for a core.
	b.ReportMetric(float64((processCPU()-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if d := p.queue.dropped.Load(); d > 0 {
		b.Fatalf("%d events dropped", d)
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
