package scheduler_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/roles/scheduler"
)

func (h *harness) scheduleChange(id, flag string, spec domain.ChangeSpec) {
	h.t.Helper()
	cat := h.catalog()
	f, _ := h.flag(flag)
	h.exec(domain.ScheduleStream(project, id), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.ScheduleChange(domain.NewScheduledChange{Project: project, ID: id, Flag: flag, Environment: "production",
			ChangeSpec: spec}, f, cat, h.start)
	})
}

func (h *harness) editTargeting(flag string, edit func(*domain.Targeting)) {
	h.t.Helper()
	cat := h.catalog()
	h.exec(domain.FlagStream(project, flag), func(cur projections.Aggregate) ([]domain.Event, error) {
		f := cur.(*domain.Flag)
		t := f.ConfigFor("production").Targeting
		edit(&t)
		return f.UpdateTargeting("production", t, cat)
	})
}

var staffRule = domain.Rule{Description: "staff", Clauses: []domain.Clause{{Attribute: "email", Operator: domain.OpEndsWith,
	Values: []any{"@shop.example"}}}, Serve: domain.Serve{Variation: "true"}}

// Scheduled changes of each kind apply when due, attributed to the schedule; a change that no
// longer applies cleanly (the flag changed meanwhile in a conflicting way) fails with its reason.
func TestScheduledChangesApplyOrFailWithTheirReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	at := h.start.Add(time.Hour)
	f, _ := h.flag("checkout")
	target := f.ConfigFor("production").Targeting
	target.Rules = []domain.Rule{staffRule}

	h.scheduleChange("toggle-off", "checkout", domain.ChangeSpec{At: at, Kind: domain.ChangeToggle, On: false})
	h.scheduleChange("default-half", "checkout", domain.ChangeSpec{At: at.Add(time.Minute), Kind: domain.ChangeDefault,
		Default: &domain.Serve{Split: &domain.Split{Variations: []domain.WeightedVariation{{Variation: "true", Weight: 50000}, {Variation: "false", Weight: 50000}}}}})
	h.scheduleChange("targeting", "checkout", domain.ChangeSpec{At: at.Add(2 * time.Minute), Kind: domain.ChangeTargeting, Targeting: &target})

	s := h.scheduler()
	h.clock.Set(at.Add(-time.Second))
	if rep := h.tick(s); rep.SchedulesApplied+rep.SchedulesFailed != 0 {
		t.Fatalf("applied early: %+v", rep)
	}
	h.clock.Set(at)
	if rep := h.tick(s); rep.SchedulesApplied != 1 {
		t.Fatalf("toggle: %+v", rep)
	}
	got, events := h.flag("checkout")
	if got.ConfigFor("production").Targeting.On {
		t.Fatal("the scheduled toggle did not turn the flag off")
	}
	last := events[len(events)-1]
	if last.Metadata.Actor != "system:schedule/toggle-off" || !strings.Contains(last.Metadata.Reason, "turn off flag \"checkout\"") ||
		last.Metadata.CommandID != "toggle-off:apply" {
		t.Fatalf("toggle's metadata: %+v", last.Metadata)
	}
	if sc := h.schedule("toggle-off"); sc.Status != domain.ScheduleStatusApplied || sc.ResolvedAt.IsZero() {
		t.Fatalf("toggle schedule: %+v", sc)
	}

	// Someone changes the default by hand before the default change is due: it fails, saying why,
	// and the hand-made default stays.
	h.editTargeting("checkout", func(t *domain.Targeting) { t.Default = domain.Serve{Variation: "true"} })
	h.clock.Set(at.Add(time.Minute))
	if rep := h.tick(s); rep.SchedulesFailed != 1 {
		t.Fatalf("default change: %+v", rep)
	}
	sc := h.schedule("default-half")
	if sc.Status != domain.ScheduleStatusFailed || !strings.Contains(sc.FailureReason, "default of \"checkout\" in \"production\" changed since the change was scheduled") {
		t.Fatalf("default schedule: %s %q", sc.Status, sc.FailureReason)
	}
	if got, _ := h.flag("checkout"); got.ConfigFor("production").Targeting.Default.Variation != "true" {
		t.Fatal("a failed change touched the flag")
	}

	// The targeting change was captured before the default moved: it fails too, naming the part.
	h.clock.Set(at.Add(2 * time.Minute))
	if rep := h.tick(s); rep.SchedulesFailed != 1 {
		t.Fatalf("targeting change: %+v", rep)
	}
	if sc := h.schedule("targeting"); sc.Status != domain.ScheduleStatusFailed ||
		!strings.Contains(sc.FailureReason, "targeting of \"checkout\" in \"production\" changed since the change was scheduled") ||
		!strings.Contains(sc.FailureReason, "default") {
		t.Fatalf("targeting schedule: %s %q", sc.Status, sc.FailureReason)
	}
	// The read model lists them with status and reason, and nothing is due any more.
	if rep := h.tick(s); rep != (scheduler.Report{}) {
		t.Fatalf("resolved changes still due: %+v", rep)
	}
}

