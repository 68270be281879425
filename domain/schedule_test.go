package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// Scheduled changes of flag color in production; "now" is t0 and they are due at at(60).

func scheduleIn(spec domain.ChangeSpec) domain.NewScheduledChange {
	return domain.NewScheduledChange{Project: project, ID: "s1", Flag: "color", Environment: "production", ChangeSpec: spec}
}

func toggleSpec(on bool) domain.ChangeSpec {
	return domain.ChangeSpec{At: at(60), Kind: domain.ChangeToggle, On: on}
}

func targetingSpec(tg domain.Targeting) domain.ChangeSpec {
	return domain.ChangeSpec{At: at(60), Kind: domain.ChangeTargeting, Targeting: &tg}
}

func defaultSpec(s domain.Serve) domain.ChangeSpec {
	return domain.ChangeSpec{At: at(60), Kind: domain.ChangeDefault, Default: &s}
}

// newSplit is the default serve the default-change tests schedule: red 30%, blue 70%.
func newSplit() domain.Serve { return domain.Serve{Split: split("red", 30000, "blue", 70000)} }

func scheduleCreated(spec domain.ChangeSpec, before domain.ChangeBefore) *domain.ScheduleCreated {
	return &domain.ScheduleCreated{Project: project, ID: "s1", Flag: "color", Environment: "production",
		ChangeSpec: spec, Before: before}
}

// Creation events as ScheduleChange records them for color's initial production targeting.
func toggleCreated() *domain.ScheduleCreated {
	return scheduleCreated(toggleSpec(true), domain.ChangeBefore{})
}

func targetingCreated() *domain.ScheduleCreated {
	return scheduleCreated(targetingSpec(normalized(fullTargeting(), "rule-1", "rule-2")),
		domain.ChangeBefore{Targeting: initial("green", "red")})
}

func defaultCreated() *domain.ScheduleCreated {
	before := domain.Serve{Variation: "red"}
	return scheduleCreated(defaultSpec(newSplit()), domain.ChangeBefore{Default: &before})
}

