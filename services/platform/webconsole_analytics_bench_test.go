package platform_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/app/identity"
)

// BenchmarkExperimentReportPage measures the experiment report page, server side over loopback,
// for an experiment with 4 variations and 5 goals and 100 stored analyses (its history): the
// issue's goal is under 150 ms. Each iteration is one signed-in GET, from request to last byte:
// the latest analysis, five goal histories, twenty charts and the tables.
//
//	go test ./services/platform -run '^$' -bench BenchmarkExperimentReportPage -benchtime 50x
func BenchmarkExperimentReportPage(b *testing.B) {
	const analyses = 100
	v := startVexil(b, "--server-exposures", "false", "--analysis-interval", "1h")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "bench", "name": "Bench"})
	goals := []string{"purchase", "signup", "clicks", "revenue", "errors"}
	kinds := []string{"conversion", "conversion", "count", "value", "count"}
	for i, g := range goals {
		body := map[string]any{"key": g, "name": strings.ToUpper(g[:1]) + g[1:], "kind": kinds[i]}
		if g == "errors" {
			body["direction"] = "decrease"
		}
		v.must(201, "POST", "/api/v1/projects/bench/goals", body)
	}
	variations := []string{"a", "b", "c", "d"}
	var vs []any
	for _, k := range variations {
		vs = append(vs, map[string]any{"key": k, "value": strings.ToUpper(k)})
	}
	v.must(201, "POST", "/api/v1/projects/bench/flags", map[string]any{"key": "checkout", "name": "Checkout", "type": "string", "variations": vs})
	v.must(200, "PUT", "/api/v1/projects/bench/flags/checkout/environments/production",
		map[string]any{"on": true, "off_variation": "a", "default": map[string]any{"variation": "a"}})
	var evs []any
	for i, k := range variations {
		evs = append(evs, map[string]any{"variation": k, "control": i == 0})
	}
	v.must(201, "POST", "/api/v1/projects/bench/experiments", map[string]any{"key": "exp", "name": "Four ways", "flag": "checkout",
		"environment": "production", "allocation": 100000, "variations": evs, "primary_goal": "purchase",
		"secondary_goals": []string{"signup", "clicks", "revenue"}, "guardrail_goals": []string{"errors"}})
	v.must(200, "POST", "/api/v1/projects/bench/experiments/exp/start", nil)
	serverKey := v.must(200, "GET", "/api/v1/projects/bench/environments/production", nil)["server_key"].(string)

	// 2,000 users, some of them reaching each goal.
	now := time.Now().UTC()
	var events []map[string]any
	for i := 0; i < 2000; i++ {
		user := fmt.Sprintf("u%d", i)
		at := now.Add(time.Duration(i) * time.Microsecond) // all before the analysis (later ones are outside its window)
		events = append(events, evaluation("checkout", variations[i%4], "exp", user, at))
		for j, g := range goals {
			if (i+j)%(7+j) == 0 {
				events = append(events, goalEvent(g, user, float64(10+i%50), at.Add(time.Millisecond)))
			}
		}
	}
	for len(events) > 0 {
		n := min(len(events), 500)
		if r := v.as("").do("POST", "/sdk/v1/events", map[string]any{"events": events[:n]}, "Authorization", "Bearer "+serverKey); r.Status != 202 {
			b.Fatalf("ingest: %d %s", r.Status, r.Body)
		}
		events = events[n:]
	}
	waitUntil(b, 90*time.Second, "2,000 exposures", func() bool {
		var n int
		_ = v.p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM experiment_exposures WHERE subject = 'exp'`).Scan(&n)
		return n == 2000
	})
	ctx := context.Background()
	for range analyses {
		if _, err := v.p.Analyzer.Analyze(ctx, "bench", "exp"); err != nil {
			b.Fatal(err)
		}
	}
	u := addPerson(b, v, "bench@example.com", "Bench", "bench", identity.RoleViewer, false)
	p := signIn(b, v, u)
	status, page := p.get("/projects/bench/experiments/exp")
	if status != http.StatusOK || strings.Count(page, `class="goal-result"`) != 5 || !strings.Contains(page, "Evolution over 100 analyses") {
		b.Fatalf("report page: %d, %d goals:\n%.2000s", status, strings.Count(page, `class="goal-result"`), page)
	}
	b.ResetTimer()
	for b.Loop() {
		resp, err := p.client.Get(v.base + "/projects/bench/experiments/exp")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("report page: %d", resp.StatusCode)
		}
	}
}