// A crash between the flag's append and the schedule's outcome leaves the change made; the next
// pass records it as applied without changing the flag again, for every kind of change, even when
// the flag changed again in between.
func TestScheduledChangeSurvivesACrashBetweenTheTwoAppends(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	at := h.start.Add(time.Hour)
	f, _ := h.flag("checkout")
	target := f.ConfigFor("production").Targeting
	target.Rules = []domain.Rule{staffRule}
	h.scheduleChange("toggle", "checkout", domain.ChangeSpec{At: at, Kind: domain.ChangeToggle, On: false})
	h.scheduleChange("default", "checkout", domain.ChangeSpec{At: at, Kind: domain.ChangeDefault, Default: &domain.Serve{Variation: "true"}})

	crashing := h.scheduler()
	crashes := 0
	scheduler.SetCrashHook(crashing, func(stage, id string) error { crashes++; return errors.New("simulated crash") })
	h.clock.Set(at)
	if rep := h.tick(crashing); rep.Errors != 2 || crashes != 2 {
		t.Fatalf("crashing pass: %+v (%d crashes)", rep, crashes)
	}
	got, _ := h.flag("checkout")
	if got.ConfigFor("production").Targeting.On || got.ConfigFor("production").Targeting.Default.Variation != "true" {
		t.Fatal("both changes should have been written before the crashes")
	}
	if h.schedule("toggle").Status != domain.ScheduleStatusPending || h.schedule("default").Status != domain.ScheduleStatusPending {
		t.Fatal("no outcome should be recorded")
	}
	// The flag changes again before the restart: a decision made afresh would call the default
	// change a conflict, but it did happen.
	h.editTargeting("checkout", func(t *domain.Targeting) { t.Default = domain.Serve{Variation: "false"} })
	before, _ := h.flag("checkout")

	if rep := h.tick(h.scheduler()); rep.SchedulesApplied != 2 || rep.Errors != 0 {
		t.Fatalf("pass after the crash: %+v", rep)
	}
	for _, id := range []string{"toggle", "default"} {
		if sc := h.schedule(id); sc.Status != domain.ScheduleStatusApplied {
			t.Fatalf("%s: %s %q", id, sc.Status, sc.FailureReason)
		}
	}
	if after, _ := h.flag("checkout"); after.Version != before.Version {
		t.Fatalf("recording the outcome wrote the flag: version %d, was %d", after.Version, before.Version)
	}

	// A targeting change that crashed: recorded as applied, the rules written once.
	h.scheduleChange("targeting", "checkout", domain.ChangeSpec{At: at.Add(time.Hour), Kind: domain.ChangeTargeting, Targeting: func() *domain.Targeting {
		f, _ := h.flag("checkout")
		t := f.ConfigFor("production").Targeting
		t.Rules = []domain.Rule{staffRule}
		return &t
	}()})
	h.clock.Set(at.Add(time.Hour))
	h.tick(crashing)
	v, _ := h.flag("checkout")
	if rep := h.tick(h.scheduler()); rep.SchedulesApplied != 1 {
		t.Fatalf("targeting after a crash: %+v", rep)
	}
	if after, _ := h.flag("checkout"); after.Version != v.Version || len(after.ConfigFor("production").Targeting.Rules) != 1 {
		t.Fatalf("targeting applied twice or lost: version %d (was %d)", after.Version, v.Version)
	}
}
