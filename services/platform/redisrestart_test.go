package platform_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
	"github.com/vexil-flags/vexil/services/testkit"
)

// Redis restarted without its data (a failover to an empty replica, a restart without
// persistence) and Redis flushed, under a light load of writes, OFREP reads and an SSE client:
// without restarting Vexil, OFREP serves the new version, SSE delivers the change, writes
// complete without waiting out the consistency wait, and telemetry is stored again, within
// seconds of Redis coming back. The recovery times are logged; the assertion uses a generous
// deadline (the goal is 5 s).
func TestRecoversFromRedisLosingItsDataUnderLoad(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t) // no persistence: what a restart loses, it loses
	const consistencyWait = 20 * time.Second
	v := startVexil(t, "--redis-url", srv.URL(), "--consistency-wait", consistencyWait.String())
	keys := v.tv.CreateProject("app", "load", "probe")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// /readyz: ready, with a warning about the Redis without persistence.
	ready := v.as("").do("GET", "/readyz", nil)
	if ready.Status != 200 || !strings.Contains(string(ready.Body), "no persistence") {
		t.Fatalf("/readyz with a Redis without persistence: %d %s", ready.Status, ready.Body)
	}

	// SSE client: note when an event about the probe flag arrives.
	sse := openStream(t, v.base+"/sdk/v1/stream", "", "Authorization", "Bearer "+keys.Server)
	probeEvents := make(chan time.Time, 64)
	go func() {
		for ev := range sse {
			if strings.Contains(ev.data, `"probe"`) {
				select {
				case probeEvents <- time.Now():
				default:
				}
			}
		}
	}()

	// Light load: a write every 100 ms, an OFREP read every 20 ms (which must never fail: the
	// api role serves from memory through everything).
	var wg sync.WaitGroup
	var writes, reads, readFailures atomic.Int64
	load := func(every time.Duration, fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					fn()
				}
			}
		}()
	}
	on := false
	load(100*time.Millisecond, func() {
		on = !on
		if post(v.base+"/api/v1/projects/app/flags/load/environments/production/toggle", adminToken, fmt.Sprintf(`{"on":%v}`, on)) == 200 {
			writes.Add(1)
		}
	})
	load(20*time.Millisecond, func() {
		reads.Add(1)
		if post(v.base+"/ofrep/v1/evaluate/flags/load", keys.Server, `{"context":{"targetingKey":"u"}}`) != 200 {
			readFailures.Add(1)
		}
	})
	defer func() { cancel(); wg.Wait() }()

	probeOn := false
	telemetryEvents := 0
	checkRecovery := func(incident string) {
		t.Helper()
		back := time.Now()
		probeOn = !probeOn
		drain(probeEvents)

		// A write: it returns once the read models applied it (read-your-writes), long before
		// the consistency wait would end.
		v.must(200, "POST", "/api/v1/projects/app/flags/probe/environments/production/toggle", map[string]any{"on": probeOn})
		write := time.Since(back)
		if n := v.tv.Count(`SELECT count(*) FROM rm_flags WHERE project = 'app' AND key = 'probe'
			AND (state->'environments'->'production'->>'on')::boolean = $1`, probeOn); n != 1 {
			t.Fatalf("%s: the write returned before its read model had it: it waited out the consistency wait", incident)
		}
		if write >= consistencyWait {
			t.Fatalf("%s: the write took %v: it waited out the consistency wait", incident, write)
		}

		// OFREP serves the new version.
		ingesttest.WaitFor(t, 15*time.Second, incident+": OFREP to serve the new version", func() bool {
			r := v.tv.Do("POST", "/ofrep/v1/evaluate/flags/probe", keys.Server, `{"context":{"targetingKey":"u"}}`)
			return r.Status == 200 && (r.JSON(t)["reason"] == "DISABLED") != probeOn
		})
		ofrep := time.Since(back)

		// SSE delivers the change.
		var sseAt time.Duration
		select {
		case at := <-probeEvents:
			sseAt = at.Sub(back)
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: no SSE event about the probe flag within 15 s", incident)
		}

		// Telemetry: a batch is answered 202 and stored.
		r := v.tv.Do("POST", "/sdk/v1/events", keys.Server, ingesttest.Events("probe", 10, 5, telemetryEvents))
		if r.Status != 202 {
			t.Fatalf("%s: events: %d %s", incident, r.Status, r.Body)
		}
		telemetryEvents += 10
		ingesttest.WaitFor(t, 15*time.Second, incident+": telemetry to be stored", func() bool {
			return v.tv.Count(`SELECT count(*) FROM evaluation_events WHERE user_key IS NOT NULL`) == int64(telemetryEvents)
		})
		stored := time.Since(back)

		testkit.Figure(t, "%s: recovered after Redis came back: write %v, OFREP %v, SSE %v, telemetry stored %v",
			incident, write.Round(time.Millisecond), ofrep.Round(time.Millisecond), sseAt.Round(time.Millisecond), stored.Round(time.Millisecond))
	}

	checkRecovery("baseline (no incident: timed from the check's start)")
	writesBefore := writes.Load()
	ingesttest.WaitFor(t, 15*time.Second, "load writes to go on", func() bool { return writes.Load() > writesBefore+3 })

	srv.Kill()
	// Writes still commit while Redis is down (the outbox shares their transaction; they wait
	// for the read models meanwhile).
	probeVersion := v.tv.Count(`SELECT count(*) FROM events WHERE stream_id = 'flag/app/probe'`)
	duringOutage := make(chan int, 1)
	go func() {
		duringOutage <- post(v.base+"/api/v1/projects/app/flags/probe/environments/development/toggle", adminToken, `{"on":true}`)
	}()
	ingesttest.WaitFor(t, 15*time.Second, "a write to commit while Redis is down", func() bool {
		return v.tv.Count(`SELECT count(*) FROM events WHERE stream_id = 'flag/app/probe'`) > probeVersion
	})
	srv.Start() // empty: no persistence
	back := time.Now()
	select {
	case status := <-duringOutage:
		if status != 200 {
			t.Fatalf("the write made while Redis was down answered %d", status)
		}
		testkit.Figure(t, "the write made while Redis was down returned %v after Redis came back", time.Since(back).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("the write made while Redis was down did not return within 15 s of Redis coming back")
	}
	checkRecovery("Redis restarted empty")

	writesBefore = writes.Load()
	ingesttest.WaitFor(t, 15*time.Second, "load writes to go on", func() bool { return writes.Load() > writesBefore+3 })
	if err := srv.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	checkRecovery("FLUSHALL")

	writesBefore = writes.Load()
	ingesttest.WaitFor(t, 15*time.Second, "load writes to go on after the incidents", func() bool { return writes.Load() > writesBefore+3 })
	cancel()
	wg.Wait()
	if n := readFailures.Load(); n != 0 {
		t.Fatalf("%d of %d OFREP reads failed", n, reads.Load())
	}
	t.Logf("load: %d writes, %d OFREP reads", writes.Load(), reads.Load())
}

