package leader_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vexil-flags/vexil/services/adapters/leader"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/testkit"
)

// Two candidates: exactly one works at a time; when the leader's connection is killed (as when its
// process dies or its network goes), its work stops and the other takes over.
func TestOneLeaderAndTakeOverWhenItsConnectionDies(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var working atomic.Int32 // candidates inside work right now
	var overlap atomic.Bool
	var passes [2]atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	start := func(i int, retry time.Duration) *leader.Elector {
		e, err := leader.New(leader.Config{ConnConfig: cc, Name: "test-analysis", Retry: retry, Check: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = e.Run(ctx, func(ctx context.Context) error {
				if working.Add(1) > 1 {
					overlap.Store(true)
				}
				defer working.Add(-1)
				for ctx.Err() == nil {
					passes[i].Add(1)
					select {
					case <-ctx.Done():
					case <-time.After(5 * time.Millisecond):
					}
				}
				return nil
			})
		}()
		return e
	}
	// The first candidate leads, and after losing its connection waits a minute before trying
	// again: like a process that is gone, it leaves the lock to the other.
	first := start(0, time.Minute)
	testkit.WaitFor(t, 10*time.Second, "the first candidate leading", func() bool { return first.Leading() && passes[0].Load() > 3 })
	second := start(1, 50*time.Millisecond)
	testkit.WaitFor(t, 10*time.Second, "the second candidate trying the lock", func() bool { return second.Attempts() >= 3 })
	if second.Leading() || passes[1].Load() != 0 || overlap.Load() {
		t.Fatalf("the follower worked %d passes while the other led", passes[1].Load())
	}

	// Kill the leader's session from outside, as a crash or a network partition would.
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	pid := first.BackendPID()
	var terminated bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&terminated); err != nil || !terminated {
		t.Fatalf("terminate backend %d: %v %v", pid, terminated, err)
	}
	// The old leader notices at its next ping (Check) and stops its work; until then the two may
	// overlap (the package comment says so), never after.
	testkit.WaitFor(t, 10*time.Second, "the other candidate takes over and the old leader stops", func() bool {
		return second.Leading() && passes[1].Load() > 3 && !first.Leading()
	})
	before := passes[0].Load()
	testkit.WaitFor(t, 10*time.Second, "the new leader working on alone", func() bool { return passes[1].Load() > 20 })
	if passes[0].Load() != before || working.Load() != 1 {
		t.Fatalf("the old leader still works: %d -> %d passes, %d working", before, passes[0].Load(), working.Load())
	}
	// The lock is held by exactly one session: the new leader's.
	var holders int
	var holder int32
	if err := admin.QueryRow(ctx, `SELECT count(*), min(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND ((classid::bigint << 32) | objid::bigint) = $1`, leader.LockKey("test-analysis")).Scan(&holders, &holder); err != nil {
		t.Fatal(err)
	}
	if holders != 1 || holder != second.BackendPID() {
		t.Fatalf("%d sessions hold the lock (pid %d, new leader's %d)", holders, holder, second.BackendPID())
	}
}
