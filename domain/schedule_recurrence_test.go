package domain_test

import (
	"slices"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// t0 is Saturday 1 March 2025, 12:00 UTC; Europe/Paris moves to summer time on Sunday 30 March.
func weekdaysOn() domain.ChangeSpec {
	return domain.ChangeSpec{TimeZone: "Europe/Paris", Kind: domain.ChangeToggle, On: true,
		Recurrence: &domain.Recurrence{Weekdays: []string{"FRI", "mon", "tue", "wed", "thu", "mon"}, Time: "18:00"}}
}

func TestScheduleRecurringChange(t *testing.T) {
	f := foldFlag(t, colorCreated())
	got, err := domain.ScheduleChange(scheduleIn(weekdaysOn()), f, catalog(), t0)
	want := weekdaysOn()
	want.At = utc("2025-03-03T17:00:00Z") // Monday 18:00 CET
	want.Recurrence = &domain.Recurrence{Weekdays: []string{"mon", "tue", "wed", "thu", "fri"}, Time: "18:00"}
	then(t, got, err, []domain.Event{scheduleCreated(want, domain.ChangeBefore{})}, "", "")

	refused := []struct {
		name, field string
		edit        func(*domain.ChangeSpec)
	}{
		{"a targeting change cannot recur", "recurrence", func(s *domain.ChangeSpec) {
			tg := fullTargeting()
			s.Kind, s.Targeting = domain.ChangeTargeting, &tg
		}},
		{"at and a recurrence", "at", func(s *domain.ChangeSpec) { s.At = at(60) }},
		{"unknown zone", "time_zone", func(s *domain.ChangeSpec) { s.TimeZone = "Mars/Olympus_Mons" }},
		{"no day", "recurrence.weekdays", func(s *domain.ChangeSpec) { s.Recurrence.Weekdays = nil }},
		{"unknown day", "recurrence.weekdays[1]", func(s *domain.ChangeSpec) { s.Recurrence.Weekdays = []string{"mon", "funday"} }},
		{"a time that is no clock time", "recurrence.time", func(s *domain.ChangeSpec) { s.Recurrence.Time = "6pm" }},
		{"24:00", "recurrence.time", func(s *domain.ChangeSpec) { s.Recurrence.Time = "24:00" }},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			spec := weekdaysOn()
			tc.edit(&spec)
			got, err := domain.ScheduleChange(scheduleIn(spec), f, catalog(), t0)
			then(t, got, err, nil, domain.EInvalid, tc.field)
		})
	}
}

// Each occurrence is applied once, with its own command ids; the schedule stays pending with its
// next occurrence, which a late scheduler takes after now (missed ones are not made up for); the
// local time holds across the change to summer time.
func TestResolveRecurringChange(t *testing.T) {
	created, err := domain.ScheduleChange(scheduleIn(weekdaysOn()), foldFlag(t, colorCreated()), catalog(), t0)
	if err != nil {
		t.Fatal(err)
	}
	history := created
	flag := []domain.Event{colorCreated()}
	sc := foldSchedule(t, history...)
	runs := func() []string {
		var out []string
		for _, r := range sc.NextRuns(5) {
			out = append(out, r.Format(time.RFC3339))
		}
		return out
	}
	if got := runs(); !slices.Equal(got, []string{"2025-03-03T18:00:00+01:00", "2025-03-04T18:00:00+01:00",
		"2025-03-05T18:00:00+01:00", "2025-03-06T18:00:00+01:00", "2025-03-07T18:00:00+01:00"}) {
		t.Fatalf("next runs: %v", got)
	}
	occur := func(now string, wantOccurrence, wantNext string, wantToggled bool) {
		t.Helper()
		if _, _, err := sc.Resolve(foldFlag(t, flag...), catalog(), sc.At.Add(-time.Second)); domain.ErrorCode(err) != domain.EConflict {
			t.Fatalf("resolved before it was due: %v", err)
		}
		if id := sc.ApplyCommandID(); id != "s1:apply:"+wantOccurrence {
			t.Fatalf("apply command id %q", id)
		}
		apply, outcome, err := sc.Resolve(foldFlag(t, flag...), catalog(), utc(now))
		if err != nil || len(outcome) != 1 || (len(apply) > 0) != wantToggled {
			t.Fatalf("resolve at %s: %v, apply %v, outcome %v", now, err, eventsJSON(t, apply), eventsJSON(t, outcome))
		}
		o, ok := outcome[0].(*domain.ScheduleOccurred)
		if !ok || !o.Occurrence.Equal(utc(wantOccurrence)) || !o.Next.Equal(utc(wantNext)) || o.Environment != "production" {
			t.Fatalf("outcome at %s: %s", now, eventsJSON(t, outcome))
		}
		flag = append(flag, apply...)
		history = append(history, outcome...)
		sc = foldSchedule(t, history...)
		if sc.Status != domain.ScheduleStatusPending || !sc.At.Equal(utc(wantNext)) {
			t.Fatalf("after %s: %+v", now, sc)
		}
	}
	occur("2025-03-03T17:00:00Z", "2025-03-03T17:00:00Z", "2025-03-04T17:00:00Z", true)
	occur("2025-03-04T17:00:02Z", "2025-03-04T17:00:00Z", "2025-03-05T17:00:00Z", false) // already on: nothing to write
	// No scheduler ran from Wednesday to the next Monday morning: one run, then Monday evening.
	occur("2025-03-10T08:00:00Z", "2025-03-05T17:00:00Z", "2025-03-10T17:00:00Z", false)
	if sc.Runs != 3 || sc.OutcomeCommandID() != "s1:outcome:2025-03-10T17:00:00Z" {
		t.Fatalf("runs %d, outcome command id %q", sc.Runs, sc.OutcomeCommandID())
	}
	// Friday 28 March 18:00 CET, then Monday 31 March 18:00 CEST.
	sc.At = utc("2025-03-28T17:00:00Z")
	occur("2025-03-28T17:00:00Z", "2025-03-28T17:00:00Z", "2025-03-31T16:00:00Z", false)

	// Cancelling ends it; so does a failure (the flag is gone).
	if evs, err := sc.Cancel(); err != nil || len(evs) != 1 {
		t.Fatalf("cancel: %v %v", evs, err)
	}
	_, outcome, err := sc.Resolve(nil, catalog(), utc("2025-03-31T16:00:00Z"))
	if _, failed := outcome[0].(*domain.ScheduleFailed); err != nil || !failed {
		t.Fatalf("flag gone: %v %v", outcome, err)
	}
}
