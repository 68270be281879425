package domain_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

func conversionGuard(sequential bool) domain.RolloutGuard {
	return domain.RolloutGuard{Name: "conversion", Goal: "purchase", Comparison: domain.AutoOpsLessThan, Threshold: -0.01,
		MinSample: 1000, MinProbability: 0.95, Sequential: sequential}
}

func TestGuardJudge(t *testing.T) {
	arm := func(n int64, rate float64) domain.AutoOpsArm { return domain.AutoOpsArm{Exposed: n, Rate: rate} }
	for _, c := range []struct {
		name     string
		guard    domain.RolloutGuard
		m        domain.GuardMetrics
		want     domain.GuardStatus
		decision string
	}{
		{"no sample", conversionGuard(false), domain.GuardMetrics{Treatment: arm(0, math.NaN()), Control: arm(900, 0.1)}, domain.GuardWaiting, "waits for sample"},
		{"control too small", conversionGuard(false), domain.GuardMetrics{Treatment: arm(5000, 0.1), Control: arm(999, 0.1), Probability: 0.5}, domain.GuardWaiting, "needs 1000 per arm"},
		{"healthy", conversionGuard(false), domain.GuardMetrics{Treatment: arm(5000, 0.101), Control: arm(5000, 0.1), Probability: 0.3}, domain.GuardHealthy, "healthy"},
		{"bad but uncertain", conversionGuard(false), domain.GuardMetrics{Treatment: arm(1000, 0.085), Control: arm(1000, 0.1), Probability: 0.9}, domain.GuardWaiting, "required certainty"},
		{"bad and certain", conversionGuard(false), domain.GuardMetrics{Treatment: arm(1500, 0.04), Control: arm(9000, 0.1), Probability: 0.999}, domain.GuardFailing, "failed"},
		{"NaN probability", conversionGuard(false), domain.GuardMetrics{Treatment: arm(1500, 0.04), Control: arm(9000, 0.1), Probability: math.NaN()}, domain.GuardWaiting, "could not be computed"},
		{"sequential, interval beyond", conversionGuard(true), domain.GuardMetrics{Treatment: arm(1500, 0.04), Control: arm(9000, 0.1), Interval: &[2]float64{-0.08, -0.04}}, domain.GuardFailing, "confidence sequence"},
		{"sequential, interval straddles", conversionGuard(true), domain.GuardMetrics{Treatment: arm(1500, 0.085), Control: arm(9000, 0.1), Probability: 0.99, Interval: &[2]float64{-0.04, 0.01}}, domain.GuardWaiting, "required certainty"},
		{"sequential, no interval", conversionGuard(true), domain.GuardMetrics{Treatment: arm(1500, 0.085), Control: arm(9000, 0.1)}, domain.GuardWaiting, "could not be computed"},
	} {
		ev := c.guard.Judge(c.m)
		if ev.Status != c.want || !strings.Contains(ev.Decision, c.decision) {
			t.Errorf("%s: %s %q, want %s with %q", c.name, ev.Status, ev.Decision, c.want, c.decision)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Errorf("%s: evidence does not encode: %v", c.name, err)
		}
	}
}

