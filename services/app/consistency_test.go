package app_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/roles/projector"
)

// readModelWaits records the read-your-writes waits of the application layer: each stream waited
// for and the deadline it was waited under.
type readModelWaits struct {
	mu    sync.Mutex
	calls []waitCall
}

type waitCall struct {
	stream   string
	deadline time.Time
}

func (w *readModelWaits) await(ctx context.Context, streamID string, _ int64, _ []string) error {
	d, _ := ctx.Deadline()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, waitCall{streamID, d})
	return nil
}

func (w *readModelWaits) take() []waitCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.calls
	w.calls = nil
	return c
}

// Issue 20, defect 2: a command that appends to two streams (a rollout's abort: the flag, then
// the rollout; a webhook trigger: the flag, then the trigger) waits for the read models once,
// under one ConsistencyWait deadline, not once per append (it answered after up to twice the
// documented bound).
func TestTwoStreamCommandsWaitForTheReadModelsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, store := pgtest.NewEventStore(t, postgres.WithInlineProjections(access.Projection{}))
	waits := &readModelWaits{}
	a, err := app.New(app.Config{Store: store, Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ConsistencyWait: time.Hour, AwaitReadModels: waits.await})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Commands.CreateProject(ctx, person, app.CreateProject{Key: project, Name: "Shop"}); err != nil {
		t.Fatal(err)
	}
	createFlag(t, a, "checkout")
	if got := waits.take(); len(got) != 2 { // one per command
		t.Fatalf("project and flag: %d waits, want 2: %+v", len(got), got)
	}
	expectOneDeadline := func(what string, streams ...string) {
		t.Helper()
		got := waits.take()
		if len(got) != len(streams) {
			t.Fatalf("%s: waited for %d streams, want %v: %+v", what, len(got), streams, got)
		}
		for i, c := range got {
			if c.stream != streams[i] {
				t.Fatalf("%s: wait %d for %s, want %s", what, i, c.stream, streams[i])
			}
			if !c.deadline.Equal(got[0].deadline) {
				t.Fatalf("%s: the waits have deadlines %s and %s: two budgets of ConsistencyWait", what,
					got[0].deadline.Format(time.RFC3339Nano), c.deadline.Format(time.RFC3339Nano))
			}
		}
	}

	// A rollout whose first step applied, then aborted: the abort writes the flag and the rollout.
	r, _, err := a.Commands.CreateRollout(ctx, person, app.CreateRollout{Project: project, Flag: "checkout", Env: "production",
		Template: &app.RolloutTemplate{Every: "1h", Percents: []float64{10, 100}}})
	if err != nil {
		t.Fatal(err)
	}
	system := app.Meta{Actor: "system:rollout/" + r.ID, CommandID: r.StepCommandID(0)}
	out, err := a.Commands.ApplyRolloutStep(ctx, system, app.ApplyRolloutStep{Rollout: r, Step: 0})
	if err != nil || out.Refused != nil {
		t.Fatalf("step 0: %v %v", err, out.Refused)
	}
	if err := a.Commands.RecordRollout(ctx, system, app.RecordRollout{Rollout: r, Events: out.Events}); err != nil {
		t.Fatal(err)
	}
	waits.take()
	aborted, _, err := a.Commands.AbortRollout(ctx, person, app.AbortRollout{Project: project, ID: r.ID, Reason: "enough"})
	if err != nil || aborted.Status != domain.RolloutStatusAborted {
		t.Fatalf("abort: %v, %+v", err, aborted)
	}
	expectOneDeadline("abort", domain.FlagStream(project, "checkout"), domain.RolloutStream(project, r.ID))

	tr, err := a.Commands.CreateTrigger(ctx, person, app.CreateTrigger{Project: project, Name: "kill", Flag: "checkout",
		Env: "production", Action: domain.TriggerOn})
	if err != nil {
		t.Fatal(err)
	}
	// The webhook finds its trigger's project in the delivery read model (the projector's job).
	runner, err := projector.New(projector.Config{Pool: pool, Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SkipCatchUp: true, Projections: []projections.Projection{delivery.Projection{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.ApplyStream(ctx, domain.TriggerStream(project, tr.Trigger.ID)); err != nil {
		t.Fatal(err)
	}
	waits.take()
	fired, err := a.Commands.FireTrigger(ctx, app.Meta{}, app.FireTrigger{ID: tr.Trigger.ID, Secret: tr.Secret, Remote: "192.0.2.1"})
	if err != nil || !fired.Changed {
		t.Fatalf("fire: %v, %+v", err, fired)
	}
	expectOneDeadline("webhook trigger", domain.FlagStream(project, "checkout"), domain.TriggerStream(project, tr.Trigger.ID))
}
