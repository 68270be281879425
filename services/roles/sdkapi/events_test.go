package sdkapi_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// POST /sdk/v1/events: the SDK key decides the environment; valid events are kept and invalid
// ones reported one by one; whole-request failures are JSON 4xx, never 500.
func TestPostEvents(t *testing.T) {
	t.Parallel()
	v := ingesttest.Start(t, "--events-max-batch", "5", "--events-max-body-bytes", "4096")
	keys := v.CreateProject("shop", "checkout")

	// A mixed batch with the server key, one with the client key.
	body := `{"events": [
	  {"kind": "evaluation", "flag_key": "checkout", "variation_key": "true", "user_key": "u1", "event_id": "` + ingesttest.EventID(1) + `"},
	  {"kind": "evaluation", "flag_key": "bad key", "user_key": "u1"},
	  {"kind": "goal", "goal_key": "purchase", "user_key": "u1", "value": 9.5, "occurred_at": "` + time.Now().UTC().Format(time.RFC3339) + `"}]}`
	r := v.Do("POST", "/sdk/v1/events", keys.Server, body)
	if r.Status != 202 {
		t.Fatalf("mixed batch: %d %s", r.Status, r.Body)
	}
	a := r.JSON(t)
	errs, _ := a["errors"].([]any)
	if a["accepted"] != 2.0 || a["rejected"] != 1.0 || len(errs) != 1 || a["batch_id"] == "" {
		t.Fatalf("mixed batch answer %v", a)
	}
	if e := errs[0].(map[string]any); e["index"] != 1.0 || e["code"] != "invalid" || e["field"] != "flag_key" || e["message"] == "" {
		t.Fatalf("item error %v", e)
	}
	if r := v.Do("POST", "/sdk/v1/events", keys.Client, ingesttest.Events("checkout", 3, 2, 10)); r.Status != 202 {
		t.Fatalf("client key: %d %s", r.Status, r.Body)
	}

	for _, c := range []struct {
		name, key, body, contentType string
		status                       int
		code                         string
	}{
		{"no key", "", `{"events": []}`, "", 401, "unauthorized"},
		{"unknown key", "server-nope", `{"events": []}`, "", 401, "unauthorized"},
		{"malformed JSON", keys.Server, `{"events": [`, "", 400, "invalid"},
		{"not an object", keys.Server, `[1]`, "", 400, "invalid"},
		{"no events", keys.Server, `{"events": []}`, "", 400, "invalid"},
		{"every event invalid", keys.Server, `{"events": [{"kind": "nope"}, {"kind": "goal"}]}`, "", 400, "invalid"},
		{"too many events", keys.Server, eventsBody(6), "", 413, "too_large"},
		{"body too large", keys.Server, `{"events": [{"kind": "goal", "goal_key": "g", "user_key": "` + strings.Repeat("u", 5000) + `"}]}`, "", 413, "too_large"},
		{"not JSON", keys.Server, `kind=goal`, "text/plain", 400, "invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.contentType != "" {
				headers = []string{"Content-Type", c.contentType}
			}
			r := v.Do("POST", "/sdk/v1/events", c.key, c.body, headers...)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			if got := r.JSON(t); got["code"] != c.code || got["message"] == "" {
				t.Fatalf("body %v, want code %s", got, c.code)
			}
		})
	}
	r = v.Do("POST", "/sdk/v1/events", keys.Server, `{"events": [{"kind": "nope"}, {"kind": "goal", "user_key": "u"}]}`)
	if a := r.JSON(t); len(a["errors"].([]any)) != 2 || a["accepted"] != 0.0 {
		t.Fatalf("all-invalid answer %v", a)
	}

	// Stored in the key's environment: 2 + 3 events, goal included.
	ingesttest.WaitFor(t, 20*time.Second, "the events to be stored", func() bool {
		return v.Count(`SELECT count(*) FROM evaluation_events WHERE project = 'shop' AND environment = 'production'`) == 4 &&
			v.Count(`SELECT count(*) FROM goal_events WHERE project = 'shop' AND environment = 'production' AND value = 9.5`) == 1
	})

	// The flow's metrics are on the platform's /metrics.
	metrics := string(v.Do("GET", "/metrics", "", nil).Body)
	for _, m := range []string{`vexil_telemetry_ingest_events_total{outcome="accepted"} 5`, `vexil_telemetry_ingest_events_total{outcome="rejected"}`,
		`vexil_telemetry_rows_written_total{table="evaluation_events"} 4`, `vexil_telemetry_messages_total{outcome="stored"}`,
		"vexil_telemetry_stream_lag_messages", "vexil_telemetry_end_to_end_seconds_count"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// The server-side evaluation counters take the same path.
	for i := 0; i < 7; i++ {
		if r := v.Do("POST", "/ofrep/v1/evaluate/flags/checkout", keys.Server, `{"context": {"targetingKey": "u`+strconv.Itoa(i)+`"}}`); r.Status != 200 {
			t.Fatalf("OFREP: %d %s", r.Status, r.Body)
		}
	}
	v.P.SDK.FlushCounts(context.Background())
	ingesttest.WaitFor(t, 20*time.Second, "the evaluation counts to be stored", func() bool {
		return v.Count(`SELECT coalesce(sum(evaluations), 0) FROM evaluation_events WHERE user_key IS NULL AND flag = 'checkout'`) == 7
	})
}

