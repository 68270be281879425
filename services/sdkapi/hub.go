package sdkapi

import (
	"sync"
	"time"
)

// change is what SSE subscribers of an environment are told.
type change struct {
	version int64
	etag    string
	at      time.Time
	flags   []string // flags whose configuration changed; empty when only segments changed
}

// hub fans the changes of one environment out to its SSE subscribers. Each subscriber has a
// one-slot mailbox holding the latest change: a slow subscriber skips intermediate versions
// (only the latest matters to an SDK), and publishing never blocks.
type hub struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	latest change
}

type subscriber struct {
	mailbox chan change
}

func newHub() *hub { return &hub{subs: map[*subscriber]struct{}{}} }

func (h *hub) subscribe() (*subscriber, change) {
	s := &subscriber{mailbox: make(chan change, 1)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	latest := h.latest
	h.mu.Unlock()
	return s, latest
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *hub) publish(c change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latest = c
	for s := range h.subs {
		select {
		case s.mailbox <- c:
		default: // replace the unread older change with this one
			select {
			case <-s.mailbox:
			default:
			}
			select {
			case s.mailbox <- c:
			default:
			}
		}
	}
}