func TestScheduleChange(t *testing.T) {
	tests := []struct {
		name        string
		in          domain.NewScheduledChange
		flag        []domain.Event // colorCreated() when nil
		then        []domain.Event
		code, field string
	}{
		{name: "toggle", in: scheduleIn(toggleSpec(true)), then: []domain.Event{toggleCreated()}},
		{name: "targeting: normalized, rule ids assigned, the current targeting captured",
			in: scheduleIn(targetingSpec(fullTargeting())), then: []domain.Event{targetingCreated()}},
		{name: "default: the current default captured", in: scheduleIn(defaultSpec(newSplit())), then: []domain.Event{defaultCreated()}},
		{name: "time in another zone is recorded in UTC",
			in:   scheduleIn(domain.ChangeSpec{At: at(60).In(time.FixedZone("CET", 3600)), Kind: domain.ChangeToggle, On: true}),
			then: []domain.Event{toggleCreated()}},
		{name: "an environment the flag has no targeting for yet",
			flag: []domain.Event{&domain.FlagCreated{Project: project, Key: "color", Name: "Color", Type: domain.FlagString,
				Variations: colorCreated().Variations, Salt: "s", Defaults: colorCreated().Defaults}},
			in: scheduleIn(defaultSpec(newSplit())), then: []domain.Event{defaultCreated()}},

		{name: "invalid project", in: domain.NewScheduledChange{ID: "s1", Flag: "color", Environment: "production", ChangeSpec: toggleSpec(true)},
			code: domain.EInvalid, field: "project"},
		{name: "invalid id", in: domain.NewScheduledChange{Project: project, ID: "s 1", Flag: "color", Environment: "production", ChangeSpec: toggleSpec(true)},
			code: domain.EInvalid, field: "id"},
		{name: "missing flag", in: scheduleIn(toggleSpec(true)), flag: []domain.Event{}, code: domain.EInvalid, field: "flag"},
		{name: "archived flag", in: scheduleIn(toggleSpec(true)), flag: []domain.Event{colorCreated(), &domain.FlagArchived{}}, code: domain.EConflict},
		{name: "loaded another flag", in: domain.NewScheduledChange{Project: project, ID: "s1", Flag: "other", Environment: "production",
			ChangeSpec: toggleSpec(true)}, code: domain.EInternal},
		{name: "unknown environment", in: domain.NewScheduledChange{Project: project, ID: "s1", Flag: "color", Environment: "qa",
			ChangeSpec: toggleSpec(true)}, code: domain.EInvalid, field: "environment"},
		{name: "in the past", in: scheduleIn(domain.ChangeSpec{At: at(-1), Kind: domain.ChangeToggle}), code: domain.EInvalid, field: "at"},
		{name: "now", in: scheduleIn(domain.ChangeSpec{At: t0, Kind: domain.ChangeToggle}), code: domain.EInvalid, field: "at"},
		{name: "no time", in: scheduleIn(domain.ChangeSpec{Kind: domain.ChangeToggle}), code: domain.EInvalid, field: "at"},
		{name: "unknown kind", in: scheduleIn(domain.ChangeSpec{At: at(60), Kind: "archive"}), code: domain.EInvalid, field: "kind"},
		{name: "toggle with a targeting", in: scheduleIn(domain.ChangeSpec{At: at(60), Kind: domain.ChangeToggle, Targeting: &domain.Targeting{}}),
			code: domain.EInvalid, field: "targeting"},
		{name: "toggle with a default", in: scheduleIn(domain.ChangeSpec{At: at(60), Kind: domain.ChangeToggle, Default: &domain.Serve{}}),
			code: domain.EInvalid, field: "default"},
		{name: "targeting with on", in: scheduleIn(domain.ChangeSpec{At: at(60), Kind: domain.ChangeTargeting, On: true, Targeting: &domain.Targeting{}}),
			code: domain.EInvalid, field: "on"},
		{name: "targeting missing", in: scheduleIn(domain.ChangeSpec{At: at(60), Kind: domain.ChangeTargeting}), code: domain.EInvalid, field: "targeting"},
		{name: "invalid targeting", in: scheduleIn(targetingSpec(with(func(tg *domain.Targeting) { tg.Default = domain.Serve{Variation: "pink"} }))),
			code: domain.EInvalid, field: "targeting.default.variation"},
		{name: "default missing", in: scheduleIn(domain.ChangeSpec{At: at(60), Kind: domain.ChangeDefault}), code: domain.EInvalid, field: "default"},
		{name: "invalid default", in: scheduleIn(defaultSpec(domain.Serve{Split: split("red", 1, "blue", 2)})),
			code: domain.EInvalid, field: "default.split.variations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			given := tc.flag
			if given == nil {
				given = []domain.Event{colorCreated()}
			}
			f := foldFlag(t, given...)
			got, err := domain.ScheduleChange(tc.in, f, catalog(), t0)
			then(t, got, err, tc.then, tc.code, tc.field)
		})
	}
}

func foldSchedule(tb testing.TB, events ...domain.Event) *domain.ScheduledChange {
	tb.Helper()
	if len(events) == 0 {
		return nil
	}
	s, err := domain.FoldScheduledChange(record(tb, domain.ScheduleStream(project, "s1"), events...))
	if err != nil {
		tb.Fatalf("fold schedule: %v", err)
	}
	return s
}

