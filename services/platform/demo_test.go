package platform_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// serve --demo on a fresh database: /readyz says "starting" until the demo is seeded, then the
// traffic simulator fills flag stats and goal stats, and the checkout-v2 experiment reaches a
// verdict beyond "collecting data" — through the same SDK paths as real traffic. (The goal
// is two minutes at the default rate; here the rate and the refresh and analysis intervals are
// raised so the test is quick, and the deadline is generous for a busy machine.)
func TestDemoLooksAlive(t *testing.T) {
	t.Parallel()
	tv := ingesttest.StartWith(t, func(p *platform.Platform) { p.NotReadyUntil("seeding the demo project") },
		"--demo-traffic", "40", "--analysis-interval", "2s", "--telemetry-refresh-interval", "2s", "--scheduler-interval", "500ms")
	v := &vexil{t: t, tv: tv, p: tv.P, base: tv.Base, token: adminToken}
	ready := v.as("").do("GET", "/readyz", nil)
	if ready.Status != 503 || ready.JSON(t)["status"] != "starting" || !strings.Contains(string(ready.Body), "seeding the demo project") {
		t.Fatalf("readyz before the seed: %d %s", ready.Status, ready.Body)
	}
	res, err := tv.P.StartDemo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Experiment != "checkout-v2" || len(res.Goals) != 2 {
		t.Fatalf("seed result %+v", res)
	}
	if r := v.as("").do("GET", "/readyz", nil); r.Status != 200 {
		t.Fatalf("readyz after the seed: %d %s", r.Status, r.Body)
	}
	const base = "/api/v1/projects/demo/environments/production"
	waitUntil(t, 90*time.Second, "flag stats of new-checkout", func() bool {
		r := v.do("GET", base+"/flags/new-checkout/stats?interval=minute", nil)
		return r.Status == 200 && totalOf(r.JSON(t)) > 0
	})
	waitUntil(t, 90*time.Second, "goal stats of purchase", func() bool {
		r := v.do("GET", base+"/goals/purchase/stats?interval=hour&experiment=checkout-v2", nil)
		return r.Status == 200 && totalOf(r.JSON(t)) > 0
	})
	var verdict string
	waitUntil(t, 120*time.Second, "a verdict on checkout-v2", func() bool {
		r := v.do("GET", "/api/v1/projects/demo/experiments/checkout-v2/results", nil)
		if r.Status != 200 {
			return false
		}
		verdict, _ = r.JSON(t)["verdict"].(string)
		return verdict != "" && !strings.HasPrefix(verdict, "Collecting data")
	})
	t.Logf("verdict: %s", verdict)
	// The rollout in flight: its first step (5%) is applied seconds after the seed.
	waitUntil(t, 60*time.Second, "the first step of the demo rollout", func() bool {
		r := v.do("GET", "/api/v1/projects/demo/rollouts/fast-search-rollout", nil)
		return r.Status == 200 && r.JSON(t)["status"] == "running"
	})
	if s := v.must(200, "GET", "/api/v1/projects/demo/schedules/summer-sale", nil); s["status"] != "pending" {
		t.Fatalf("the scheduled change: %v", s)
	}
	// A second seed changes nothing and starts no second simulator conflict.
	if _, err := platform.SeedDemo(context.Background(), tv.P.App); err != nil {
		t.Fatal(err)
	}
}

// totalOf reads the total count of a stats answer: "totals" summed over its numeric fields of
// evaluations or conversions.
func totalOf(m map[string]any) float64 {
	sum := 0.0
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				if f, ok := v.(float64); ok && (k == "evaluations" || k == "conversions") {
					sum += f
				}
				walk(v)
			}
		case []any:
			for _, v := range x {
				walk(v)
			}
		}
	}
	walk(m)
	return sum
}
