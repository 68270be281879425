package sdkapi

import (
	"sync"
	"time"
)

// heartbeat is the one timer of every SSE stream of a server: a stream waits on the channel next
// returns, which closes at the next beat. A timer per connection would cost each of tens of
// thousands of idle streams a runtime timer and a wake-up of its own; this is one timer, armed
// only while some stream waits.
type heartbeat struct {
	every time.Duration

	mu    sync.Mutex
	ch    chan struct{}
	timer *time.Timer
}

func newHeartbeat(every time.Duration) *heartbeat { return &heartbeat{every: every} }

// next returns a channel closed at the next beat.
func (h *heartbeat) next() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch == nil {
		h.ch = make(chan struct{})
	}
	if h.timer == nil {
		h.timer = time.AfterFunc(h.every, h.beat)
	}
	return h.ch
}

func (h *heartbeat) beat() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch != nil {
		close(h.ch)
		h.ch = nil
	}
	h.timer = nil // armed again by the next stream that waits
}
