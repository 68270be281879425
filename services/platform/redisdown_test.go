package platform_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
)

// With Redis unreachable, management writes still commit (the outbox shares their transaction);
// when Redis is back the relay delivers the outbox and the read models catch up, with nothing
// lost and nothing applied twice.
func TestWritesCommitWhileRedisIsDownAndReadModelsCatchUp(t *testing.T) {
	t.Parallel()
	proxy := redistest.NewProxy(t)
	v := startVexil(t, "--redis-url", proxy.URL(), "--consistency-wait", "300ms")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "p", "name": "P"})
	v.must(201, "POST", "/api/v1/projects/p/flags", map[string]any{"key": "before", "name": "Before", "type": "boolean"})
	ctx := context.Background()
	count := func(sql string) int {
		var n int
		if err := v.p.Pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitUntil(t, 30*time.Second, "the first flag in the read model", func() bool {
		return count(`SELECT count(*) FROM rm_flags WHERE project = 'p'`) == 1
	})

	proxy.Cut()
	const writes = 20
	for i := 0; i < writes; i++ {
		v.must(201, "POST", "/api/v1/projects/p/flags", map[string]any{"key": fmt.Sprintf("during-%02d", i), "name": "During", "type": "boolean"})
	}
	v.must(200, "POST", "/api/v1/projects/p/flags/before/environments/production/toggle", map[string]any{"on": true},
		"X-Vexil-Reason", "while Redis is down")
	if n := count(`SELECT count(*) FROM events WHERE stream_id LIKE 'flag/p/during-%'`); n != writes {
		t.Fatalf("%d events committed while Redis was down, want %d", n, writes)
	}
	// Nothing reached the read models while Redis was down (they are fed through Redis). Not a
	// wait for something to happen: a bounded check that nothing does in 500 ms of the outage.
	time.Sleep(500 * time.Millisecond)
	if n := count(`SELECT count(*) FROM rm_flags WHERE project = 'p'`); n != 1 {
		t.Fatalf("read model has %d flags while Redis is down, want 1", n)
	}

	proxy.Restore()
	waitUntil(t, 30*time.Second, "read models to catch up", func() bool {
		return count(`SELECT count(*) FROM rm_flags WHERE project = 'p'`) == writes+1 &&
			count(`SELECT count(*) FROM rm_audit_log`) == count(`SELECT count(*) FROM events`)
	})
	// Exactly once: one audit row per event, the toggle applied, checkpoints at the stream heads.
	if n := count(`SELECT count(*) FROM (SELECT position FROM rm_audit_log GROUP BY position HAVING count(*) > 1) d`); n != 0 {
		t.Fatalf("%d events applied twice", n)
	}
	if n := count(`SELECT count(*) FROM rm_flags WHERE key = 'before' AND (state->'environments'->'production'->>'on')::boolean`); n != 1 {
		t.Fatal("the toggle made while Redis was down is not in the read model")
	}
	if n := count(`SELECT count(*) FROM projection_checkpoints c JOIN (SELECT stream_id, max(version) v FROM events GROUP BY stream_id) e
		USING (stream_id) WHERE c.version <> e.v AND c.projection IN ('catalog','rulesets','audit')`); n != 0 {
		t.Fatalf("%d checkpoints behind their stream", n)
	}
}
