package sdkapi

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// historySize is how many changes of an environment the hub keeps for clients that reconnect
// with Last-Event-ID; one further back is told to refetch everything.
const historySize = 256

// change is one new snapshot of an environment, as SSE subscribers are told.
type change struct {
	from, version int64 // the ruleset versions before and after
	etag          string
	clientETag    string // the client view's
	at            time.Time
	flags         []string // flags whose configuration changed, sorted; empty when only segments did
	clientFlags   []string // client-side flags whose answers may have changed, sorted
}

// notice is what one subscriber has not been told yet: changes merged, in the view of its key's
// kind. all means the flags are unknown: refetch everything.
type notice struct {
	version int64
	etag    string
	at      time.Time
	flags   []string
	all     bool
}

// noticeFor is c as a subscriber with kind sees it; client-side keys see nothing of a change that
// moves no client-visible answer.
func (c change) noticeFor(kind string) (notice, bool) {
	if kind == domain.ServerSideKey {
		return notice{version: c.version, etag: c.etag, at: c.at, flags: c.flags}, true
	}
	if len(c.clientFlags) == 0 {
		return notice{}, false
	}
	return notice{version: c.version, etag: c.clientETag, at: c.at, flags: c.clientFlags}, true
}

// merge folds a later notice into n: the latest version, the union of the flags.
func (n *notice) merge(later notice) {
	n.version, n.etag, n.at = later.version, later.etag, later.at
	n.all = n.all || later.all
	if n.all {
		n.flags = nil
		return
	}
	for _, f := range later.flags {
		if !slices.Contains(n.flags, f) {
			n.flags = append(n.flags, f)
		}
	}
	slices.Sort(n.flags)
}

// hub fans the changes of one environment out to its SSE subscribers. A subscriber holds one
// pending notice into which changes it has not written yet are merged, so a slow subscriber
// skips intermediate versions without losing which flags changed, and publishing never blocks.
type hub struct {
	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	head    change   // the latest snapshot (a change with from == 0 for the first one)
	history []change // the last historySize changes, oldest first, each from the previous one's version
}

// subscriber is one SSE connection.
type subscriber struct {
	key, kind string
	wake      chan struct{} // one slot: a notice is pending (nil for a held stream: notify instead)
	gone      chan struct{} // closed when key stops being valid for the environment
	goneOnce  sync.Once
	// notify, when set, is called after a notice is offered or the subscription closed: a held
	// stream (heldstream.go) has no goroutine of its own to wake, its writer is told instead.
	notify func()

	mu      sync.Mutex
	pending *notice
}

func newHub() *hub { return &hub{subs: map[*subscriber]struct{}{}} }

// subscribe adds a subscriber for key. A Last-Event-ID (lastID, "" if none) behind the current
// version leaves it a pending notice of what it missed, atomically with joining, so no change
// falls between the catch-up and the live feed.
func (h *hub) subscribe(key, kind, lastID string) *subscriber {
	return h.join(&subscriber{key: key, kind: kind, wake: make(chan struct{}, 1), gone: make(chan struct{})}, lastID)
}

// subscribeNotify is subscribe for a subscriber that is told by notify instead of a channel.
func (h *hub) subscribeNotify(key, kind, lastID string, notify func()) *subscriber {
	return h.join(&subscriber{key: key, kind: kind, gone: make(chan struct{}), notify: notify}, lastID)
}

func (h *hub) join(s *subscriber, lastID string) *subscriber {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[s] = struct{}{}
	if lastID != "" {
		if n, ok := h.since(lastID, s.kind); ok {
			s.offer(n)
		}
	}
	return s
}

// since is what a subscriber of kind that last saw lastID has missed: the changes after it merged,
// or, when lastID is not a version or older than the history, a notice to refetch everything.
func (h *hub) since(lastID string, kind string) (notice, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(lastID), 10, 64)
	head := h.head
	if err == nil && v >= head.version {
		return notice{}, false // nothing missed (or a replica ahead of this one: its changes come)
	}
	everything := notice{version: head.version, etag: head.etag, at: head.at, all: true}
	if kind != domain.ServerSideKey {
		everything.etag = head.clientETag
	}
	if err != nil || len(h.history) == 0 || h.history[0].from > v {
		return everything, true
	}
	var n notice
	told := false
	for _, c := range h.history {
		if c.version <= v {
			continue
		}
		if cn, ok := c.noticeFor(kind); ok {
			if !told {
				n, told = cn, true
				n.flags = slices.Clone(cn.flags)
			} else {
				n.merge(cn)
			}
		}
	}
	if told {
		// The client refetches the current state: it is up to date as of the head, even when the
		// last changes were invisible to it.
		n.version, n.etag, n.at = everything.version, everything.etag, everything.at
	}
	return n, told
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

// publish records a new snapshot and tells the subscribers that can see the change. The first
// snapshot of an environment (from == 0) only sets the head: nobody subscribed before it.
func (h *hub) publish(c change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.head = c
	if c.from == 0 {
		h.history = h.history[:0]
		for s := range h.subs {
			s.offer(notice{version: c.version, etag: c.etag, at: c.at, all: true})
		}
		return
	}
	if len(h.history) == historySize {
		h.history = slices.Delete(h.history, 0, 1)
	}
	h.history = append(h.history, c)
	for s := range h.subs {
		if n, ok := c.noticeFor(s.kind); ok {
			s.offer(n)
		}
	}
}

// closeIf ends the subscriptions whose key invalid reports as no longer valid.
func (h *hub) closeIf(invalid func(key string) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if invalid(s.key) {
			s.close()
		}
	}
}

// offer merges n into the pending notice and wakes the subscriber.
func (s *subscriber) offer(n notice) {
	s.mu.Lock()
	if s.pending == nil {
		n.flags = slices.Clone(n.flags) // merging appends: never into a change's own slice
		s.pending = &n
	} else {
		s.pending.merge(n)
	}
	s.mu.Unlock()
	if s.notify != nil {
		s.notify()
		return
	}
	select {
	case s.wake <- struct{}{}:
	default: // already woken; the notice is merged
	}
}

// take returns and clears the pending notice.
func (s *subscriber) take() (notice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		return notice{}, false
	}
	n := *s.pending
	s.pending = nil
	return n, true
}

func (s *subscriber) close() {
	s.goneOnce.Do(func() {
		close(s.gone)
		if s.notify != nil {
			s.notify()
		}
	})
}

// isGone reports whether the subscription was closed.
func (s *subscriber) isGone() bool {
	select {
	case <-s.gone:
		return true
	default:
		return false
	}
}
