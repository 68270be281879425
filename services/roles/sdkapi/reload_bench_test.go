package sdkapi

import (
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRulesetReload1000Flags installs a 1,000-flag environment's ruleset again and again, as
// the api role does when a change arrives, without flushing the evaluation counters in between
// (they are flushed every 10 s, and a fixture written through the console reloads an environment
// hundreds of times in that window). retained-KB/reload is the live heap the reloads add, after a
// GC: what each keeps alive until the next flush. Before reloads kept only the counters they left
// behind (carryOver), each kept its whole previous snapshot: ~4,400 KB per reload of 1,000 flags.
func BenchmarkRulesetReload1000Flags(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	snaps := NewSnapshots(nil, log, newCounterFlusher(nil, prometheus.NewRegistry(), log))
	rs := benchRuleset(b, "load", benchClientKey, benchServerKey, 1000)
	env := snaps.environment(envID{rs.Project, rs.Environment}, true)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	for b.Loop() {
		rs.Version++
		if err := snaps.install(env, envID{rs.Project, rs.Environment}, rs); err != nil {
			b.Fatal(err)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1024/float64(b.N), "retained-KB/reload")
}