func TestScheduleCommands(t *testing.T) {
	applied := []domain.Event{toggleCreated(), &domain.ScheduleApplied{Environment: "production", At: at(60), FlagVersion: 2}}
	cancelled := []domain.Event{toggleCreated(), &domain.ScheduleCancelled{}}
	failed := []domain.Event{toggleCreated(), &domain.ScheduleFailed{Environment: "production", At: at(60), Reason: "flag archived"}}
	blue := domain.Serve{Variation: "blue"}
	edit := func(spec domain.ChangeSpec, flag ...domain.Event) func(s *domain.ScheduledChange) ([]domain.Event, error) {
		if flag == nil {
			flag = []domain.Event{colorCreated()}
		}
		return func(s *domain.ScheduledChange) ([]domain.Event, error) {
			return s.Edit(spec, foldFlag(t, flag...), catalog(), at(30))
		}
	}
	cancel := func(s *domain.ScheduledChange) ([]domain.Event, error) { return s.Cancel() }
	tests := []struct {
		name        string
		given       []domain.Event
		when        func(s *domain.ScheduledChange) ([]domain.Event, error)
		then        []domain.Event
		code, field string
	}{
		{name: "edit the time", given: []domain.Event{toggleCreated()},
			when: edit(domain.ChangeSpec{At: at(90), Kind: domain.ChangeToggle, On: true}),
			then: []domain.Event{&domain.ScheduleEdited{ChangeSpec: domain.ChangeSpec{At: at(90), Kind: domain.ChangeToggle, On: true}}}},
		{name: "edit the payload, capturing the state again", given: []domain.Event{defaultCreated()},
			when: edit(defaultSpec(domain.Serve{Variation: "green"}), colorCreated(),
				&domain.FlagTargetingUpdated{Environment: "production", Targeting: domain.Targeting{OffVariation: "green", Default: blue}}),
			then: []domain.Event{&domain.ScheduleEdited{ChangeSpec: defaultSpec(domain.Serve{Variation: "green"}),
				Before: domain.ChangeBefore{Default: &blue}}}},
		{name: "edit the kind", given: []domain.Event{defaultCreated()}, when: edit(toggleSpec(false)),
			then: []domain.Event{&domain.ScheduleEdited{ChangeSpec: toggleSpec(false)}}},
		{name: "edit to the same change is a no-op", given: []domain.Event{defaultCreated()}, when: edit(defaultSpec(newSplit()))},
		{name: "edit into the past", given: []domain.Event{toggleCreated()}, when: edit(domain.ChangeSpec{At: at(29), Kind: domain.ChangeToggle}),
			code: domain.EInvalid, field: "at"},
		{name: "edit with an invalid payload", given: []domain.Event{toggleCreated()}, when: edit(defaultSpec(domain.Serve{Variation: "pink"})),
			code: domain.EInvalid, field: "default.variation"},
		{name: "edit when the flag was archived", given: []domain.Event{toggleCreated()},
			when: edit(toggleSpec(false), colorCreated(), &domain.FlagArchived{}), code: domain.EConflict},
		{name: "edit an applied change", given: applied, when: edit(toggleSpec(false)), code: domain.EConflict},
		{name: "edit a cancelled change", given: cancelled, when: edit(toggleSpec(false)), code: domain.EConflict},
		{name: "edit a failed change", given: failed, when: edit(toggleSpec(false)), code: domain.EConflict},
		{name: "edit a missing change", when: edit(toggleSpec(false)), code: domain.ENotFound},
		{name: "cancel", given: []domain.Event{toggleCreated()}, when: cancel, then: []domain.Event{&domain.ScheduleCancelled{}}},
		{name: "cancel twice", given: cancelled, when: cancel, code: domain.EConflict},
		{name: "cancel an applied change", given: applied, when: cancel, code: domain.EConflict},
		{name: "cancel a failed change", given: failed, when: cancel, code: domain.EConflict},
		{name: "cancel a missing change", when: cancel, code: domain.ENotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := foldSchedule(t, tc.given...)
			before := jsonOf(t, s)
			got, err := tc.when(s)
			then(t, got, err, tc.then, tc.code, tc.field)
			if jsonOf(t, s) != before {
				t.Fatalf("the command mutated the scheduled change")
			}
		})
	}
}

