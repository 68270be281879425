package audit_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/migrations"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
)

// Issue 20, defect 1: the outcome events of schedules, rollouts, auto-ops rules and triggers are
// filed under their environment, whether they carry it (new logs) or not (logs written before
// they did), and migration 0160 files the rows projected before the same way.
func TestDeliveryOutcomesAreFiledUnderTheirEnvironment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, store := pgtest.NewEventStore(t)
	at := time.Date(2026, 12, 24, 8, 0, 0, 0, time.UTC)
	meta := domain.Metadata{Actor: "system:test", Reason: "test"}
	streams := map[string][]domain.Event{
		// An old log: the outcome events have no environment of their own.
		domain.ScheduleStream("shop", "s1"): {
			&domain.ScheduleCreated{Project: "shop", ID: "s1", Flag: "checkout", Environment: "production",
				ChangeSpec: domain.ChangeSpec{At: at, Kind: domain.ChangeToggle}},
			&domain.ScheduleApplied{At: at, FlagVersion: 3},
		},
		domain.TriggerStream("shop", "t1"): {
			&domain.TriggerCreated{Project: "shop", ID: "t1", Name: "kill", Flag: "checkout", Environment: "production",
				Action: domain.TriggerOff, SecretHash: "00"},
			&domain.TriggerFired{At: at, Changed: true},
		},
		// A new log: the events name it.
		domain.RolloutStream("shop", "r1"): {
			&domain.RolloutCreated{Project: "shop", ID: "r1", Flag: "checkout", Environment: "production", Variation: "true",
				Other: "false", Steps: []domain.RolloutStep{{At: at, Percent: 100}}, Start: domain.Serve{Variation: "false"}},
			&domain.RolloutPaused{Environment: "production", At: at, Reason: "metric"},
		},
		domain.AutoOpsStream("shop", "a1"): {
			&domain.AutoOpsRuleCreated{Project: "shop", ID: "a1", Flag: "checkout", Environment: "staging"},
			&domain.AutoOpsRuleTriggered{Evidence: domain.AutoOpsEvidence{At: at, Fired: true}},
		},
	}
	for stream, events := range streams {
		if _, err := store.Append(ctx, stream, 0, meta, events...); err != nil {
			t.Fatalf("append %s: %v", stream, err)
		}
		recorded, err := store.Load(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := (audit.Projection{}).Apply(ctx, tx, nil, recorded); err != nil {
			t.Fatalf("project %s: %v", stream, err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	types := func(env string) []string {
		t.Helper()
		entries, _, err := audit.List(ctx, pool, audit.Query{Project: "shop", Environment: env})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.EventType)
		}
		slices.Sort(out)
		return out
	}
	wantProduction := []string{"RolloutCreated", "RolloutPaused", "ScheduleApplied", "ScheduleCreated", "TriggerCreated", "TriggerFired"}
	if got := types("production"); !slices.Equal(got, wantProduction) {
		t.Fatalf("production's audit: %v, want %v", got, wantProduction)
	}
	if got := types("staging"); !slices.Equal(got, []string{"AutoOpsRuleCreated", "AutoOpsRuleTriggered"}) {
		t.Fatalf("staging's audit: %v", got)
	}

	// Rows projected before the fix had no environment: 0160 fills it in from the stream's
	// creation event, exactly as the projection (and so a replay) files them.
	environments := func() map[int64]string {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT position, environment FROM rm_audit_log`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[int64]string{}
		for rows.Next() {
			var p int64
			var env string
			if err := rows.Scan(&p, &env); err != nil {
				t.Fatal(err)
			}
			out[p] = env
		}
		return out
	}
	projected := environments()
	if _, err := pool.Exec(ctx, `UPDATE rm_audit_log SET environment = '' WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	up, err := migrations.FS.ReadFile("0160_audit_delivery_environment.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, string(up)); err != nil {
		t.Fatalf("0160: %v", err)
	}
	if got := types("production"); !slices.Equal(got, wantProduction) {
		t.Fatalf("production's audit after 0160: %v, want %v", got, wantProduction)
	}
	if migrated := environments(); !maps.Equal(migrated, projected) {
		t.Fatalf("after 0160 the rows say %v; projected (and replayed) they say %v", migrated, projected)
	}
}
