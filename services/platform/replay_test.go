package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/platform"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := (&platform.Main{Stdout: &out, Stderr: io.Discard, Lookup: func(string) (string, bool) { return "", false }}).
		Run(context.Background(), args)
	return out.String(), err
}

// randomHistory runs n random decisions of the domain across flags and segments, each loaded,
// folded and appended with optimistic concurrency as the application layer does, validated
// against the application layer's catalog. Decisions the domain refuses are part of the history
// too (they append nothing).
func randomHistory(t *testing.T, a *app.Application, store *postgres.EventStore, project string, n int, seed uint64) int {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 1))
	meta := domain.Metadata{Actor: "test:random", Reason: "random history"}
	envs := []string{"development", "production"}
	execute := func(stream string, decide func(projections.Aggregate) ([]domain.Event, error)) error {
		events, err := store.Load(ctx, stream)
		if err != nil {
			return err
		}
		var cur projections.Aggregate
		var version int64
		if len(events) > 0 {
			if cur, err = projections.Fold(stream, events); err != nil {
				return err
			}
			version = events[len(events)-1].Version
		}
		newEvents, err := decide(cur)
		if err != nil || len(newEvents) == 0 {
			return err
		}
		_, err = store.Append(ctx, stream, version, meta, newEvents...)
		return err
	}
	if err := execute(domain.ProjectStream(project), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.CreateProject(project, "Random", "", []domain.NewEnvironment{{Key: envs[0], Name: "Dev"}, {Key: envs[1], Name: "Prod"}}, app.NewSDKKey)
	}); err != nil {
		t.Fatal(err)
	}
	var flags, segments []string
	applied := 0
	exec := func(stream string, decide func(projections.Aggregate) ([]domain.Event, error)) bool {
		err := execute(stream, decide)
		if err == nil {
			applied++
			return true
		}
		if code := domain.ErrorCode(err); code == domain.EInternal || code == domain.EUnavailable {
			t.Fatalf("command on %s: %v", stream, err)
		}
		return false
	}
	randomClause := func() domain.Clause {
		switch rng.IntN(4) {
		case 0:
			return domain.Clause{Attribute: "country", Operator: domain.OpIn, Values: []any{"US", "DE", "FR"}[:1+rng.IntN(3)]}
		case 1:
			return domain.Clause{Attribute: "age", Operator: domain.OpGTE, Values: []any{float64(rng.IntN(80))}, Negate: rng.IntN(2) == 0}
		case 2:
			if len(segments) > 0 {
				return domain.Clause{Operator: domain.OpInSegment, Values: []any{segments[rng.IntN(len(segments))]}}
			}
		}
		return domain.Clause{Attribute: "email", Operator: domain.OpEndsWith, Values: []any{"@example.com"}}
	}
	for i := 0; i < n; i++ {
		cat, err := a.Queries.Catalog(ctx, project)
		if err != nil {
			t.Fatal(err)
		}
		switch op := rng.IntN(10); {
		case op == 0 || len(flags) < 3:
			key := fmt.Sprintf("flag-%d", len(flags))
			if exec(domain.FlagStream(project, key), func(projections.Aggregate) ([]domain.Event, error) {
				return domain.CreateFlag(domain.NewFlag{Project: project, Key: key, Name: key, Type: domain.FlagBoolean,
					Tags: []string{[]string{"a", "b"}[rng.IntN(2)]}, ClientSide: rng.IntN(2) == 0, Salt: app.NewID(4)}, cat)
			}) {
				flags = append(flags, key)
			}
		case op == 1 && len(segments) < 8:
			key := fmt.Sprintf("segment-%d", len(segments))
			if exec(domain.SegmentStream(project, key), func(projections.Aggregate) ([]domain.Event, error) {
				return domain.CreateSegment(domain.NewSegment{Project: project, Key: key, SegmentDefinition: domain.SegmentDefinition{
					Name: key, Clauses: []domain.Clause{randomClause()}, Included: []string{fmt.Sprintf("user-%d", rng.IntN(100))}}}, cat)
			}) {
				segments = append(segments, key)
			}
		case op == 2 && len(segments) > 0:
			key := segments[rng.IntN(len(segments))]
			exec(domain.SegmentStream(project, key), func(cur projections.Aggregate) ([]domain.Event, error) {
				s := cur.(*domain.Segment)
				d := s.Definition()
				d.Included = append(d.Included, fmt.Sprintf("user-%d", rng.IntN(1000)))
				if rng.IntN(3) == 0 {
					return s.Archive(cat)
				}
				if s.Archived {
					return s.Restore()
				}
				return s.Update(d, cat)
			})
		case op <= 5:
			key := flags[rng.IntN(len(flags))]
			env := envs[rng.IntN(2)]
			exec(domain.FlagStream(project, key), func(cur projections.Aggregate) ([]domain.Event, error) {
				return cur.(*domain.Flag).Toggle(env, rng.IntN(2) == 0, cat)
			})
		case op <= 8:
			key := flags[rng.IntN(len(flags))]
			env := envs[rng.IntN(2)]
			t := domain.Targeting{On: rng.IntN(2) == 0, OffVariation: "false", Default: domain.Serve{Variation: "true"}}
			for r := rng.IntN(3); r > 0; r-- {
				t.Rules = append(t.Rules, domain.Rule{Clauses: []domain.Clause{randomClause()}, Serve: domain.Serve{Variation: "true"}})
			}
			if rng.IntN(2) == 0 {
				w := 1000 * rng.IntN(101)
				t.Default = domain.Serve{Split: &domain.Split{Variations: []domain.WeightedVariation{{Variation: "true", Weight: w}, {Variation: "false", Weight: domain.BucketCount - w}}}}
			}
			exec(domain.FlagStream(project, key), func(cur projections.Aggregate) ([]domain.Event, error) {
				return cur.(*domain.Flag).UpdateTargeting(env, t, cat)
			})
		default:
			key := flags[rng.IntN(len(flags))]
			exec(domain.FlagStream(project, key), func(cur projections.Aggregate) ([]domain.Event, error) {
				f := cur.(*domain.Flag)
				if f.Archived {
					return f.Restore()
				}
				if rng.IntN(2) == 0 {
					return f.Archive(cat)
				}
				return f.Update(domain.FlagSettings{Name: f.Name + "!", Tags: f.Tags, ClientSide: !f.ClientSide})
			})
		}
	}
	return applied
}