func guardedRollout(t *testing.T) *domain.Rollout {
	t.Helper()
	r := &domain.Rollout{}
	for i, e := range []domain.Event{
		&domain.RolloutCreated{Project: "shop", ID: "g", Flag: "checkout", Environment: "production", Variation: "true", Other: "false",
			Steps:  []domain.RolloutStep{{At: at(1), Percent: 10}, {At: at(2), Percent: 100}},
			Guards: []domain.RolloutGuard{conversionGuard(false)}, OnGuardFailure: domain.GuardRollBack},
		&domain.RolloutStepApplied{Index: 0, Percent: 10, Weight: 10000},
	} {
		data, _ := json.Marshal(e)
		if err := r.ApplyRecorded(domain.RecordedEvent{StreamID: "rollout/shop/g", Version: int64(i + 1), Type: e.EventType(), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func TestGuardStep(t *testing.T) {
	g := conversionGuard(false)
	waiting := g.Judge(domain.GuardMetrics{Treatment: domain.AutoOpsArm{Exposed: 10}, Control: domain.AutoOpsArm{Exposed: 10}})
	failing := g.Judge(domain.GuardMetrics{Treatment: domain.AutoOpsArm{Exposed: 1500, Rate: 0.04}, Control: domain.AutoOpsArm{Exposed: 9000, Rate: 0.1}, Probability: 0.999})
	healthy := g.Judge(domain.GuardMetrics{Treatment: domain.AutoOpsArm{Exposed: 1500, Rate: 0.1}, Control: domain.AutoOpsArm{Exposed: 9000, Rate: 0.1}, Probability: 0.5})

	r := guardedRollout(t)
	if !r.Guarded() {
		t.Fatal("a rollout serving 10% with a guard is guarded")
	}
	ok, events, err := r.GuardStep(1, []domain.GuardEvidence{waiting}, at(2))
	if err != nil || ok || len(events) != 1 || events[0].EventType() != "RolloutStepWaiting" {
		t.Fatalf("waiting: %v %v %v", ok, events, err)
	}
	r.Apply(events[0])
	// The same reason again records nothing; the step still waits.
	if ok, events, err := r.GuardStep(1, []domain.GuardEvidence{waiting}, at(3)); ok || len(events) != 0 || err != nil {
		t.Fatalf("waiting again: %v %v %v", ok, events, err)
	}
	if ok, events, err := r.GuardStep(1, []domain.GuardEvidence{healthy}, at(3)); !ok || len(events) != 0 || err != nil {
		t.Fatalf("healthy: %v %v %v", ok, events, err)
	}
	ok, events, err = r.GuardStep(1, []domain.GuardEvidence{failing}, at(3))
	fired, isFired := events[0].(*domain.GuardFired)
	if err != nil || ok || !isFired || fired.Environment != "production" || fired.Action != domain.GuardRollBack || fired.Evidence[0].Status != domain.GuardFailing {
		t.Fatalf("failing: %v %v %v", ok, events, err)
	}
	r.Apply(fired)
	if r.PendingGuard == nil || r.Waiting != nil {
		t.Fatalf("after GuardFired: pending %v waiting %v", r.PendingGuard, r.Waiting)
	}
	if _, _, err := r.ApplyStep(1, nil, nil); domain.ErrorCode(err) != domain.EConflict {
		t.Fatalf("a step with a pending guard action: %v", err)
	}
	r.Apply(&domain.RolloutRolledBack{At: at(3), Reason: "guard"})
	r.Apply(&domain.RolloutPaused{At: at(3), Reason: "guard"})
	if r.PendingGuard != nil || r.Guarded() || r.LastGuardFired == nil {
		t.Fatalf("after the rollback: pending %v guarded %v last %v", r.PendingGuard, r.Guarded(), r.LastGuardFired)
	}
}

func TestValidateGuards(t *testing.T) {
	cat := expCatalog()
	good := conversionGuard(false)
	good.Goal = "signup"
	for _, c := range []struct {
		mutate func(*domain.RolloutGuard)
		action domain.GuardAction
		field  string
	}{
		{func(g *domain.RolloutGuard) { g.MinSample = 0 }, "", "guards[0].min_sample"},
		{func(g *domain.RolloutGuard) { g.MinProbability = 1 }, "", "guards[0].min_probability"},
		{func(g *domain.RolloutGuard) { g.Comparison = "eq" }, "", "guards[0].comparison"},
		{func(g *domain.RolloutGuard) { g.Threshold = math.Inf(1) }, "", "guards[0].threshold"},
		{func(g *domain.RolloutGuard) { g.Goal = "missing" }, "", "guards[0].goal"},
		{func(*domain.RolloutGuard) {}, "explode", "on_guard_failure"},
	} {
		g := good
		c.mutate(&g)
		_, _, err := domain.ValidateRolloutGuards([]domain.RolloutGuard{g}, c.action, cat)
		if f := fieldOf(err); f != c.field {
			t.Errorf("want %s, got %v", c.field, err)
		}
	}
	out, action, err := domain.ValidateRolloutGuards([]domain.RolloutGuard{good}, "", cat)
	if err != nil || action != domain.GuardRollBack || len(out) != 1 {
		t.Fatalf("good guard: %v %v %v", out, action, err)
	}
}

func TestReleaseAdvance(t *testing.T) {
	stages := []domain.PipelineStage{
		{Environment: "development", Action: domain.StageToggleOn},
		{Environment: "production", Action: domain.StageRollout, Wait: "1h", Approval: true,
			Rollout: &domain.StageRolloutPlan{Every: "1h", Percents: []float64{50, 100}}},
	}
	r := &domain.Release{}
	v := int64(0)
	apply := func(events ...domain.Event) {
		t.Helper()
		for _, e := range events {
			v++
			data, _ := json.Marshal(e)
			if err := r.ApplyRecorded(domain.RecordedEvent{StreamID: "release/shop/r", Version: v, Type: e.EventType(), Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply(&domain.ReleaseStarted{Project: "shop", ID: "r", Pipeline: "std", Flag: "checkout", Stages: stages})
	types := func(events []domain.Event) string {
		var out []string
		for _, e := range events {
			out = append(out, e.EventType())
		}
		return strings.Join(out, ",")
	}
	step := func(now time.Time, ro *domain.Rollout, want string) *domain.StageStart {
		t.Helper()
		start, events, err := r.Advance(now, ro)
		if err != nil || types(events) != want {
			t.Fatalf("at %s: %s %v, want %s", now, types(events), err, want)
		}
		apply(events...)
		return start
	}
	if s := step(at(1), nil, "ReleaseStageStarted,ReleaseStageCompleted"); s == nil || s.Action != domain.StageToggleOn || s.Environment != "development" {
		t.Fatalf("development start: %+v", s)
	}
	step(at(1), nil, "ReleaseStageWaiting")
	step(at(1).Add(30*time.Minute), nil, "")
	step(at(1).Add(time.Hour), nil, "PipelineAwaitingApproval")
	step(at(1).Add(2*time.Hour), nil, "")
	if _, err := r.Approve(0, at(2)); fieldOf(err) != "stage" {
		t.Fatalf("approving a past stage: %v", err)
	}
	approved, err := r.Approve(1, at(2))
	if err != nil {
		t.Fatal(err)
	}
	apply(approved...)
	s := step(at(1).Add(3*time.Hour), nil, "ReleaseStageStarted")
	if s == nil || s.RolloutID != "r.stage-1" || s.Rollout == nil {
		t.Fatalf("production start: %+v", s)
	}
	ro := &domain.Rollout{ID: "r.stage-1", Status: domain.RolloutStatusPaused, Reason: "guard fired"}
	step(at(1).Add(4*time.Hour), ro, "ReleasePaused")
	if _, err := r.Skip(1, "", &domain.Rollout{ID: "r.stage-1", Status: domain.RolloutStatusPaused}, at(4)); domain.ErrorCode(err) != domain.EConflict {
		t.Fatalf("skipping a stage whose rollout is active: %v", err)
	}
	resumed, _ := r.Resume(at(5))
	apply(resumed...)
	ro.Status = domain.RolloutStatusCompleted
	step(at(1).Add(6*time.Hour), ro, "ReleaseStageCompleted,ReleaseFinished")
	if r.Status != domain.ReleaseCompleted || r.Stage != 2 {
		t.Fatalf("finished: %+v", r)
	}
	for _, e := range []domain.Event{&domain.ReleaseStageCompleted{Environment: "production"}, &domain.PipelineAwaitingApproval{Environment: "production"}} {
		data, _ := json.Marshal(e)
		if !strings.Contains(string(data), `"environment":"production"`) {
			t.Errorf("%s carries no environment: %s", e.EventType(), data)
		}
	}
}

// fieldOf is the field of a domain error ("" for other errors and nil).
func fieldOf(err error) string {
	var de *domain.Error
	if errors.As(err, &de) {
		return de.Field
	}
	return ""
}

// TestGuardAndReleaseEvents: the events of guarded rollouts and release pipelines are registered
// and survive the event store's JSON round trip.
func TestGuardAndReleaseEvents(t *testing.T) {
	ev := conversionGuard(true).Judge(domain.GuardMetrics{Treatment: domain.AutoOpsArm{Exposed: 1500, Rate: 0.04},
		Control: domain.AutoOpsArm{Exposed: 9000, Rate: 0.1}, Interval: &[2]float64{-0.08, -0.04}})
	stage := domain.PipelineStage{Environment: "production", Action: domain.StageRollout, Approval: true, Wait: "1h",
		Rollout: &domain.StageRolloutPlan{Every: "1h", Percents: []float64{50, 100}, Guards: []domain.RolloutGuard{conversionGuard(false)}}}
	for _, e := range []domain.Event{
		&domain.GuardFired{At: at(1), Project: "shop", Rollout: "g", Flag: "checkout", Environment: "production", Step: 1,
			Guard: "conversion", Action: domain.GuardRollBack, Evidence: []domain.GuardEvidence{ev}},
		&domain.RolloutStepWaiting{At: at(1), Environment: "production", Step: 1, Reason: "r", Evidence: []domain.GuardEvidence{ev}},
		&domain.PipelineCreated{Project: "shop", Key: "std", Name: "Standard", Stages: []domain.PipelineStage{stage}},
		&domain.ReleaseStarted{Project: "shop", ID: "r", Pipeline: "std", Flag: "checkout", Stages: []domain.PipelineStage{stage}},
		&domain.ReleaseStageWaiting{At: at(1), Environment: "production", Until: at(60)},
		&domain.PipelineAwaitingApproval{At: at(2), Project: "shop", Release: "r", Pipeline: "std", Flag: "checkout", Environment: "production"},
		&domain.ReleaseStageApproved{At: at(3), Environment: "production"},
		&domain.ReleaseStageStarted{At: at(4), Environment: "production", Rollout: "r.stage-0"},
		&domain.ReleaseStageCompleted{At: at(5), Environment: "production", Outcome: "o"},
		&domain.ReleaseStageSkipped{At: at(5), Stage: 1, Environment: "staging", Reason: "r"},
		&domain.ReleaseStageFailed{At: at(5), Environment: "production", Reason: "r"},
		&domain.ReleasePaused{At: at(6), Environment: "production", Reason: "r"},
		&domain.ReleaseResumed{At: at(7), Environment: "production"},
		&domain.ReleaseAborted{At: at(8), Environment: "production", Reason: "r"},
		&domain.ReleaseFinished{At: at(9), Environment: "production"},
	} {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("encode %s: %v", e.EventType(), err)
		}
		back, err := domain.DecodeEvent(e.EventType(), data)
		if err != nil {
			t.Fatalf("decode %s: %v", e.EventType(), err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(data) {
			t.Errorf("round trip of %s\n got %s\nwant %s", e.EventType(), again, data)
		}
	}
}
