package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/roles/scheduler"
	"github.com/vexil-flags/vexil/services/testkit"
)

// A rollout driven by a controllable clock goes through every step, each exactly when due, and
// completes; every flag change is attributed to the rollout with a reason.
func TestRolloutRunsThroughAllStepsOnAControllableClock(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	r := h.createRollout("r1", "checkout", 1, 5, 25, 50, 100)
	s := h.scheduler()

	if rep := h.tick(s); rep.StepsApplied != 0 {
		t.Fatalf("nothing is due yet: %+v", rep)
	}
	for i, step := range r.Steps {
		h.clock.Set(step.At.Add(-time.Second))
		if rep := h.tick(s); rep.StepsApplied != 0 {
			t.Fatalf("step %d applied a second early: %+v", i, rep)
		}
		h.clock.Set(step.At)
		if rep := h.tick(s); rep.StepsApplied != 1 || rep.Errors != 0 {
			t.Fatalf("step %d: %+v", i, rep)
		}
		f, _ := h.flag("checkout")
		if got, want := defaultWeight(f), domain.RolloutWeight(step.Percent); got != want {
			t.Fatalf("after step %d the default serves %d buckets of true, want %d", i, got, want)
		}
		if rep := h.tick(s); rep.StepsApplied != 0 {
			t.Fatalf("step %d applied again: %+v", i, rep)
		}
	}
	got, events := h.rollout("r1")
	if got.Status != domain.RolloutStatusCompleted || got.Percent != 100 || len(got.Skipped) != 0 {
		t.Fatalf("rollout after its last step: %+v", got)
	}
	if n := countType(events, "RolloutStepApplied"); n != 5 {
		t.Fatalf("%d steps recorded, want 5: %v", n, eventTypes(events))
	}
	_, flagEvents := h.flag("checkout")
	steps := 0
	for _, e := range flagEvents {
		if e.Metadata.Actor != "system:rollout/r1" {
			continue
		}
		steps++
		if e.Type != "FlagTargetingUpdated" || !strings.Contains(e.Metadata.Reason, "rollout r1: step") ||
			e.Metadata.CommandID != fmt.Sprintf("r1:step:%d", steps-1) {
			t.Fatalf("flag change by the rollout: %s %+v", e.Type, e.Metadata)
		}
	}
	if steps != 5 {
		t.Fatalf("%d flag changes by the rollout, want 5", steps)
	}
	// The read model has nothing left to do.
	if rep := h.tick(s); rep != (scheduler.Report{}) {
		t.Fatalf("completed rollout still active: %+v", rep)
	}
}

// A scheduler stopped mid-plan and replaced by a new one after the clock passed two steps applies
// the latest due step once and records the one before it as skipped: never repeated, never
// applied out of order.
func TestRolloutResumesAfterRestartWithoutRepeatingOrSkipping(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	r := h.createRollout("r1", "checkout", 1, 5, 25, 50, 100)

	first := h.scheduler()
	h.clock.Set(r.Steps[0].At)
	if rep := h.tick(first); rep.StepsApplied != 1 {
		t.Fatalf("first step: %+v", rep)
	}
	// The first scheduler stops; time passes beyond steps 1 and 2; a new one starts.
	h.clock.Set(r.Steps[2].At.Add(10 * time.Minute))
	second := h.scheduler()
	if err := second.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	if rep := h.tick(second); rep.StepsApplied != 1 {
		t.Fatalf("catching up: %+v", rep)
	}
	got, events := h.rollout("r1")
	if got.Next != 3 || got.Percent != 25 || len(got.Skipped) != 1 || got.Skipped[0] != 1 {
		t.Fatalf("after catching up: next %d percent %v skipped %v", got.Next, got.Percent, got.Skipped)
	}
	if countType(events, "RolloutStepSkipped") != 1 || countType(events, "RolloutStepApplied") != 2 {
		t.Fatalf("rollout events: %v", eventTypes(events))
	}
	f, flagEvents := h.flag("checkout")
	if defaultWeight(f) != domain.RolloutWeight(25) {
		t.Fatalf("default serves %d buckets, want 25%%", defaultWeight(f))
	}
	for _, e := range flagEvents {
		if e.Metadata.CommandID == "r1:step:1" {
			t.Fatal("the skipped step was written to the flag")
		}
	}
	if rep := h.tick(second); rep.StepsApplied != 0 {
		t.Fatalf("step repeated: %+v", rep)
	}
	// And the plan goes on.
	h.clock.Set(r.Steps[3].At)
	if rep := h.tick(second); rep.StepsApplied != 1 {
		t.Fatalf("next step: %+v", rep)
	}
}

