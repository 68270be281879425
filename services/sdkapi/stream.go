package sdkapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

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

// streamEvent is the data of an SSE event. Client-side keys get OFREP's refetchEvaluation (the
// etag is that of the ruleset version; re-fetch the bulk evaluation); server-side keys get
// rulesetChanged with the new version and the flags that changed (empty when only segments did),
// to re-download /sdk/v1/ruleset.
type streamEvent struct {
	Type         string   `json:"type"`
	ETag         string   `json:"etag"`
	LastModified int64    `json:"lastModified"`
	Version      int64    `json:"version,omitempty"`
	Flags        []string `json:"flags,omitempty"`
}

// GET /sdk/v1/stream: Server-Sent Events for the key's environment. Every event has the ruleset
// version as its id; a client reconnecting with Last-Event-ID older than the current version is
// told at once about what it missed.
func (s *Server) stream(c echo.Context) error {
	k, snap, err := s.authorize(c, false, true)
	if err != nil {
		return err
	}
	env := s.snaps.environment(snap.id, false)
	sub, latest := env.hub.subscribe()
	defer env.hub.unsubscribe(sub)

	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 512)
	bw.WriteString("retry: 2000\n: connected to " + snap.id.environment + " at version " + strconv.FormatInt(snap.version, 10) + "\n\n")

	// Catch up a reconnecting client.
	current := snap
	if cur := env.current.Load(); cur != nil {
		current = cur
	}
	if last := c.Request().Header.Get("Last-Event-ID"); last != "" {
		if v, err := strconv.ParseInt(strings.TrimSpace(last), 10, 64); err != nil || v != current.version {
			missed := latest
			if missed.version != current.version {
				missed = change{version: current.version, etag: current.etag, at: current.loadedAt}
			}
			s.writeEvent(bw, k.Kind, missed)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil
	}
	w.Flush()

	heartbeat := time.NewTicker(s.opts.Heartbeat)
	defer heartbeat.Stop()
	done := c.Request().Context().Done()
	for {
		select {
		case <-done:
			return nil
		case ch := <-sub.mailbox:
			s.writeEvent(bw, k.Kind, ch)
		case <-heartbeat.C:
			bw.WriteString(": heartbeat\n\n")
		}
		if err := bw.Flush(); err != nil {
			return nil // the client went away
		}
		w.Flush()
	}
}

func (s *Server) writeEvent(bw *bufio.Writer, kind string, ch change) {
	ev := streamEvent{Type: "refetchEvaluation", ETag: ch.etag, LastModified: ch.at.Unix()}
	if kind == domain.ServerSideKey {
		ev = streamEvent{Type: "rulesetChanged", ETag: ch.etag, LastModified: ch.at.Unix(), Version: ch.version, Flags: ch.flags}
	}
	data, _ := json.Marshal(ev)
	bw.WriteString("id: " + strconv.FormatInt(ch.version, 10) + "\nevent: message\ndata: ")
	bw.Write(data)
	bw.WriteString("\n\n")
	s.streams.pushes.Inc()
}