// After a long random history applied live (through Redis and the projector), replay --verify
// finds no difference; a swap rebuilds the read models in place with SDK serving untouched.
func TestReplayVerifiesALongRandomHistory(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--consistency-wait", "0s")
	start := time.Now()
	applied := randomHistory(t, v.p.App, v.p.Store, "rnd", 2000, 42)
	t.Logf("%d of 2000 random commands applied in %v", applied, time.Since(start))
	if applied < 1000 {
		t.Fatalf("only %d commands applied", applied)
	}
	ctx := context.Background()
	// Wait for the live projector to apply everything.
	waitUntil(t, 60*time.Second, "the live read models", func() bool {
		var behind int
		_ = v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT stream_id, max(version) v FROM events GROUP BY stream_id) e
			WHERE EXISTS (SELECT 1 FROM unnest(ARRAY['access','catalog','rulesets','audit']) p(name)
			  LEFT JOIN projection_checkpoints c ON c.projection = p.name AND c.stream_id = e.stream_id
			  WHERE coalesce(c.version, 0) < e.v)`).Scan(&behind)
		return behind == 0
	})
	url := v.p.Config.DatabaseURL
	out, err := runCLI(t, "replay", "--verify", "--database-url", url)
	if err != nil {
		t.Fatalf("replay --verify: %v\n%s", err, out)
	}
	var rep struct {
		Replay struct {
			Events int64 `json:"events"`
		} `json:"replay"`
		Differences []any `json:"differences"`
	}
	var events int64
	if err := v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Replay.Events != events || events < 1000 || len(rep.Differences) != 0 {
		t.Fatalf("verify: %v %s", err, out)
	}
	// Migration 0180's backfill of the catalog's compact entries agrees with the projection's on
	// the whole random history, so an upgraded database verifies as clean as a replayed one.
	var differ int
	if err := v.p.Pool.QueryRow(ctx, `SELECT
		  (SELECT count(*) FROM rm_flags WHERE info IS DISTINCT FROM vexil_flag_info(state) OR info_version <> version) +
		  (SELECT count(*) FROM rm_segments WHERE info IS DISTINCT FROM vexil_segment_info(state) OR info_version <> version)`).Scan(&differ); err != nil || differ != 0 {
		t.Fatalf("catalog rows whose backfilled info differs from the projection's: %d (%v)", differ, err)
	}

	// A corrupted read model is reported.
	if _, err := v.p.Pool.Exec(ctx, `UPDATE rm_flags SET name = 'tampered' WHERE key = 'flag-1'`); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "replay", "--verify", "--database-url", url)
	if !errors.Is(err, platform.ErrVerificationFailed) || !strings.Contains(out, "tampered") {
		t.Fatalf("a corrupted read model went unnoticed: %v\n%s", err, out)
	}
	// Replay rebuilds it; serving keeps answering throughout.
	stop := make(chan struct{})
	served := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				served <- n
				return
			default:
			}
			if v.as("").do("GET", "/healthz", nil).Status == 200 {
				n++
			}
		}
	}()
	out, err = runCLI(t, "replay", "--database-url", url)
	close(stop)
	if n := <-served; err != nil || n == 0 {
		t.Fatalf("replay: %v (%d requests served)\n%s", err, n, out)
	}
	var name string
	if err := v.p.Pool.QueryRow(ctx, `SELECT name FROM rm_flags WHERE project = 'rnd' AND key = 'flag-1'`).Scan(&name); err != nil || name == "tampered" {
		t.Fatalf("after replay flag-1 is named %q (%v)", name, err)
	}
	if out, err := runCLI(t, "replay", "--verify", "--database-url", url); err != nil {
		t.Fatalf("verify after the swap: %v\n%s", err, out)
	}
	// The management API still reads the swapped tables.
	if ks := keys(t, v.must(200, "GET", "/api/v1/projects/rnd/flags?limit=500&archived=false", nil)); len(ks) == 0 {
		t.Fatal("no flags listed after the swap")
	}
}
