package sdkapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
)

// streamMetrics reports SSE connections and pushes.
type streamMetrics struct {
	pushes prometheus.Counter
}

func newStreamMetrics(reg prometheus.Registerer, snaps *Snapshots) *streamMetrics {
	m := &streamMetrics{pushes: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vexil_sdk_stream_pushes_total", Help: "Change events written to SSE connections."})}
	conns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vexil_sdk_stream_connections", Help: "Open SSE connections."}, func() float64 {
		snaps.mu.RLock()
		defer snaps.mu.RUnlock()
		n := 0
		for _, e := range snaps.envs {
			n += e.hub.count()
		}
		return float64(n)
	})
	envs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vexil_sdk_environments_loaded", Help: "Environments whose ruleset is held in memory."}, func() float64 {
		return float64(len(snaps.all()))
	})
	if reg != nil {
		reg.MustRegister(m.pushes, conns, envs)
	}
	return m
}

// streamEvent is the data of an SSE event. Client-side keys get OFREP's refetchEvaluation, only
// for changes that can move their answers, with the client-side flags concerned (re-fetch the bulk
// evaluation); server-side keys get rulesetChanged on every change, with the new version and the
// flags whose configuration changed (an empty list when only segments did), to re-download
// /sdk/v1/ruleset. "flags": null means unknown: refetch everything (a resume from further back
// than the history held in memory, or from before this process started).
type streamEvent struct {
	Type         string   `json:"type"`
	ETag         string   `json:"etag"`
	LastModified int64    `json:"lastModified"`
	Version      int64    `json:"version,omitempty"`
	Flags        []string `json:"flags"`
}

// GET /sdk/v1/stream: Server-Sent Events for the key's environment. Every event has the ruleset
// version as its id; a client reconnecting with Last-Event-ID is told at once, in one event,
// about every flag changed since. The stream ends when its key stops being valid (rotated,
// revoked, or its environment gone).
func (s *Server) stream(c echo.Context) error {
	// Server-side keys are secrets: a URL ends up in proxy and server logs, browser history and
	// Referer headers. Refuse one there, whatever else the request carries.
	if q := c.QueryParam("key"); q != "" {
		if k, ok := s.snaps.lookupKey(q); ok && k.Kind != domain.ClientSideKey {
			return domain.Errorf(domain.EUnauthorized, "server-side SDK keys are secrets and are not accepted in the URL: send it in the Authorization: Bearer header (and rotate this one if the URL was logged); ?key= is for client-side keys")
		}
	}
	k, snap, err := s.authorize(c, false, true)
	if err != nil {
		return err
	}
	key := sdkKeyOf(c.Request(), true)
	env := s.snaps.environment(snap.id, false)
	if r := c.Request(); r.ProtoMajor == 1 && r.ProtoMinor >= 1 && hijackable(c.Response().Writer) {
		// HTTP/1.1: the stream is held without a goroutine of its own (heldstream.go).
		return s.hold(c, k.Kind, key, snap, env)
	}
	// HTTP/2 (or a writer that cannot be taken over): a goroutine per stream.
	sub := env.hub.subscribe(key, k.Kind, c.Request().Header.Get("Last-Event-ID"))
	defer env.hub.unsubscribe(sub)
	// The keys may have been replaced between authorize and subscribe, after their sweep of the
	// open streams: check again now that this one is open to the sweep.
	if cur, ok := s.snaps.lookupKey(key); !ok || cur.Project != snap.id.project || cur.Environment != snap.id.environment {
		return domain.Errorf(domain.EUnauthorized, "unknown or rotated SDK key")
	}

	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 512)
	bw.Write(streamPreamble(nil, snap, c.Request().Header.Get("Last-Event-ID") == ""))

	done := c.Request().Context().Done()
	for {
		if err := bw.Flush(); err != nil {
			return nil // the client went away
		}
		w.Flush()
		select {
		case <-done:
			return nil
		case <-s.stopping:
			return nil
		case <-sub.gone:
			// EventSource reconnects after a closed stream and then gets 401, which ends it.
			bw.WriteString(": the SDK key was rotated or revoked, or its environment removed\n\n")
			_ = bw.Flush()
			w.Flush()
			return nil
		case <-sub.wake:
			if n, ok := sub.take(); ok {
				s.writeEvent(bw, k.Kind, n)
			}
		case <-s.beats.next():
			bw.WriteString(": heartbeat\n\n")
		}
	}
}

// streamPreamble appends the start of a stream: the reconnection delay and a comment naming the
// version, and, for a client that sent no Last-Event-ID (fresh), that version as its last event
// id.
func streamPreamble(b []byte, snap *snapshot, fresh bool) []byte {
	b = append(b, "retry: 2000\n: connected to "...)
	b = append(b, snap.id.environment...)
	b = append(b, " at version "...)
	b = strconv.AppendInt(b, snap.version, 10)
	b = append(b, '\n')
	if fresh {
		// A data-less block sets the client's last event id without an event (EventSource sets
		// lastEventId and dispatches nothing), so a stream dropped before its first change
		// resumes from here and is told what changed meanwhile, instead of missing it. A client
		// that sent an id keeps it until the resume event it is owed arrives.
		b = append(b, "id: "...)
		b = strconv.AppendInt(b, snap.version, 10)
		b = append(b, '\n')
	}
	return append(b, '\n')
}

func (s *Server) writeEvent(bw *bufio.Writer, kind string, n notice) {
	bw.Write(s.appendEvent(nil, kind, n))
}

// appendEvent appends the SSE event telling a subscriber with a key of kind about n.
func (s *Server) appendEvent(b []byte, kind string, n notice) []byte {
	ev := streamEvent{Type: "refetchEvaluation", ETag: n.etag, LastModified: n.at.Unix(), Flags: n.flags}
	if kind == domain.ServerSideKey {
		ev.Type, ev.Version = "rulesetChanged", n.version
	}
	if !n.all && ev.Flags == nil {
		ev.Flags = []string{} // known: no flag's configuration changed (segments only)
	}
	data, _ := json.Marshal(ev)
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, n.version, 10)
	b = append(b, "\nevent: message\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	s.streams.pushes.Inc()
	return b
}
