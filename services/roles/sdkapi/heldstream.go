package sdkapi

import (
	"errors"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
)

// Held streams: an HTTP/1.1 SSE stream is taken over from net/http once authorized (Hijack), and
// the handler returns. What stays per stream is the connection, its subscriber and a heldStream:
// about a kilobyte, instead of net/http's connection goroutine with its 4 KiB read and write
// buffers, echo's context and the handler's goroutine waiting in a select (28.5 KiB per stream
// measured before, docs/api-role-memory.md). A few writer goroutines (shards) write the events
// and the heartbeats of all streams: a stream is only ever written to, so it needs no goroutine
// parked in a read; a client that goes away is found at the next heartbeat (a read that returns
// end of file, or a write that fails).
//
// Writes never block a shard: they go straight to the socket without waiting (syscall level, see
// heldstream_unix.go); what the socket cannot take now is kept (at most heldBacklogMax) and
// retried at the next event or heartbeat. A client that leaves data unread for two heartbeats, or
// past the bound, is dropped: it stopped reading.

// heldBacklogMax bounds what a held stream keeps unwritten for a client that reads slowly.
const heldBacklogMax = 64 << 10

// heldWriteTimeout bounds writing the response headers, from the handler's goroutine.
const heldWriteTimeout = 10 * time.Second

// errStalled ends a stream whose client stopped reading.
var errStalled = errors.New("the client stopped reading its stream")

// heldStreams are the shards of a server's held streams.
type heldStreams struct {
	srv    *Server
	shards []*streamShard
	next   atomic.Uint32
	// ended, when set (tests), is called after a held stream was closed.
	ended func()
}

func newHeldStreams(srv *Server) *heldStreams {
	n := max(4, 2*runtime.GOMAXPROCS(0))
	h := &heldStreams{srv: srv, shards: make([]*streamShard, n)}
	for i := range h.shards {
		h.shards[i] = &streamShard{owner: h, streams: map[*heldStream]struct{}{}, wake: make(chan struct{}, 1)}
	}
	return h
}

// streamShard writes to its streams from one goroutine, which runs only while it holds streams.
type streamShard struct {
	owner *heldStreams

	mu      sync.Mutex
	streams map[*heldStream]struct{}
	ready   []*heldStream // streams with a notice pending or their subscription closed
	running bool          // the shard's goroutine runs
	stopped bool          // the server stops its streams: no new one is held
	wake    chan struct{} // one slot: ready has streams

	// The goroutine's buffers: an event, its chunk, and what clients send (discarded).
	event, chunk, discard []byte
	// sent is the notice and key kind that chunk was made for: after a change most streams are
	// owed the same event, encoded once per shard instead of once per stream.
	sent     notice
	sentKind string
}

// heldStream is one SSE stream held by a shard.
type heldStream struct {
	shard *streamShard
	kind  string
	sub   *subscriber
	hub   *hub
	conn  net.Conn
	sock  heldSocket // the connection's socket, written without blocking

	queued bool        // in shard.ready; guarded by shard.mu
	live   atomic.Bool // registered: its connection is set and the shard writes to it

	// The shard's goroutine's own.
	backlog []byte // written by no socket yet
	stalled int    // heartbeats seen with a backlog left
}

