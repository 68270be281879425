package vexil_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/vexil-flags/vexil/domain"
	vexil "github.com/vexil-flags/vexil/sdk/go"
)

const serverKey = "server-test-key"

// fakeServer answers the SDK routes of Vexil's api role the way services/roles/sdkapi does (the
// end-to-end tests in sdk/conformance run the real one): the ruleset with ETag/304, the SSE
// stream, and event ingestion. Tests change its ruleset and break it on purpose.
type fakeServer struct {
	t   testing.TB
	srv *httptest.Server

	mu            sync.Mutex
	key           string // the server key it accepts
	rs            *domain.Ruleset
	streamStatus  int // answer of /sdk/v1/stream when not 200
	down          bool
	eventsFail    int // answer the next eventsFail batches 429 or 503 with Retry-After: 1
	events        []map[string]any
	eventIDs      map[string]int // event id -> times stored (kept)
	attempts      map[string]int // event id -> times posted, refused ones included
	rulesetGets   int
	notModified   int
	lastEventIDs  []string
	subscribers   map[chan int64]struct{}
	streamsOpened int
}

func newFakeServer(t testing.TB, rs *domain.Ruleset) *fakeServer {
	f := &fakeServer{t: t, rs: rs, key: serverKey, eventIDs: map[string]int{}, attempts: map[string]int{}, subscribers: map[chan int64]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sdk/v1/ruleset", f.ruleset)
	mux.HandleFunc("GET /sdk/v1/stream", f.stream)
	mux.HandleFunc("POST /sdk/v1/events", f.postEvents)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		down, key := f.down, f.key
		f.mu.Unlock()
		if down {
			http.Error(w, `{"code":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+key {
			http.Error(w, `{"code":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.close)
	return f
}

func (f *fakeServer) close() {
	f.mu.Lock()
	for ch := range f.subscribers {
		close(ch)
		delete(f.subscribers, ch)
	}
	f.mu.Unlock()
	f.srv.CloseClientConnections()
	f.srv.Close()
}

func (f *fakeServer) etag() string { return strconv.Quote(strconv.FormatInt(f.rs.Version, 10)) }

func (f *fakeServer) ruleset(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rulesetGets++
	w.Header().Set("ETag", f.etag())
	if r.Header.Get("If-None-Match") == f.etag() {
		f.notModified++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body, err := json.Marshal(f.rs)
	if err != nil {
		f.t.Error(err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (f *fakeServer) stream(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.streamStatus != 0 {
		status := f.streamStatus
		f.mu.Unlock()
		http.Error(w, "no stream", status)
		return
	}
	ch := make(chan int64, 16)
	f.subscribers[ch] = struct{}{}
	f.streamsOpened++
	f.lastEventIDs = append(f.lastEventIDs, r.Header.Get("Last-Event-ID"))
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subscribers, ch)
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n: connected\n\n")
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case v, ok := <-ch:
			if !ok {
				return
			}
			fmt.Fprintf(w, "id: %d\nevent: message\ndata: {\"type\":\"rulesetChanged\",\"etag\":%q,\"version\":%d,\"flags\":[]}\n\n",
				v, strconv.Quote(strconv.FormatInt(v, 10)), v)
			w.(http.Flusher).Flush()
		}
	}
}

// change applies edit to the ruleset, moves its version and tells the open streams.
func (f *fakeServer) change(edit func(rs *domain.Ruleset)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(f.rs)
	f.rs.Version++
	for ch := range f.subscribers {
		ch <- f.rs.Version
	}
}

func (f *fakeServer) postEvents(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	var attempt struct {
		Events []struct {
			EventID string `json:"event_id"`
		} `json:"events"`
	}
	_ = json.Unmarshal(body, &attempt)
	for _, e := range attempt.Events {
		f.attempts[e.EventID]++
	}
	if f.eventsFail > 0 {
		// Alternately 503 (the stream is down) and 429 (the projector lags), as the api role
		// answers, both with Retry-After.
		f.eventsFail--
		w.Header().Set("Retry-After", "1")
		status := http.StatusServiceUnavailable
		if f.eventsFail%2 == 1 {
			status = http.StatusTooManyRequests
		}
		http.Error(w, `{"code":"unavailable"}`, status)
		return
	}
	var batch struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		f.t.Errorf("events body: %v", err)
	}
	for _, e := range batch.Events {
		id, _ := e["event_id"].(string)
		f.eventIDs[id]++
		if f.eventIDs[id] == 1 { // stored once, as the server's ON CONFLICT DO NOTHING does
			f.events = append(f.events, e)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"accepted":%d,"rejected":0,"errors":[]}`, len(batch.Events))
}

func (f *fakeServer) set(fn func(f *fakeServer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeServer) get(fn func(f *fakeServer) int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(f)
}

// storedEvents returns a copy of the events kept so far.
func (f *fakeServer) storedEvents() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.events...)
}

// testRuleset: a boolean flag with a rule on plan, a string flag with an experiment on its
// default serve, a number flag, a JSON flag, and a flag that is off without an off variation.
func testRuleset() *domain.Ruleset {
	boolVars := []domain.Variation{{Key: "false", Value: false}, {Key: "true", Value: true}}
	return &domain.Ruleset{Project: "p", Environment: "production", Version: 1, Segments: map[string]*domain.Segment{},
		Flags: map[string]*domain.FlagConfig{
			"new-checkout": {Key: "new-checkout", Type: domain.FlagBoolean, Salt: "s1", Version: 3, Variations: boolVars,
				Targeting: domain.Targeting{On: true, OffVariation: "false",
					Rules: []domain.Rule{{ID: "rule-1", Clauses: []domain.Clause{{Attribute: "plan", Operator: domain.OpEquals, Values: []any{"pro"}}},
						Serve: domain.Serve{Variation: "true"}}},
					Default: domain.Serve{Variation: "false"}}},
			"banner": {Key: "banner", Type: domain.FlagString, Salt: "s2", Version: 2,
				Variations: []domain.Variation{{Key: "a", Value: "Welcome"}, {Key: "b", Value: "Welcome back"}},
				Targeting:  domain.Targeting{On: true, OffVariation: "a", Default: domain.Serve{Variation: "a"}},
				Experiment: &domain.ExperimentSplit{Key: "banner-test", Seed: "seed-1", Allocation: domain.BucketCount,
					Variations: []domain.WeightedVariation{{Variation: "a", Weight: 50000}, {Variation: "b", Weight: 50000}}}},
			"max-items": {Key: "max-items", Type: domain.FlagNumber, Salt: "s3", Version: 1,
				Variations: []domain.Variation{{Key: "few", Value: 10.0}, {Key: "half", Value: 2.5}},
				Targeting:  domain.Targeting{On: true, OffVariation: "few", Default: domain.Serve{Variation: "few"}}},
			"layout": {Key: "layout", Type: domain.FlagJSON, Salt: "s4", Version: 1,
				Variations: []domain.Variation{{Key: "narrow", Value: map[string]any{"cols": 2.0}}},
				Targeting:  domain.Targeting{On: true, OffVariation: "narrow", Default: domain.Serve{Variation: "narrow"}}},
			"dark": {Key: "dark", Type: domain.FlagBoolean, Salt: "s5", Version: 1, Variations: boolVars,
				Targeting: domain.Targeting{On: false, Default: domain.Serve{Variation: "true"}}},
		}}
}

// newTestProvider is a provider of f with short intervals, initialised; Shutdown at cleanup.
func newTestProvider(t testing.TB, base string, edit func(o *vexil.Options)) *vexil.Provider {
	t.Helper()
	o := vexil.Options{BaseURL: base, ServerKey: serverKey, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		FlushInterval: 50 * time.Millisecond, InitTimeout: 2 * time.Second, PollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if edit != nil {
		edit(&o)
	}
	p, err := vexil.NewProvider(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Shutdown)
	return p
}

// events collects the provider's OpenFeature events.
type eventLog struct {
	mu     sync.Mutex
	events []openfeature.Event
}

func collect(t *testing.T, p *vexil.Provider) *eventLog {
	l := &eventLog{}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-done:
				return
			case e := <-p.EventChannel():
				l.mu.Lock()
				l.events = append(l.events, e)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *eventLog) has(t openfeature.EventType, match func(openfeature.Event) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.EventType == t && (match == nil || match(e)) {
			return true
		}
	}
	return false
}

// newBenchProvider is an initialised provider for benchmarks.
func newBenchProvider(b *testing.B, base string) *vexil.Provider {
	p := newTestProvider(b, base, nil)
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		b.Fatal(err)
	}
	return p
}