func TestResolveScheduledChange(t *testing.T) {
	prodTargeting := func(mod func(tg *domain.Targeting)) *domain.FlagTargetingUpdated {
		tg := *initial("green", "red")
		mod(&tg)
		return &domain.FlagTargetingUpdated{Environment: "production", Targeting: tg}
	}
	tests := []struct {
		name     string
		schedule []domain.Event
		flag     []domain.Event // colorCreated() when nil; empty for a missing flag
		cat      func(*domain.Catalog)
		now      time.Time // at(60) when zero
		apply    []domain.Event
		applied  bool   // outcome ScheduleApplied (else ScheduleFailed)
		reason   string // a part of the failure reason
		code     string // an error instead of an outcome
	}{
		{name: "toggle", schedule: []domain.Event{toggleCreated()},
			apply: []domain.Event{&domain.FlagToggled{Environment: "production", On: true}}, applied: true},
		{name: "toggle late", schedule: []domain.Event{toggleCreated()}, now: at(600),
			apply: []domain.Event{&domain.FlagToggled{Environment: "production", On: true}}, applied: true},
		{name: "toggle to the current state counts as applied", schedule: []domain.Event{toggleCreated()},
			flag: []domain.Event{colorCreated(), &domain.FlagToggled{Environment: "production", On: true}}, applied: true},
		{name: "toggle after the targeting changed still applies", schedule: []domain.Event{toggleCreated()},
			flag:  []domain.Event{colorCreated(), prodTargeting(func(tg *domain.Targeting) { tg.Default.Variation = "blue" })},
			apply: []domain.Event{&domain.FlagToggled{Environment: "production", On: true}}, applied: true},

		{name: "targeting", schedule: []domain.Event{targetingCreated()},
			apply:   []domain.Event{&domain.FlagTargetingUpdated{Environment: "production", Targeting: normalized(fullTargeting(), "rule-1", "rule-2")}},
			applied: true},
		{name: "targeting changed since scheduled", schedule: []domain.Event{targetingCreated()},
			flag: []domain.Event{colorCreated(), &domain.FlagToggled{Environment: "production", On: true},
				prodTargeting(func(tg *domain.Targeting) { tg.On, tg.Default.Variation = true, "blue" })},
			reason: `targeting of "color" in "production" changed since the change was scheduled (on, default)`},
		{name: "targeting already as scheduled (a retry) counts as applied", schedule: []domain.Event{targetingCreated()},
			flag:    []domain.Event{colorCreated(), &domain.FlagTargetingUpdated{Environment: "production", Targeting: normalized(fullTargeting(), "rule-1", "rule-2")}},
			applied: true},
		{name: "targeting naming a segment archived since", schedule: []domain.Event{targetingCreated()},
			cat:    func(c *domain.Catalog) { c.Segments["beta"] = domain.SegmentInfo{Archived: true} },
			reason: "(field targeting.rules[0].clauses[0].values[0])"},

		{name: "default", schedule: []domain.Event{defaultCreated()},
			apply:   []domain.Event{prodTargeting(func(tg *domain.Targeting) { tg.Default = newSplit() })},
			applied: true},
		{name: "default keeps the rest of the targeting as it is now", schedule: []domain.Event{defaultCreated()},
			flag: []domain.Event{colorCreated(), prodTargeting(func(tg *domain.Targeting) {
				tg.On, tg.Targets = true, []domain.Target{{Variation: "blue", Values: []string{"alice"}}}
			})},
			apply: []domain.Event{prodTargeting(func(tg *domain.Targeting) {
				tg.On, tg.Targets, tg.Default = true, []domain.Target{{Variation: "blue", Values: []string{"alice"}}}, newSplit()
			})},
			applied: true},
		{name: "default changed since scheduled", schedule: []domain.Event{defaultCreated()},
			flag:   []domain.Event{colorCreated(), prodTargeting(func(tg *domain.Targeting) { tg.Default.Variation = "blue" })},
			reason: `default of "color" in "production" changed since the change was scheduled (was variation "red", now variation "blue")`},
		{name: "default already as scheduled counts as applied", schedule: []domain.Event{defaultCreated()},
			flag:    []domain.Event{colorCreated(), prodTargeting(func(tg *domain.Targeting) { tg.Default = newSplit() })},
			applied: true},
		{name: "default serving a variation removed since", schedule: []domain.Event{defaultCreated()},
			flag: []domain.Event{colorCreated(), &domain.FlagVariationsUpdated{Variations: []domain.Variation{
				{Key: "red", Value: "red"}, {Key: "green", Value: "green"}}}},
			reason: `unknown variation "blue" (field targeting.default.split.variations[1].variation)`},

		{name: "flag archived", schedule: []domain.Event{toggleCreated()}, flag: []domain.Event{colorCreated(), &domain.FlagArchived{}},
			reason: `flag "color" is archived`},
		{name: "flag gone", schedule: []domain.Event{toggleCreated()}, flag: []domain.Event{}, reason: `flag "color" no longer exists`},
		{name: "environment gone", schedule: []domain.Event{defaultCreated()},
			cat:    func(c *domain.Catalog) { c.Environments = []string{"staging"} },
			reason: `environment "production" no longer exists`},

		{name: "not due yet", schedule: []domain.Event{toggleCreated()}, now: at(59), code: domain.EConflict},
		{name: "already applied", schedule: []domain.Event{toggleCreated(), &domain.ScheduleApplied{Environment: "production", At: at(60)}}, code: domain.EConflict},
		{name: "cancelled", schedule: []domain.Event{toggleCreated(), &domain.ScheduleCancelled{}}, code: domain.EConflict},
		{name: "missing", code: domain.ENotFound},
		{name: "another flag loaded", schedule: []domain.Event{toggleCreated()}, flag: []domain.Event{boolCreated("other")}, code: domain.EInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := foldSchedule(t, tc.schedule...)
			given := tc.flag
			if given == nil {
				given = []domain.Event{colorCreated()}
			}
			f := foldFlag(t, given...)
			cat := catalog()
			if tc.cat != nil {
				tc.cat(cat)
			}
			now := tc.now
			if now.IsZero() {
				now = at(60)
			}
			flagBefore, schedBefore := jsonOf(t, f), jsonOf(t, s)
			apply, outcome, err := s.Resolve(f, cat, now)
			if jsonOf(t, f) != flagBefore || jsonOf(t, s) != schedBefore {
				t.Fatalf("Resolve mutated its inputs")
			}
			if tc.code != "" {
				wantError(t, err, tc.code, "", apply, outcome)
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			sameEvents(t, "flag events", apply, tc.apply)
			if len(outcome) != 1 {
				t.Fatalf("outcome %s", eventsJSON(t, outcome))
			}
			switch o := outcome[0].(type) {
			case *domain.ScheduleApplied:
				if !tc.applied {
					t.Fatalf("applied, want failed with %q", tc.reason)
				}
				if !o.At.Equal(now) || o.FlagVersion != f.Version+int64(len(apply)) {
					t.Fatalf("outcome %+v", o)
				}
				// The flag events bring the flag where the change wanted it.
				applyAll(f, apply)
				got := f.ConfigFor("production").Targeting
				switch s.Kind {
				case domain.ChangeToggle:
					if got.On != s.On {
						t.Fatalf("flag is on=%v", got.On)
					}
				case domain.ChangeTargeting:
					if jsonOf(t, got) != jsonOf(t, s.Targeting) {
						t.Fatalf("targeting %s", jsonOf(t, got))
					}
				case domain.ChangeDefault:
					if jsonOf(t, got.Default) != jsonOf(t, s.Default) {
						t.Fatalf("default %s", jsonOf(t, got.Default))
					}
				}
			case *domain.ScheduleFailed:
				if tc.applied || !strings.Contains(o.Reason, tc.reason) || !o.At.Equal(now) {
					t.Fatalf("failed: %+v, want reason containing %q", o, tc.reason)
				}
				if len(apply) != 0 {
					t.Fatalf("failed with flag events")
				}
			default:
				t.Fatalf("outcome %T", o)
			}
			// The outcome ends the change.
			applyAll(s, outcome)
			if s.Status == domain.ScheduleStatusPending || s.Due(now) {
				t.Fatalf("still pending after the outcome")
			}
			if _, _, err := s.Resolve(f, cat, now); domain.ErrorCode(err) != domain.EConflict {
				t.Fatalf("resolved twice: %v", err)
			}
		})
	}
}

