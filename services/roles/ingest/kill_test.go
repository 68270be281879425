package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// buildVexil builds the vexil binary once per test process.
var buildVexil = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "vexil-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "vexil")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/vexil-flags/vexil/services/vexil").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// projectorProcess is a `vexil serve --roles projector` child process.
type projectorProcess struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
}

func startProjector(t *testing.T, bin string, v *ingesttest.Vexil) *projectorProcess {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--roles", "projector", "--database-url", v.Database, "--redis-url", v.Redis,
		"--stream-prefix", v.Prefix, "--http-addr", "127.0.0.1:0", "--migrate=false", "--admin-token", ingesttest.AdminToken,
		"--telemetry-redeliver-after", "2s", "--telemetry-refresh-interval", "1s", "--log-level", "warn", "--log-format", "text")
	p := &projectorProcess{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *projectorProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// The projector killed with SIGKILL in the middle of a stream of batches and started again:
// every event answered 202 is stored exactly once, and the derived tables (exposures, goal
// attributions, per-user goal sums) count nothing twice. (deploy/telemetry/sigkill.sh runs the
// same with 1,000,000 events.)
func TestProjectorKilledMidStreamLosesAndDoublesNothing(t *testing.T) {
	t.Parallel()
	bin, err := buildVexil()
	if err != nil {
		t.Fatal(err)
	}
	v := ingesttest.Start(t, "--roles", "api,console,relay", "--consistency-wait", "0s")
	proj := startProjector(t, bin, v)
	keys := v.CreateProject("shop", "checkout")

	const batches, size = 200, 100 // 20,000 events, one goal event in ten
	var accepted, next atomic.Int64
	var wg sync.WaitGroup
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= batches {
					return
				}
				body := killBatch(int(i), size)
				for ctx.Err() == nil {
					r := v.Do("POST", "/sdk/v1/events", keys.Server, body)
					if r.Status == 202 {
						accepted.Add(size)
						break
					}
					if r.Status != 429 && r.Status != 503 {
						t.Errorf("batch %d: %d %s", i, r.Status, r.Body)
						return
					}
					time.Sleep(200 * time.Millisecond) // pacing: Retry-After, shortened
				}
			}
		}()
	}
	stored := func() int64 {
		return v.Count(`SELECT (SELECT count(*) FROM evaluation_events) + (SELECT count(*) FROM goal_events)`)
	}
	ingesttest.WaitFor(t, 60*time.Second, "some batches stored", func() bool { return stored() >= 4000 })
	proj.kill()
	atKill := stored()
	t.Logf("SIGKILL with %d rows stored", atKill)
	// The outage lasts until the api has accepted more batches with no projector running (or all
	// of them were sent already), so the restarted projector finds work left pending by the kill.
	acceptedAtKill := accepted.Load()
	ingesttest.WaitFor(t, 60*time.Second, "batches accepted while no projector runs", func() bool {
		return accepted.Load() >= acceptedAtKill+5*size || next.Load() >= batches
	})
	startProjector(t, bin, v) // killed by its cleanup
	wg.Wait()
	if t.Failed() {
		return
	}
	want := accepted.Load()
	if want != batches*size {
		t.Fatalf("%d events accepted, want %d", want, batches*size)
	}
	ingesttest.WaitFor(t, 90*time.Second, "every accepted event stored", func() bool { return stored() >= want })
	// Not a wait for something to happen: a bounded check that anything still redelivered in the
	// next second changes nothing.
	time.Sleep(time.Second)
	if n := stored(); n != want {
		t.Fatalf("%d rows stored, want %d", n, want)
	}
	if n := v.Count(`SELECT count(DISTINCT event_id) FROM evaluation_events`) + v.Count(`SELECT count(DISTINCT event_id) FROM goal_events`); n != want {
		t.Fatalf("%d distinct event ids, want %d", n, want)
	}
	if n := v.Count(`SELECT count(*) FROM telemetry_batches`); n != batches {
		t.Fatalf("%d batch log rows, want %d", n, batches)
	}
	// Derived tables: every attribution is what the raw tables imply (a goal stored at the same
	// moment as its user's first exposure, by two concurrent transactions, is attributed by the
	// maintenance pass, every second here), and the per-user sums add up to the attributions (no
	// goal counted twice through a redelivered message).
	implied := v.Count(`SELECT count(*) FROM goal_events g
		JOIN experiment_exposures x ON x.project = g.project AND x.environment = g.environment AND x.user_key = g.user_key
		 AND x.first_exposed_at <= g.occurred_at`)
	ingesttest.WaitFor(t, 20*time.Second, fmt.Sprintf("the %d attributions the raw tables imply", implied), func() bool {
		return v.Count(`SELECT count(*) FROM goal_attributions`) == implied
	})
	if implied == 0 {
		t.Fatal("no goal was attributed: the test proves little")
	}
	if n, m := v.Count(`SELECT coalesce(sum(conversions), 0) FROM experiment_user_goals`), v.Count(`SELECT count(*) FROM goal_attributions`); n != m {
		t.Fatalf("per-user goal sums count %d conversions for %d attributions", n, m)
	}
	t.Logf("%d events stored exactly once after a SIGKILL at %d rows", want, atKill)
}

// killBatch is batch i: evaluations of checkout by users u0..u499, one goal in ten.
func killBatch(i, size int) string {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for j := 0; j < size; j++ {
		k := i*size + j
		if j > 0 {
			b.WriteByte(',')
		}
		at := time.Now().UTC().Format(time.RFC3339Nano)
		if k%10 == 9 {
			fmt.Fprintf(&b, `{"kind":"goal","goal_key":"purchase","user_key":"u%d","value":%d,"event_id":%q,"occurred_at":%q}`,
				(k+1)%500, k%7, ingesttest.EventID(k), at) // a user who is also exposed
			continue
		}
		fmt.Fprintf(&b, `{"kind":"evaluation","flag_key":"checkout","variation_key":"%s","user_key":"u%d","event_id":%q,"occurred_at":%q}`,
			[]string{"on", "off"}[(k%500)%2], k%500, ingesttest.EventID(k), at)
	}
	b.WriteString(`]}`)
	return b.String()
}
