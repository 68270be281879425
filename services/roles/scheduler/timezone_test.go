package scheduler_test

import (
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Paris whatever the host has

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/roles/scheduler"
)

// A change at 09:00 Europe/Paris on the Monday after summer time ends (Sunday 27 October 2030)
// applies at 08:00 UTC: not at 07:00, which 09:00 was the day before.
func TestScheduleInANamedTimeZoneAppliesAtTheRightInstantAfterADSTChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	at, err := domain.ParseScheduleTime("2030-10-28T09:00", "Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	h.scheduleChange("monday-nine", "checkout", domain.ChangeSpec{At: at, TimeZone: "Europe/Paris", Kind: domain.ChangeToggle})
	if sc := h.schedule("monday-nine"); !sc.At.Equal(time.Date(2030, 10, 28, 8, 0, 0, 0, time.UTC)) || sc.TimeZone != "Europe/Paris" {
		t.Fatalf("stored: at %s in %q", sc.At, sc.TimeZone)
	}
	s := h.scheduler()
	for _, early := range []time.Time{time.Date(2030, 10, 28, 7, 0, 0, 0, time.UTC), time.Date(2030, 10, 28, 7, 59, 59, 0, time.UTC)} {
		h.clock.Set(early)
		if rep := h.tick(s); rep.SchedulesApplied != 0 {
			t.Fatalf("applied at %s: %+v", early, rep)
		}
	}
	h.clock.Set(time.Date(2030, 10, 28, 8, 0, 0, 0, time.UTC))
	if rep := h.tick(s); rep.SchedulesApplied != 1 {
		t.Fatalf("not applied at 08:00 UTC: %+v", rep)
	}
	if f, _ := h.flag("checkout"); f.ConfigFor("production").Targeting.On {
		t.Fatal("the flag is still on")
	}
	if sc := h.schedule("monday-nine"); sc.Status != domain.ScheduleStatusApplied || len(sc.NextRuns(5)) != 0 {
		t.Fatalf("after: %+v", sc)
	}
}

// A recurring toggle (weekdays at 18:00 Europe/Paris) applies each occurrence exactly once with
// two schedulers racing, and stays pending with its next occurrence.
func TestRecurringScheduleAppliesEachOccurrenceOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	h.scheduleChange("evenings", "checkout", domain.ChangeSpec{TimeZone: "Europe/Paris", Kind: domain.ChangeToggle,
		Recurrence: &domain.Recurrence{Weekdays: []string{"mon", "tue", "wed", "thu", "fri"}, Time: "18:00"}})
	sc := h.schedule("evenings")
	runs := sc.NextRuns(5)
	if len(runs) != 5 || !runs[0].Equal(sc.At) {
		t.Fatalf("next runs %v, at %s", runs, sc.At)
	}
	racers := []*scheduler.Scheduler{h.scheduler(), h.scheduler()}
	for i, occurrence := range runs[:2] {
		h.clock.Set(occurrence.Add(-time.Second))
		if rep := h.tick(racers[0]); rep.SchedulesApplied != 0 {
			t.Fatalf("occurrence %d applied early: %+v", i, rep)
		}
		h.clock.Set(occurrence.Add(time.Second))
		var wg sync.WaitGroup
		reps := make([]scheduler.Report, len(racers))
		for j, s := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rep, err := s.Tick(h.ctx)
				if err != nil {
					t.Error(err)
				}
				reps[j] = rep
			}()
		}
		wg.Wait()
		h.project()
		if n := reps[0].SchedulesApplied + reps[1].SchedulesApplied; n != 1 {
			t.Fatalf("occurrence %d applied %d times: %+v", i, n, reps)
		}
		sc = h.schedule("evenings")
		if sc.Status != domain.ScheduleStatusPending || sc.Runs != i+1 || !sc.At.Equal(runs[i+1]) {
			t.Fatalf("after occurrence %d: status %s, runs %d, next %s (want %s)", i, sc.Status, sc.Runs, sc.At, runs[i+1])
		}
		// Turned on again by hand, so the next occurrence has something to do.
		h.editTargeting("checkout", func(t *domain.Targeting) { t.On = true })
	}
	_, events := h.flag("checkout")
	applied := 0
	for _, e := range events {
		if strings.HasPrefix(e.Metadata.CommandID, "evenings:apply:") {
			applied++
			if e.Metadata.Actor != "system:schedule/evenings" {
				t.Fatalf("attributed to %q", e.Metadata.Actor)
			}
		}
	}
	if applied != 2 {
		t.Fatalf("%d flag changes by the recurring schedule, want 2", applied)
	}
}