func TestFoldScheduledChange(t *testing.T) {
	tg := normalized(fullTargeting(), "rule-1", "rule-2")
	s, err := domain.FoldScheduledChange(record(t, domain.ScheduleStream(project, "s1"),
		defaultCreated(),
		&domain.ScheduleEdited{ChangeSpec: targetingSpec(tg), Before: domain.ChangeBefore{Targeting: initial("green", "red")}},
		&domain.ScheduleFailed{Environment: "production", At: at(61), Reason: "changed"},
	))
	if err != nil {
		t.Fatal(err)
	}
	want := &domain.ScheduledChange{Project: project, ID: "s1", Flag: "color", Environment: "production",
		ChangeSpec: targetingSpec(tg), Before: domain.ChangeBefore{Targeting: initial("green", "red")},
		Status: domain.ScheduleStatusFailed, ResolvedAt: at(61), FailureReason: "changed", Version: 3, CreatedAt: t0, UpdatedAt: at(2)}
	if jsonOf(t, s) != jsonOf(t, want) {
		t.Fatalf("got  %s\nwant %s", jsonOf(t, s), jsonOf(t, want))
	}
	if s.ApplyCommandID() != "s1:apply" {
		t.Errorf("command id %q", s.ApplyCommandID())
	}
	if !foldSchedule(t, toggleCreated()).Due(at(60)) || foldSchedule(t, toggleCreated()).Due(at(59)) {
		t.Errorf("Due is wrong")
	}
	if s, err := domain.FoldScheduledChange(nil); s != nil || err != nil {
		t.Fatalf("empty stream: %v %v", s, err)
	}
	for name, stream := range map[string][]domain.RecordedEvent{
		"no creation event":          record(t, "schedule/acme/s1", &domain.ScheduleCancelled{}),
		"created twice":              record(t, "schedule/acme/s1", toggleCreated(), toggleCreated()),
		"event of another aggregate": record(t, "schedule/acme/s1", toggleCreated(), &domain.FlagArchived{}),
	} {
		if _, err := domain.FoldScheduledChange(stream); err == nil {
			t.Errorf("%s: folded without error", name)
		}
	}
}
