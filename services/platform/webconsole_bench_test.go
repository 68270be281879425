package platform_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/roles/web"
	"github.com/vexil-flags/vexil/services/testkit"
)

// BenchmarkWebConsolePages measures the console's pages, server side over loopback, in a project
// of 1,000 flags (each with a rule and a 50/50 split in production): the goal is under
// 100 ms a page. Each sub-benchmark is one signed-in GET, from request to the last byte.
//
//	go test ./services/platform -run '^$' -bench BenchmarkWebConsolePages -benchtime 50x
func BenchmarkWebConsolePages(b *testing.B) {
	const flags = 1000
	v := startVexil(b, "--consistency-wait", "0s")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "bench", "name": "Bench"})
	cmds, err := web.NewAppCommands(v.p.App)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	meta := domain.Metadata{Actor: "bench", Reason: "seed"}
	var wg sync.WaitGroup
	errs := make(chan error, flags)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < flags; i += 4 {
				key := fmt.Sprintf("flag-%04d", i)
				f, err := cmds.CreateFlag(ctx, meta, domain.NewFlag{Project: "bench", Key: key, Name: "Flag " + key, Type: domain.FlagString,
					Tags: []string{fmt.Sprintf("team-%d", i%10)}, ClientSide: true,
					Variations: []domain.Variation{{Key: "a", Value: "A"}, {Key: "b", Value: "B"}}})
				if err == nil {
					_, err = cmds.UpdateTargeting(ctx, meta, "bench", key, "production", f.Version, domain.Targeting{On: true, OffVariation: "a",
						Rules: []domain.Rule{{Clauses: []domain.Clause{{Attribute: "country", Operator: domain.OpIn, Values: []any{"FR", "DE"}}},
							Serve: domain.Serve{Split: &domain.Split{Variations: []domain.WeightedVariation{{Variation: "a", Weight: 50000}, {Variation: "b", Weight: 50000}}}}}},
						Default: domain.Serve{Variation: "a"}})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	testkit.WaitFor(b, 3*time.Minute, "the catalog and audit read models to hold 1,000 flags", func() bool {
		var n, a int
		_ = v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM rm_flags WHERE project = 'bench'`).Scan(&n)
		_ = v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM rm_audit_log WHERE project = 'bench' AND event_type = 'FlagTargetingUpdated'`).Scan(&a)
		return n == flags && a == flags
	})
	u := addPerson(b, v, "bench@example.com", "Bench", "bench", identity.RoleEditor, false)
	p := signIn(b, v, u)
	for _, page := range []struct{ name, path string }{
		{"flags-list", "/projects/bench/flags"},
		{"flags-list-search", "/projects/bench/flags?q=flag-09&tag=team-3"},
		{"flag-page", "/projects/bench/flags/flag-0500"},
		{"targeting-editor", "/projects/bench/flags/flag-0500/environments/production"},
		{"audit-log", "/projects/bench/audit"},
		{"time-travel", "/projects/bench/flags/flag-0500/history?at=" + time.Now().UTC().Format(time.RFC3339)},
	} {
		b.Run(page.name, func(b *testing.B) {
			for b.Loop() {
				resp, err := p.client.Get(v.base + page.path)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d", page.path, resp.StatusCode)
				}
			}
		})
	}
}
