package sdkapi

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
)

// PublicStreamPath is the per-environment public change stream of client-side keys: the client
// key, which is public and names one environment, is in the URL, so every client of an
// environment asks for the same URL, and what it answers holds no user data (the client-visible
// flags that changed and the client view's ETag). A CDN or reverse proxy can therefore collapse
// the requests of all those clients into one origin request (docs/edge.md has the nginx
// configuration, tested in services/platform).
//
// It speaks SSE, one event per response: an EventSource that reconnects (after retry ms) sends
// Last-Event-ID, and the answer for a given Last-Event-ID is the same for every client. Without
// Last-Event-ID the answer is at once an event id (the current version) and no data; with it, the
// answer waits (up to PublicStreamHold) for the first change visible to client keys after that
// version and is that change, or ends with no event when none came. Responses are cacheable for a
// second by anyone (Cache-Control: public, Vary: Last-Event-ID), which is what lets a proxy with
// a cache lock hand one origin answer to every waiting client.
const PublicStreamPath = "/sdk/v1/client/:key/stream"

// PublicStreamHold is how long one public stream request waits for a change.
const PublicStreamHold = 25 * time.Second

// publicRetryMillis is the reconnection delay the public stream asks EventSource for.
const publicRetryMillis = 250

type publicStreamMetrics struct {
	requests prometheus.Counter
	open     prometheus.Gauge
}

func newPublicStreamMetrics(reg prometheus.Registerer) *publicStreamMetrics {
	m := &publicStreamMetrics{
		requests: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_sdk_public_stream_requests_total",
			Help: "Requests of the public per-environment change stream that reached this process (a CDN collapses the rest)."}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vexil_sdk_public_stream_open",
			Help: "Public change stream requests waiting for a change."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.open)
	}
	return m
}

// GET /sdk/v1/client/:key/stream (PublicStreamPath).
func (s *Server) publicStream(c echo.Context) error {
	s.public.requests.Inc()
	key := c.Param("key")
	k, ok := s.snaps.lookupKey(key)
	switch {
	case !ok:
		return domain.Errorf(domain.EUnauthorized, "unknown or rotated SDK key")
	case k.Kind != domain.ClientSideKey:
		return domain.Errorf(domain.EUnauthorized, "server-side SDK keys are secrets and are not accepted in the URL: the public stream is for client-side keys (rotate this one if the URL was logged)")
	}
	snap := s.snaps.snapshotOf(envID{k.Project, k.Environment})
	if snap == nil {
		return domain.Errorf(domain.EUnavailable, "the environment's ruleset is not loaded yet; retry shortly")
	}
	env := s.snaps.environment(snap.id, false)
	lastID := strings.TrimSpace(c.Request().Header.Get("Last-Event-ID"))

	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	// Anyone may cache an answer for a second: clients asking the same thing within it are
	// answered from the cache, and a cache lock makes the ones waiting meanwhile share the one
	// origin request. The answer depends on Last-Event-ID only.
	h.Set("Cache-Control", "public, max-age=1")
	// Not X-Accel-Buffering: no, unlike the other streams: each answer is one short event, and
	// nginx caches only what it buffers.
	h.Add("Vary", "Last-Event-ID")

	bw := bufio.NewWriterSize(w, 512)
	write := func(n notice, event bool) error {
		w.WriteHeader(http.StatusOK)
		bw.WriteString("retry: " + strconv.Itoa(publicRetryMillis) + "\n")
		if event {
			s.writeEvent(bw, domain.ClientSideKey, n)
		} else {
			bw.WriteString("id: " + strconv.FormatInt(n.version, 10) + "\n\n")
		}
		if err := bw.Flush(); err != nil {
			return nil // the client went away
		}
		w.Flush()
		return nil
	}
	// idle ends the answer without an event: nothing changed (or this process stops); the client
	// comes back with the same Last-Event-ID.
	idle := func() error {
		w.WriteHeader(http.StatusOK)
		bw.WriteString("retry: " + strconv.Itoa(publicRetryMillis) + "\n: no change\n\n")
		_ = bw.Flush()
		w.Flush()
		return nil
	}
	if lastID == "" {
		// A new client: the version to follow from, and no event (it has just fetched its flags).
		return write(notice{version: snap.version}, false)
	}
	sub := env.hub.subscribe(key, domain.ClientSideKey, lastID)
	defer env.hub.unsubscribe(sub)
	if n, ok := sub.take(); ok {
		return write(n, true) // changes since lastID
	}
	s.public.open.Inc()
	defer s.public.open.Dec()
	hold := time.NewTimer(s.opts.PublicHold)
	defer hold.Stop()
	for {
		select {
		case <-c.Request().Context().Done():
			return nil
		case <-sub.gone:
			return domain.Errorf(domain.EUnauthorized, "unknown or rotated SDK key")
		case <-hold.C:
			return idle()
		case <-s.stopping:
			return idle()
		case <-sub.wake:
			if n, ok := sub.take(); ok {
				return write(n, true)
			}
		}
	}
}