// hijackable reports whether w (through the wrappers that Unwrap) is net/http's HTTP/1 writer,
// which hands its connection over.
func hijackable(w http.ResponseWriter) bool {
	for {
		switch x := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
}

// hold serves an authorized stream request by holding its connection (see above).
func (s *Server) hold(c echo.Context, kind, key string, snap *snapshot, env *environment) error {
	hs := s.held.newStream(kind)
	lastID := c.Request().Header.Get("Last-Event-ID")
	hs.sub = env.hub.subscribeNotify(key, kind, lastID, hs.signal)
	hs.hub = env.hub
	// The keys may have been replaced between authorize and subscribe, after their sweep of the
	// open streams: check again now that this one is open to the sweep.
	if cur, ok := s.snaps.lookupKey(key); !ok || cur.Project != snap.id.project || cur.Environment != snap.id.environment {
		env.hub.unsubscribe(hs.sub)
		return domain.Errorf(domain.EUnauthorized, "unknown or rotated SDK key")
	}
	res := c.Response()
	h := res.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	h.Del("Date") // written below, as net/http would
	conn, _, err := http.NewResponseController(res).Hijack()
	if err != nil {
		env.hub.unsubscribe(hs.sub)
		return domain.Errorf(domain.EUnavailable, "the stream could not be opened (%v); retry shortly", err)
	}
	// The echo middleware that runs after the handler (logs, metrics) reports what was sent; the
	// error handler must not try to write an answer on a connection net/http no longer has.
	res.Status, res.Committed = http.StatusOK, true
	// The answer is chunked, as net/http would send it: the response stays delimited, so a proxy
	// may keep its connection to this server, and a client tells an end from a drop.
	b := make([]byte, 0, 1024)
	b = append(b, "HTTP/1.1 200 OK\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nTransfer-Encoding: chunked\r\n"...)
	for k, vs := range h {
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, headerValue(v)...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	b = appendChunk(b, streamPreamble(nil, snap, lastID == ""))
	_ = conn.SetWriteDeadline(time.Now().Add(heldWriteTimeout))
	_, err = conn.Write(b)
	_ = conn.SetWriteDeadline(time.Time{})
	if err == nil {
		hs.sock, err = newHeldSocket(conn)
	}
	if err != nil {
		env.hub.unsubscribe(hs.sub)
		conn.Close()
		return nil // the client went away
	}
	hs.conn = conn
	hs.shard.register(hs)
	return nil
}

// headerValue is v with line breaks replaced, as net/http's header writer does: a value must
// not end the header line.
func headerValue(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			b := []byte(v)
			for j := range b {
				if b[j] == '\r' || b[j] == '\n' {
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return v
}

// appendChunk appends p as one chunk of a chunked HTTP body.
func appendChunk(b, p []byte) []byte {
	b = strconv.AppendInt(b, int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	return append(b, "\r\n"...)
}

// lastChunk ends a chunked body.
const lastChunk = "0\r\n\r\n"

// newStream is a stream of a key of kind, on the next shard.
func (h *heldStreams) newStream(kind string) *heldStream {
	sh := h.shards[int(h.next.Add(1))%len(h.shards)]
	return &heldStream{shard: sh, kind: kind}
}

// signal tells the shard that hs has a notice pending or its subscription closed. Before hs is
// registered (the notice waits in its subscriber: register signals it) and after it ended there
// is nothing to do.
func (hs *heldStream) signal() {
	if !hs.live.Load() {
		return
	}
	sh := hs.shard
	sh.mu.Lock()
	if !hs.queued {
		hs.queued = true
		sh.ready = append(sh.ready, hs)
	}
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// register hands hs, its headers written, to the shard; a notice already pending (a resume with
// Last-Event-ID) is written at once.
func (sh *streamShard) register(hs *heldStream) {
	stopping := false
	select {
	case <-sh.owner.srv.stopping:
		stopping = true
	default:
	}
	sh.mu.Lock()
	if sh.stopped || stopping {
		sh.mu.Unlock()
		sh.end(hs, "")
		return
	}
	sh.streams[hs] = struct{}{}
	hs.live.Store(true)
	if !sh.running {
		sh.running = true
		go sh.run()
	}
	sh.mu.Unlock()
	hs.signal()
}

// run writes events and heartbeats until the shard holds no stream, or the server stops them.
func (sh *streamShard) run() {
	srv := sh.owner.srv
	for {
		sh.mu.Lock()
		if len(sh.streams) == 0 && len(sh.ready) == 0 {
			sh.running = false
			sh.mu.Unlock()
			return
		}
		sh.mu.Unlock()
		select {
		case <-sh.wake:
			sh.mu.Lock()
			batch := sh.ready
			sh.ready = nil
			for _, hs := range batch {
				hs.queued = false
			}
			sh.mu.Unlock()
			for _, hs := range batch {
				sh.serve(hs)
			}
		case <-srv.beats.next():
			sh.heartbeat()
		case <-srv.stopping:
			sh.mu.Lock()
			sh.stopped, sh.running = true, false
			all := make([]*heldStream, 0, len(sh.streams))
			for hs := range sh.streams {
				all = append(all, hs)
			}
			sh.mu.Unlock()
			for _, hs := range all {
				sh.end(hs, "")
			}
			return
		}
	}
}

// serve writes what hs is owed: the end of its stream if its key went, else its pending notice.
func (sh *streamShard) serve(hs *heldStream) {
	if !hs.live.Load() {
		return // already ended
	}
	if hs.sub.isGone() {
		// EventSource reconnects after a closed stream and then gets 401, which ends it.
		sh.end(hs, ": the SDK key was rotated or revoked, or its environment removed\n\n")
		return
	}
	n, ok := hs.sub.take()
	if !ok {
		return
	}
	if len(sh.chunk) == 0 || hs.kind != sh.sentKind || !sameNotice(n, sh.sent) {
		sh.event = sh.owner.srv.appendEvent(sh.event[:0], hs.kind, n)
		sh.chunk = appendChunk(sh.chunk[:0], sh.event)
		sh.sent, sh.sentKind = n, hs.kind
	} else {
		sh.owner.srv.streams.pushes.Inc()
	}
	if err := hs.write(sh.chunk); err != nil {
		sh.end(hs, "")
	}
}

// sameNotice reports whether a and b are written as the same event.
func sameNotice(a, b notice) bool {
	return a.version == b.version && a.etag == b.etag && a.at.Equal(b.at) && a.all == b.all &&
		(a.flags == nil) == (b.flags == nil) && slices.Equal(a.flags, b.flags)
}

// heartbeat writes a comment to every stream, and ends those whose client went away or stopped
// reading.
func (sh *streamShard) heartbeat() {
	sh.mu.Lock()
	all := make([]*heldStream, 0, len(sh.streams))
	for hs := range sh.streams {
		all = append(all, hs)
	}
	sh.mu.Unlock()
	if sh.discard == nil {
		sh.discard = make([]byte, 512)
	}
	for _, hs := range all {
		if hs.sock.peerGone(sh.discard) {
			sh.end(hs, "")
			continue
		}
		if len(hs.backlog) > 0 {
			if hs.stalled++; hs.stalled >= 2 {
				sh.end(hs, "")
				continue
			}
		} else {
			hs.stalled = 0
		}
		if err := hs.write(heartbeatChunk); err != nil {
			sh.end(hs, "")
		}
	}
}

// heartbeatChunk is the keep-alive comment, as a chunk.
var heartbeatChunk = appendChunk(nil, []byte(": heartbeat\n\n"))

// write sends p after anything left unwritten before; what the socket does not take now is kept.
func (hs *heldStream) write(p []byte) error {
	if len(hs.backlog) > 0 {
		if len(hs.backlog)+len(p) > heldBacklogMax {
			return errStalled
		}
		hs.backlog = append(hs.backlog, p...)
		n, err := hs.sock.write(hs.backlog)
		if err != nil {
			return err
		}
		hs.backlog = hs.backlog[n:]
		if len(hs.backlog) == 0 {
			hs.backlog = nil
		}
		return nil
	}
	n, err := hs.sock.write(p)
	if err != nil {
		return err
	}
	if n < len(p) {
		hs.backlog = append([]byte(nil), p[n:]...)
	}
	return nil
}

// end closes hs, after writing last (if any) and the end of the body, as best it can.
func (sh *streamShard) end(hs *heldStream, last string) {
	sh.mu.Lock()
	delete(sh.streams, hs)
	hs.live.Store(false)
	sh.mu.Unlock()
	hs.hub.unsubscribe(hs.sub)
	if hs.conn == nil {
		return
	}
	if len(hs.backlog) == 0 && hs.sock != nil {
		var b []byte
		if last != "" {
			b = appendChunk(b, []byte(last))
		}
		_, _ = hs.sock.write(append(b, lastChunk...))
	}
	hs.conn.Close()
	if sh.owner.ended != nil {
		sh.owner.ended()
	}
}