// A crash between the flag's append and the rollout's leaves the step written but unrecorded; the
// next scheduler records it (as applied, decided against the flag as it was before that append)
// without writing the flag again, then goes on with the plan.
func TestRolloutStepSurvivesACrashBetweenTheTwoAppends(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	r := h.createRollout("r1", "checkout", 10, 50, 100)

	crashing := h.scheduler()
	scheduler.SetCrashHook(crashing, func(stage, id string) error { return errors.New("simulated crash") })
	h.clock.Set(r.Steps[0].At)
	if rep := h.tick(crashing); rep.Errors != 1 || rep.StepsApplied != 0 {
		t.Fatalf("crashing pass: %+v", rep)
	}
	f, _ := h.flag("checkout")
	if defaultWeight(f) != domain.RolloutWeight(10) {
		t.Fatal("the flag append should have happened before the crash")
	}
	if got, _ := h.rollout("r1"); got.Next != 0 {
		t.Fatalf("the rollout append should not have happened: next %d", got.Next)
	}
	flagVersion := f.Version

	// Restart after the clock passed the second step too.
	h.clock.Set(r.Steps[1].At)
	restarted := h.scheduler()
	if err := restarted.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	got, events := h.rollout("r1")
	if got.Next != 1 || countType(events, "RolloutStepApplied") != 1 || countType(events, "RolloutStepSkipped") != 0 {
		t.Fatalf("recovered rollout: next %d events %v", got.Next, eventTypes(events))
	}
	if f, _ := h.flag("checkout"); f.Version != flagVersion {
		t.Fatalf("recovery wrote the flag again: version %d, was %d", f.Version, flagVersion)
	}
	h.project()
	if rep := h.tick(restarted); rep.StepsApplied != 1 {
		t.Fatalf("the next step after recovery: %+v", rep)
	}
	f, flagEvents := h.flag("checkout")
	if defaultWeight(f) != domain.RolloutWeight(50) {
		t.Fatalf("weight %d after step 2", defaultWeight(f))
	}
	seen := map[string]int{}
	for _, e := range flagEvents {
		if e.Metadata.CommandID != "" {
			seen[e.Metadata.CommandID]++
		}
	}
	if seen["r1:step:0"] != 1 || seen["r1:step:1"] != 1 {
		t.Fatalf("flag appends per command: %v", seen)
	}

	// Without the explicit Recover, the pass itself records a crashed step before anything else.
	h2 := newHarness(t)
	h2.createFlag("checkout")
	r2 := h2.createRollout("r2", "checkout", 10, 50, 100)
	crashing2 := h2.scheduler()
	scheduler.SetCrashHook(crashing2, func(string, string) error { return errors.New("simulated crash") })
	h2.clock.Set(r2.Steps[1].At)
	h2.tick(crashing2)
	if rep := h2.tick(h2.scheduler()); rep.StepsApplied != 1 || rep.Errors != 0 {
		t.Fatalf("pass after a crash: %+v", rep)
	}
	got2, events2 := h2.rollout("r2")
	if got2.Next != 2 || countType(events2, "RolloutStepSkipped") != 1 || countType(events2, "RolloutStepApplied") != 1 {
		t.Fatalf("rollout recorded by the pass: next %d %v", got2.Next, eventTypes(events2))
	}
}

