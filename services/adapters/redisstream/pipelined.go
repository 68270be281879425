package redisstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	wrs "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// pipelineFlushers is how many pipelines a pipelined publisher has in flight at once: while one
// is on its way, the publishes arriving meanwhile gather for the next.
const pipelineFlushers = 2

// maxPipeline bounds the XADDs of one pipeline.
const maxPipeline = 128

// NewPipelinedPublisher returns a publisher like NewPublisher's (same stream entries: consumers
// cannot tell them apart) whose concurrent Publish calls share round trips: each call waits
// until Redis holds its messages, as with NewPublisher, but the XADDs of the calls that arrive
// while a round trip is under way go together in the next one (a pipeline). Under many
// concurrent publishers (the telemetry edge answers each request only once Redis has its batch)
// this saves a Redis round trip, and so two wake-ups of a busy machine, per message. A call's
// messages are published in order; calls are not ordered among themselves. Close closes its
// Redis client.
func NewPipelinedPublisher(cfg Config) (message.Publisher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := newClient(cfg.URL, pipelineFlushers+redisSpareConnections)
	if err != nil {
		return nil, err
	}
	p := &pipelinedPublisher{client: client, maxLen: cfg.MaxLen, prefix: cfg.Prefix + ":",
		requests: make(chan *publishRequest), closing: make(chan struct{})}
	for i := 0; i < pipelineFlushers; i++ {
		p.wg.Add(1)
		go p.flush()
	}
	return p, nil
}

type pipelinedPublisher struct {
	client   *redis.Client
	maxLen   int64
	prefix   string
	requests chan *publishRequest

	closeOnce sync.Once
	closing   chan struct{}
	wg        sync.WaitGroup
}

// publishRequest is one Publish call's XADDs, answered on done.
type publishRequest struct {
	ctx    context.Context
	stream string
	values []map[string]any
	done   chan error
}

var errPublisherClosed = errors.New("redisstream: publisher closed")

func (p *pipelinedPublisher) Publish(topic string, msgs ...*message.Message) error {
	if !strings.HasPrefix(topic, p.prefix) {
		return fmt.Errorf("redisstream: stream %q is outside the prefix %q", topic, p.prefix)
	}
	if len(msgs) == 0 {
		return nil
	}
	r := &publishRequest{ctx: msgs[0].Context(), stream: topic, values: make([]map[string]any, len(msgs)), done: make(chan error, 1)}
	for i, msg := range msgs {
		v, err := wrs.DefaultMarshallerUnmarshaller{}.Marshal(topic, msg)
		if err != nil {
			return fmt.Errorf("redisstream: marshal message %s: %w", msg.UUID, err)
		}
		r.values[i] = v
	}
	select {
	case p.requests <- r:
	case <-p.closing:
		return errPublisherClosed
	case <-r.ctx.Done():
		return fmt.Errorf("redisstream: publish to %s: %w", topic, r.ctx.Err())
	}
	select {
	case err := <-r.done:
		return err
	case <-r.ctx.Done():
		// The pipeline may still deliver the messages: as with a plain XADD that times out,
		// the caller cannot know, and its consumers must be idempotent.
		return fmt.Errorf("redisstream: publish to %s: %w", topic, r.ctx.Err())
	}
}

// flush sends the waiting requests, as many as are there, in one pipeline at a time.
func (p *pipelinedPublisher) flush() {
	defer p.wg.Done()
	var batch []*publishRequest
	for {
		batch = batch[:0]
		select {
		case r := <-p.requests:
			batch = append(batch, r)
		case <-p.closing:
			return
		}
		n := len(batch[0].values)
	more:
		for n < maxPipeline {
			select {
			case r := <-p.requests:
				batch = append(batch, r)
				n += len(r.values)
			default:
				break more
			}
		}
		p.send(batch)
	}
}

// send runs one pipeline and answers each request with the first error among its XADDs.
func (p *pipelinedPublisher) send(batch []*publishRequest) {
	// The pipeline lives as long as the longest-lived request in it; a request whose own
	// context ends first stops waiting by itself.
	var deadline time.Time
	live := batch[:0:0]
	for _, r := range batch {
		if r.ctx.Err() != nil {
			continue // its caller already gave up: do not publish what it reported as failed
		}
		live = append(live, r)
		d, ok := r.ctx.Deadline()
		if !ok {
			d = time.Now().Add(time.Minute)
		}
		deadline = later(deadline, d)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	pipe := p.client.Pipeline()
	cmds := make([][]*redis.StringCmd, len(live))
	for i, r := range live {
		for _, v := range r.values {
			cmds[i] = append(cmds[i], pipe.XAdd(ctx, &redis.XAddArgs{Stream: r.stream, Values: v, MaxLen: p.maxLen, Approx: true}))
		}
	}
	_, _ = pipe.Exec(ctx) // errors are per command, read below
	for i, r := range live {
		var err error
		for _, c := range cmds[i] {
			if cerr := c.Err(); cerr != nil {
				err = fmt.Errorf("redisstream: xadd to %s: %w", r.stream, cerr)
				break
			}
		}
		r.done <- err
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Close stops the flushers (publishes under way get their answer first) and closes the client.
func (p *pipelinedPublisher) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closing)
		p.wg.Wait()
		err = p.client.Close()
	})
	return err
}