// post sends a JSON body with a bearer key and returns the status (-1 when there was no answer);
// load goroutines use it, since they may not fail the test themselves.
func post(url, key, body string) int {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return -1
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// drain empties ch of what arrived so far.
func drain(ch <-chan time.Time) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// The same incidents with the roles in separate processes: an api-only process, which learns of
// changes only through the domain stream in fan-out (its reconciliation timer is set to an hour),
// serves the new version and pushes it over SSE within seconds of Redis coming back, while the
// writes go through a console/projector/relay process.
func TestSplitAPIRoleRecoversFromRedisLosingItsData(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	writer := startVexil(t, "--redis-url", srv.URL(), "--roles", "console,projector,relay", "--consistency-wait", "20s")
	keys := writer.tv.CreateProject("app", "probe")
	api := ingesttest.Start(t, "--database-url", writer.tv.Database, "--stream-prefix", writer.tv.Prefix,
		"--redis-url", srv.URL(), "--roles", "api", "--reconcile-interval", "1h")
	if api.P.SDK == nil {
		t.Fatal("the api process runs no api role")
	}
	sse := openStream(t, api.Base+"/sdk/v1/stream", "", "Authorization", "Bearer "+keys.Server)
	probeEvents := make(chan time.Time, 64)
	go func() {
		for ev := range sse {
			if strings.Contains(ev.data, `"probe"`) {
				select {
				case probeEvents <- time.Now():
				default:
				}
			}
		}
	}()
	on := false
	toggle := func(incident string) {
		t.Helper()
		back := time.Now()
		on = !on
		drain(probeEvents)
		writer.must(200, "POST", "/api/v1/projects/app/flags/probe/environments/production/toggle", map[string]any{"on": on})
		ingesttest.WaitFor(t, 15*time.Second, incident+": the api process to serve the new version", func() bool {
			r := api.Do("POST", "/ofrep/v1/evaluate/flags/probe", keys.Server, `{"context":{"targetingKey":"u"}}`)
			return r.Status == 200 && (r.JSON(t)["reason"] == "DISABLED") != on
		})
		ofrep := time.Since(back)
		select {
		case at := <-probeEvents:
			testkit.Figure(t, "%s: the api process served the new version %v and pushed it over SSE %v after Redis came back",
				incident, ofrep.Round(time.Millisecond), at.Sub(back).Round(time.Millisecond))
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: no SSE event about the probe flag within 15 s", incident)
		}
	}
	toggle("baseline (no incident: timed from the toggle)")
	srv.Kill()
	srv.Start()
	toggle("Redis restarted empty")
	if err := srv.Client().FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	toggle("FLUSHALL")
}