// Two schedulers running passes at the same time (as if both believed they led) never apply a
// step or a scheduled change twice: the command ids settle every race.
func TestTwoSchedulersNeverApplyAStepTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const n = 6
	for i := range n {
		key := fmt.Sprintf("flag-%d", i)
		h.createFlag(key)
		h.createRollout(fmt.Sprintf("r%d", i), key, 10, 20, 30, 40)
		cat := h.catalog()
		f, _ := h.flag(key)
		h.exec(domain.ScheduleStream(project, fmt.Sprintf("s%d", i)), func(projections.Aggregate) ([]domain.Event, error) {
			return domain.ScheduleChange(domain.NewScheduledChange{Project: project, ID: fmt.Sprintf("s%d", i), Flag: key,
				Environment: "staging", ChangeSpec: domain.ChangeSpec{At: h.start.Add(90 * time.Minute), Kind: domain.ChangeToggle, On: true}},
				f, cat, h.start)
		})
	}
	a, b := h.scheduler(), h.scheduler()
	for hour := 1; hour <= 4; hour++ {
		h.clock.Set(h.start.Add(time.Duration(hour) * time.Hour))
		var wg sync.WaitGroup
		reports := make([]scheduler.Report, 4)
		for i, s := range []*scheduler.Scheduler{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rep, err := s.Tick(context.Background())
				if err != nil {
					t.Error(err)
				}
				reports[i] = rep
			}()
		}
		wg.Wait()
		h.project()
		applied := 0
		for _, rep := range reports {
			applied += rep.StepsApplied
			if rep.Errors != 0 {
				t.Errorf("hour %d: a pass failed: %+v", hour, rep)
			}
		}
		if applied > n {
			t.Fatalf("hour %d: %d steps reported applied for %d rollouts", hour, applied, n)
		}
	}
	for i := range n {
		r, events := h.rollout(fmt.Sprintf("r%d", i))
		if r.Status != domain.RolloutStatusCompleted || countType(events, "RolloutStepApplied") != 4 || len(r.Skipped) != 0 {
			t.Fatalf("rollout %d: %s %v", i, r.Status, eventTypes(events))
		}
		_, flagEvents := h.flag(fmt.Sprintf("flag-%d", i))
		writes := map[string]int{}
		for _, e := range flagEvents {
			if strings.HasPrefix(e.Metadata.Actor, "system:") {
				writes[e.Metadata.CommandID]++
			}
		}
		if len(writes) != 5 {
			t.Fatalf("flag %d: system writes %v, want 4 steps and 1 scheduled toggle", i, writes)
		}
		for cmd, k := range writes {
			if k != 1 {
				t.Fatalf("flag %d: command %s written %d times", i, cmd, k)
			}
		}
		if sc := h.schedule(fmt.Sprintf("s%d", i)); sc.Status != domain.ScheduleStatusApplied {
			t.Fatalf("schedule %d: %s", i, sc.Status)
		}
	}
}

// The race made deterministic: scheduler A writes a step to the flag and stalls before recording
// it; B runs a whole pass meanwhile (it finds the step on the flag and records it, or is refused
// the flag append); then A goes on. The step is written once and recorded once.
func TestRacingSchedulersWriteAndRecordAStepOnce(t *testing.T) {
	t.Parallel()
	for _, stage := range []string{"rollout", "schedule"} {
		t.Run(stage, func(t *testing.T) {
			h := newHarness(t)
			h.createFlag("checkout")
			r := h.createRollout("r1", "checkout", 10, 100)
			h.scheduleChange("s1", "checkout", domain.ChangeSpec{At: r.Steps[0].At, Kind: domain.ChangeToggle, On: false})
			h.clock.Set(r.Steps[0].At)
			a, b := h.scheduler(), h.scheduler()
			var bReport scheduler.Report
			scheduler.SetCrashHook(a, func(got, id string) error {
				if got == stage {
					bReport = h.tick(b) // B's whole pass happens between A's two appends
				}
				return nil
			})
			aReport := h.tick(a)
			if aReport.Errors+bReport.Errors != 0 {
				t.Fatalf("errors: A %+v B %+v", aReport, bReport)
			}
			if n := aReport.StepsApplied + bReport.StepsApplied; n != 1 {
				t.Fatalf("step reported applied %d times: A %+v B %+v", n, aReport, bReport)
			}
			if n := aReport.SchedulesApplied + bReport.SchedulesApplied; n != 1 {
				t.Fatalf("change reported applied %d times: A %+v B %+v", n, aReport, bReport)
			}
			_, flagEvents := h.flag("checkout")
			writes := map[string]int{}
			for _, e := range flagEvents {
				writes[e.Metadata.CommandID]++
			}
			if writes["r1:step:0"] != 1 || writes["s1:apply"] != 1 {
				t.Fatalf("flag writes per command: %v", writes)
			}
			if got, events := h.rollout("r1"); got.Next != 1 || countType(events, "RolloutStepApplied") != 1 {
				t.Fatalf("rollout: next %d %v", got.Next, eventTypes(events))
			}
			if sc := h.schedule("s1"); sc.Status != domain.ScheduleStatusApplied || sc.Version != 2 {
				t.Fatalf("schedule: %s v%d", sc.Status, sc.Version)
			}
		})
	}
}