func eventsBody(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `{"kind": "goal", "goal_key": "g", "user_key": "u"}`
	}
	return `{"events": [` + strings.Join(parts, ",") + `]}`
}

// With Redis unreachable, ingest answers 503 with Retry-After and keeps nothing; every batch
// answered 202 (before and after) is stored.
func TestPostEventsWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	proxy := redistest.NewProxy(t)
	v := ingesttest.Start(t, "--redis-url", proxy.URL())
	keys := v.CreateProject("shop")
	accepted := 0
	post := func(start int) int {
		r := v.Do("POST", "/sdk/v1/events", keys.Server, ingesttest.Events("checkout", 10, 3, start))
		if r.Status == 202 {
			accepted += 10
		}
		return r.Status
	}
	if s := post(0); s != 202 {
		t.Fatalf("before the outage: %d", s)
	}
	proxy.Cut()
	r := v.Do("POST", "/sdk/v1/events", keys.Server, ingesttest.Events("checkout", 10, 3, 100))
	if r.Status != 503 {
		t.Fatalf("with Redis down: %d %s", r.Status, r.Body)
	}
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if got := r.JSON(t); got["code"] != "unavailable" || got["details"].(map[string]any)["dependency"] != "redis" {
		t.Fatalf("503 body %v", got)
	}
	proxy.Restore()
	ingesttest.WaitFor(t, 20*time.Second, "ingest to accept again", func() bool { return post(200+accepted) == 202 })
	ingesttest.WaitFor(t, 30*time.Second, "every accepted event to be stored", func() bool {
		return v.Count(`SELECT count(*) FROM evaluation_events`) == int64(accepted)
	})
	if n := v.Count(`SELECT count(*) FROM evaluation_events WHERE event_id = $1::uuid`, ingesttest.EventID(100)); n != 0 {
		t.Fatal("an event answered 503 was stored")
	}
}

// When the projector lags past the bound (here: the database holds its writes), ingest answers
// 429 with Retry-After instead of growing the stream; once it catches up, every accepted event
// is stored.
func TestPostEventsBackPressure(t *testing.T) {
	t.Parallel()
	v := ingesttest.Start(t, "--telemetry-max-lag", "3", "--telemetry-stream-maxlen", "12", "--telemetry-workers", "1")
	keys := v.CreateProject("shop")
	ctx := context.Background()
	tx, err := v.P.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE evaluation_events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	accepted, limited := 0, false
	ingesttest.WaitFor(t, 10*time.Second, "a 429", func() bool {
		r := v.Do("POST", "/sdk/v1/events", keys.Server, ingesttest.Events("checkout", 2, 2, 2*accepted))
		switch r.Status {
		case 202:
			accepted++
			return false
		case 429:
			secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
			limited = err == nil && secs >= 1 && r.JSON(t)["code"] == "rate_limited"
			return true
		}
		t.Fatalf("status %d: %s", r.Status, r.Body)
		return false
	})
	if !limited {
		t.Fatal("429 without Retry-After or JSON body")
	}
	// The lag is sampled (every 500ms), so a few batches more than the bound get in.
	if accepted < 4 || accepted > 200 {
		t.Fatalf("%d batches accepted before the 429 (bound 3 behind, sampled every 500ms)", accepted)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	ingesttest.WaitFor(t, 30*time.Second, "the accepted batches to be stored", func() bool {
		return v.Count(`SELECT count(*) FROM evaluation_events`) == int64(2*accepted)
	})
	ingesttest.WaitFor(t, 10*time.Second, "ingest to accept again", func() bool {
		return v.Do("POST", "/sdk/v1/events", keys.Server, ingesttest.Events("checkout", 2, 2, 10000)).Status == 202
	})
}