// Of several schedulers running, one leads at a time (the advisory lock); when it stops, another
// takes over.
func TestOneSchedulerLeadsAtATime(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	r := h.createRollout("r1", "checkout", 10, 100)
	h.clock.Set(r.Steps[0].At)

	type running struct {
		s      *scheduler.Scheduler
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func() running {
		s := h.scheduler()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()
		return running{s, cancel, done}
	}
	all := []running{start(), start(), start()}
	defer func() {
		for _, r := range all {
			r.cancel()
			<-r.done
		}
	}()
	leaders := func() (n int, who int) {
		for i, r := range all {
			if r.s.Leading() {
				n, who = n+1, i
			}
		}
		return n, who
	}
	testkit.WaitFor(t, 5*time.Second, "a leader", func() bool { n, _ := leaders(); return n == 1 })
	for range 10 {
		if n, _ := leaders(); n != 1 {
			t.Fatalf("%d leaders", n)
		}
		// Not a wait for something to happen: the check proves the one leader stays the only one
		// for a while (about 100 ms), which no condition to wait for could show.
		time.Sleep(10 * time.Millisecond)
	}
	// The leader applies the due step (the read model is projected by the test).
	testkit.WaitFor(t, 5*time.Second, "the first step", func() bool {
		h.project()
		got, _ := h.rollout("r1")
		return got.Next == 1
	})
	_, who := leaders()
	all[who].cancel()
	<-all[who].done
	testkit.WaitFor(t, 5*time.Second, "a new leader", func() bool {
		n, next := leaders()
		return n == 1 && next != who
	})
	h.clock.Set(r.Steps[1].At)
	testkit.WaitFor(t, 5*time.Second, "the last step", func() bool {
		h.project()
		got, _ := h.rollout("r1")
		return got.Status == domain.RolloutStatusCompleted
	})
}

// A step that finds the default serve changed by hand pauses the rollout with the reason, rather
// than overwriting it or failing silently.
func TestRolloutPausesWhenTheDefaultWasChangedByHand(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	r := h.createRollout("r1", "checkout", 10, 50)
	s := h.scheduler()
	h.clock.Set(r.Steps[0].At)
	h.tick(s)
	cat := h.catalog()
	h.exec(domain.FlagStream(project, "checkout"), func(cur projections.Aggregate) ([]domain.Event, error) {
		f := cur.(*domain.Flag)
		t := f.ConfigFor("production").Targeting
		t.Default = domain.Serve{Variation: "true"}
		return f.UpdateTargeting("production", t, cat)
	})
	h.clock.Set(r.Steps[1].At)
	if rep := h.tick(s); rep.RolloutsHalted != 1 {
		t.Fatalf("pass: %+v", rep)
	}
	got, _ := h.rollout("r1")
	if got.Status != domain.RolloutStatusPaused || !strings.Contains(got.Reason, "changed outside the rollout") {
		t.Fatalf("rollout: %s %q", got.Status, got.Reason)
	}
	if f, _ := h.flag("checkout"); defaultWeight(f) != domain.BucketCount {
		t.Fatal("the hand-made default was overwritten")
	}
}
