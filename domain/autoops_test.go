package domain_test

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// errorsRule watches the boolean flag other in production: it turns the flag off when the error
// rate of "true" exceeds that of "false" by more than 0.1, with at least 1000 users per arm and a
// probability above 0.95 that "true" is worse.
func errorsRule() domain.AutoOpsDefinition {
	return domain.AutoOpsDefinition{Name: "Errors up",
		Metric:     domain.AutoOpsMetric{Goal: "errors", Measure: domain.MeasureRate, Variation: "true", Control: "false"},
		Comparison: domain.AutoOpsGreaterThan, Threshold: 0.1, MinSample: 1000, MinProbability: 0.95,
		Action: domain.AutoOpsTurnOff}
}

func ruleCreated(enabled bool) *domain.AutoOpsRuleCreated {
	return &domain.AutoOpsRuleCreated{Project: project, ID: "ops1", Flag: "other", Environment: "production",
		AutoOpsDefinition: errorsRule(), Enabled: enabled}
}

func foldRule(tb testing.TB, events ...domain.Event) *domain.AutoOpsRule {
	tb.Helper()
	if len(events) == 0 {
		return nil
	}
	r, err := domain.FoldAutoOpsRule(record(tb, domain.AutoOpsStream(project, "ops1"), events...))
	if err != nil {
		tb.Fatalf("fold rule: %v", err)
	}
	return r
}

func TestCreateAutoOpsRule(t *testing.T) {
	in := func(mod func(*domain.NewAutoOpsRule)) domain.NewAutoOpsRule {
		r := domain.NewAutoOpsRule{Project: project, ID: "ops1", Flag: "other", Environment: "production",
			AutoOpsDefinition: errorsRule(), Enabled: true}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	tests := []struct {
		name        string
		in          domain.NewAutoOpsRule
		then        []domain.Event
		code, field string
	}{
		{name: "enabled", in: in(nil), then: []domain.Event{ruleCreated(true)}},
		{name: "disabled, measure defaults to rate", in: in(func(r *domain.NewAutoOpsRule) { r.Enabled, r.Metric.Measure = false, "" }),
			then: []domain.Event{ruleCreated(false)}},
		{name: "absolute rate below a threshold, pausing a rollout", in: in(func(r *domain.NewAutoOpsRule) {
			r.Metric = domain.AutoOpsMetric{Goal: "signup", Variation: "true"}
			r.Comparison, r.Threshold, r.Action = domain.AutoOpsLessThan, 0.02, domain.AutoOpsPauseRollout
		}),
			then: []domain.Event{func() domain.Event {
				c := ruleCreated(true)
				c.Metric = domain.AutoOpsMetric{Goal: "signup", Measure: "rate", Variation: "true"}
				c.Comparison, c.Threshold, c.Action = domain.AutoOpsLessThan, 0.02, domain.AutoOpsPauseRollout
				return c
			}()}},
		{name: "rolling back a rollout", in: in(func(r *domain.NewAutoOpsRule) { r.Action = domain.AutoOpsRollbackRollout }),
			then: []domain.Event{func() domain.Event {
				c := ruleCreated(true)
				c.Action = domain.AutoOpsRollbackRollout
				return c
			}()}},

		{name: "invalid project", in: in(func(r *domain.NewAutoOpsRule) { r.Project = "" }), code: domain.EInvalid, field: "project"},
		{name: "invalid id", in: in(func(r *domain.NewAutoOpsRule) { r.ID = "" }), code: domain.EInvalid, field: "id"},
		{name: "unknown flag", in: in(func(r *domain.NewAutoOpsRule) { r.Flag = "ghost" }), code: domain.EInvalid, field: "flag"},
		{name: "archived flag", in: in(func(r *domain.NewAutoOpsRule) { r.Flag = "retired" }), code: domain.EInvalid, field: "flag"},
		{name: "unknown environment", in: in(func(r *domain.NewAutoOpsRule) { r.Environment = "qa" }), code: domain.EInvalid, field: "environment"},
		{name: "missing name", in: in(func(r *domain.NewAutoOpsRule) { r.Name = "" }), code: domain.EInvalid, field: "name"},
		{name: "missing goal", in: in(func(r *domain.NewAutoOpsRule) { r.Metric.Goal = "" }), code: domain.EInvalid, field: "metric.goal"},
		{name: "unknown goal", in: in(func(r *domain.NewAutoOpsRule) { r.Metric.Goal = "ghost" }), code: domain.EInvalid, field: "metric.goal"},
		{name: "archived goal", in: in(func(r *domain.NewAutoOpsRule) { r.Metric.Goal = "retired-goal" }), code: domain.EInvalid, field: "metric.goal"},
		{name: "unknown measure", in: in(func(r *domain.NewAutoOpsRule) { r.Metric.Measure = "p99" }), code: domain.EInvalid, field: "metric.measure"},
		{name: "unknown variation", in: in(func(r *domain.NewAutoOpsRule) { r.Metric.Variation = "red" }), code: domain.EInvalid, field: "metric.variation"},
		{name: "unknown control", in: in(func(r *domain.NewAutoOpsRule) { r.Metric.Control = "red" }), code: domain.EInvalid, field: "metric.control"},
		{name: "control is the variation", in: in(func(r *domain.NewAutoOpsRule) { r.Metric.Control = "true" }), code: domain.EInvalid, field: "metric.control"},
		{name: "unknown comparison", in: in(func(r *domain.NewAutoOpsRule) { r.Comparison = ">" }), code: domain.EInvalid, field: "comparison"},
		{name: "NaN threshold", in: in(func(r *domain.NewAutoOpsRule) { r.Threshold = math.NaN() }), code: domain.EInvalid, field: "threshold"},
		{name: "infinite threshold", in: in(func(r *domain.NewAutoOpsRule) { r.Threshold = math.Inf(-1) }), code: domain.EInvalid, field: "threshold"},
		{name: "no minimum sample", in: in(func(r *domain.NewAutoOpsRule) { r.MinSample = 0 }), code: domain.EInvalid, field: "min_sample"},
		{name: "minimum sample too large", in: in(func(r *domain.NewAutoOpsRule) { r.MinSample = domain.MaxAutoOpsMinSample + 1 }),
			code: domain.EInvalid, field: "min_sample"},
		{name: "no guard", in: in(func(r *domain.NewAutoOpsRule) { r.MinProbability = 0 }), code: domain.EInvalid, field: "min_probability"},
		{name: "guard of 1", in: in(func(r *domain.NewAutoOpsRule) { r.MinProbability = 1 }), code: domain.EInvalid, field: "min_probability"},
		{name: "NaN guard", in: in(func(r *domain.NewAutoOpsRule) { r.MinProbability = math.NaN() }), code: domain.EInvalid, field: "min_probability"},
		{name: "unknown action", in: in(func(r *domain.NewAutoOpsRule) { r.Action = "page" }), code: domain.EInvalid, field: "action"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.CreateAutoOpsRule(tc.in, expCatalog())
			then(t, got, err, tc.then, tc.code, tc.field)
		})
	}
	if _, err := domain.ValidateAutoOpsDefinition(errorsRule(), "ghost", expCatalog()); domain.ErrorCode(err) != domain.EInvalid {
		t.Errorf("validate for an unknown flag: %v", err)
	}
	if d, err := domain.ValidateAutoOpsDefinition(errorsRule(), "other", expCatalog()); err != nil || !reflect.DeepEqual(d, errorsRule()) {
		t.Errorf("validate: %v %+v", err, d)
	}
}

// badMetrics: "true" errors 0.375 of its users, "false" 0.125: a difference of 0.25 with a
// probability of 0.99, on 2000 users per arm.
func badMetrics() domain.AutoOpsMetrics {
	return domain.AutoOpsMetrics{Treatment: domain.AutoOpsArm{Exposed: 2000, Rate: 0.375},
		Control: domain.AutoOpsArm{Exposed: 2000, Rate: 0.125}, Probability: 0.99}
}

func triggered(ev domain.AutoOpsEvidence) *domain.AutoOpsRuleTriggered {
	return &domain.AutoOpsRuleTriggered{Environment: "production", Evidence: ev, Action: domain.AutoOpsTurnOff}
}

func TestAutoOpsDecide(t *testing.T) {
	fired := domain.AutoOpsEvidence{At: at(100), Value: 0.25, Treatment: badMetrics().Treatment, Control: &domain.AutoOpsArm{Exposed: 2000, Rate: 0.125},
		Probability: 0.99, Comparison: domain.AutoOpsGreaterThan, Threshold: 0.1, MinProbability: 0.95, MinSample: 1000, Fired: true}
	tests := []struct {
		name     string
		given    []domain.Event // ruleCreated(true) when nil
		def      func(d *domain.AutoOpsDefinition)
		metrics  func(m *domain.AutoOpsMetrics)
		fire     bool
		decision string // a part of the evidence's decision
	}{
		{name: "bad metrics fire", fire: true, decision: "fired: metric 0.25 is above threshold 0.1 with probability 0.99 above 0.95"},
		{name: "good metrics stay quiet", metrics: func(m *domain.AutoOpsMetrics) { m.Treatment.Rate = 0.13 }, decision: "is not above threshold"},
		{name: "better treatment stays quiet", metrics: func(m *domain.AutoOpsMetrics) { m.Treatment.Rate, m.Probability = 0.05, 0.01 },
			decision: "is not above threshold"},
		{name: "exactly at the threshold stays quiet", metrics: func(m *domain.AutoOpsMetrics) { m.Treatment.Rate = 0.375; m.Control.Rate = 0.275 },
			def: func(d *domain.AutoOpsDefinition) { d.Threshold = 0.1 }, decision: "is not above"},
		{name: "threshold crossed but not surely enough", metrics: func(m *domain.AutoOpsMetrics) { m.Probability = 0.9 },
			decision: "the probability that it is worse, 0.9, is not above 0.95"},
		{name: "probability exactly at the guard stays quiet", metrics: func(m *domain.AutoOpsMetrics) { m.Probability = 0.95 },
			decision: "is not above 0.95"},
		{name: "too few users on the variation", metrics: func(m *domain.AutoOpsMetrics) { m.Treatment.Exposed = 999 },
			decision: "sample too small (999 exposed to the variation, 2000 to the control, need 1000"},
		{name: "too few users on the control", metrics: func(m *domain.AutoOpsMetrics) { m.Control.Exposed = 10 }, decision: "sample too small"},
		{name: "nobody exposed yet (NaN rates)", metrics: func(m *domain.AutoOpsMetrics) {
			*m = domain.AutoOpsMetrics{Treatment: domain.AutoOpsArm{Rate: math.NaN()}, Control: domain.AutoOpsArm{Rate: math.NaN()}, Probability: math.NaN()}
		}, decision: "sample too small"},
		{name: "NaN rate with enough users", metrics: func(m *domain.AutoOpsMetrics) { m.Control.Rate = math.NaN() }, decision: "not finite"},
		{name: "infinite rate", metrics: func(m *domain.AutoOpsMetrics) { m.Treatment.Rate = math.Inf(1) }, decision: "not finite"},
		{name: "probability over 1", metrics: func(m *domain.AutoOpsMetrics) { m.Probability = 1.5 }, decision: "not in [0, 1]"},
		{name: "disabled", given: []domain.Event{ruleCreated(false)}, decision: "disabled"},
		{name: "disabled after creation", given: []domain.Event{ruleCreated(true), &domain.AutoOpsRuleDisabled{}}, decision: "disabled"},
		{name: "deleted", given: []domain.Event{ruleCreated(true), &domain.AutoOpsRuleDeleted{}}, decision: "deleted"},
		{name: "already triggered: no repeat", given: []domain.Event{ruleCreated(true), triggered(fired)}, decision: "already triggered"},
		{name: "re-armed by enable", given: []domain.Event{ruleCreated(true), triggered(fired), &domain.AutoOpsRuleEnabled{}}, fire: true},
		{name: "re-armed by update", given: []domain.Event{ruleCreated(true), triggered(fired), &domain.AutoOpsRuleUpdated{AutoOpsDefinition: errorsRule()}},
			fire: true},
		{name: "disabled and enabled again while triggered stays triggered until enabled",
			given: []domain.Event{ruleCreated(true), triggered(fired), &domain.AutoOpsRuleDisabled{}}, decision: "disabled"},
		{name: "absolute metric ignores the control arm", def: func(d *domain.AutoOpsDefinition) { d.Metric.Control = "" },
			metrics: func(m *domain.AutoOpsMetrics) { m.Control = domain.AutoOpsArm{Rate: math.NaN()} }, fire: true,
			decision: "metric 0.375 is above threshold 0.1"},
		{name: "less-than rule fires on a drop", def: func(d *domain.AutoOpsDefinition) {
			d.Metric, d.Comparison, d.Threshold = domain.AutoOpsMetric{Goal: "signup", Variation: "true"}, domain.AutoOpsLessThan, 0.5
		}, fire: true, decision: "metric 0.375 is below threshold 0.5"},
		{name: "less-than rule quiet above the threshold", def: func(d *domain.AutoOpsDefinition) {
			d.Metric, d.Comparison, d.Threshold = domain.AutoOpsMetric{Goal: "signup", Variation: "true"}, domain.AutoOpsLessThan, 0.2
		}, decision: "is not below threshold 0.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			given := tc.given
			if given == nil {
				c := ruleCreated(true)
				if tc.def != nil {
					tc.def(&c.AutoOpsDefinition)
				}
				given = []domain.Event{c}
			}
			r := foldRule(t, given...)
			m := badMetrics()
			if tc.metrics != nil {
				tc.metrics(&m)
			}
			before := jsonOf(t, r)
			fire, ev := r.Decide(m, at(100))
			if jsonOf(t, r) != before {
				t.Fatalf("Decide mutated the rule")
			}
			if fire != tc.fire || ev.Fired != fire || !strings.Contains(ev.Decision, tc.decision) {
				t.Fatalf("fire %v (%s), want %v (%q)", fire, ev.Decision, tc.fire, tc.decision)
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("evidence does not encode: %v", err)
			}
			if !ev.At.Equal(at(100)) || ev.Threshold != r.Threshold || ev.MinSample != r.MinSample {
				t.Fatalf("evidence %+v", ev)
			}
			if tc.name == "bad metrics fire" {
				fired.Decision = ev.Decision
				if !reflect.DeepEqual(ev, fired) {
					t.Fatalf("evidence\n got %+v\nwant %+v", ev, fired)
				}
			}
			// Firing is possible exactly when Decide fires.
			evs, err := r.Fire(ev)
			if fire {
				then(t, evs, err, []domain.Event{triggered(ev)}, "", "")
				applyAll(r, evs)
				if again, _ := r.Decide(m, at(101)); again || !r.Triggered || !r.TriggeredAt.Equal(at(100)) {
					t.Fatalf("fired twice")
				}
			} else if err == nil || evs != nil {
				t.Fatalf("Fire accepted evidence Decide stayed quiet on: %s", ev.Decision)
			}
		})
	}
	var none *domain.AutoOpsRule
	if fire, ev := none.Decide(domain.AutoOpsMetrics{Probability: math.NaN()}, t0); fire || ev.Decision == "" {
		t.Fatalf("a nil rule fired")
	}
}

func TestAutoOpsCommands(t *testing.T) {
	fired := domain.AutoOpsEvidence{At: at(100), Value: 0.25, Treatment: domain.AutoOpsArm{Exposed: 2000, Rate: 0.375},
		Control: &domain.AutoOpsArm{Exposed: 2000, Rate: 0.125}, Probability: 0.99, Comparison: "gt", Threshold: 0.1,
		MinProbability: 0.95, MinSample: 1000, Fired: true,
		Decision: "fired: metric 0.25 is above threshold 0.1 with probability 0.99 above 0.95 (2000 exposed to the variation, 2000 to the control)"}
	changed := errorsRule()
	changed.Threshold = 0.2
	type when func(r *domain.AutoOpsRule, cat *domain.ExperimentCatalog) ([]domain.Event, error)
	update := func(d domain.AutoOpsDefinition) when {
		return func(r *domain.AutoOpsRule, cat *domain.ExperimentCatalog) ([]domain.Event, error) {
			return r.Update(d, cat)
		}
	}
	enable := func(r *domain.AutoOpsRule, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return r.Enable() }
	disable := func(r *domain.AutoOpsRule, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return r.Disable() }
	del := func(r *domain.AutoOpsRule, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return r.Delete() }
	fire := func(ev domain.AutoOpsEvidence) when {
		return func(r *domain.AutoOpsRule, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return r.Fire(ev) }
	}
	armed := []domain.Event{ruleCreated(true)}
	disabled := []domain.Event{ruleCreated(false)}
	wasTriggered := []domain.Event{ruleCreated(true), triggered(fired)}
	deleted := []domain.Event{ruleCreated(true), &domain.AutoOpsRuleDeleted{}}
	tests := []struct {
		name        string
		given       []domain.Event
		cat         func(*domain.ExperimentCatalog)
		when        when
		then        []domain.Event
		code, field string
	}{
		{name: "update", given: armed, when: update(changed), then: []domain.Event{&domain.AutoOpsRuleUpdated{AutoOpsDefinition: changed}}},
		{name: "update to the same definition is a no-op", given: armed, when: update(errorsRule())},
		{name: "update a triggered rule to the same definition re-arms it", given: wasTriggered, when: update(errorsRule()),
			then: []domain.Event{&domain.AutoOpsRuleUpdated{AutoOpsDefinition: errorsRule()}}},
		{name: "update with an invalid definition", given: armed, when: update(domain.AutoOpsDefinition{Name: "x"}), code: domain.EInvalid, field: "metric.goal"},
		{name: "update when the flag is gone", given: armed, cat: func(c *domain.ExperimentCatalog) { delete(c.Catalog.Flags, "other") },
			when: update(changed), code: domain.EConflict},
		{name: "update a deleted rule", given: deleted, when: update(changed), code: domain.ENotFound},
		{name: "update a missing rule", when: update(changed), code: domain.ENotFound},
		{name: "enable", given: disabled, when: enable, then: []domain.Event{&domain.AutoOpsRuleEnabled{}}},
		{name: "enable an enabled rule is a no-op", given: armed, when: enable},
		{name: "enable a triggered rule re-arms it", given: wasTriggered, when: enable, then: []domain.Event{&domain.AutoOpsRuleEnabled{}}},
		{name: "enable a deleted rule", given: deleted, when: enable, code: domain.ENotFound},
		{name: "disable", given: armed, when: disable, then: []domain.Event{&domain.AutoOpsRuleDisabled{}}},
		{name: "disable a disabled rule is a no-op", given: disabled, when: disable},
		{name: "disable a missing rule", when: disable, code: domain.ENotFound},
		{name: "disable a triggered rule", given: wasTriggered, when: disable, then: []domain.Event{&domain.AutoOpsRuleDisabled{}}},
		{name: "delete", given: armed, when: del, then: []domain.Event{&domain.AutoOpsRuleDeleted{}}},
		{name: "delete twice", given: deleted, when: del, code: domain.ENotFound},
		{name: "fire", given: armed, when: fire(fired), then: []domain.Event{triggered(fired)}},
		{name: "fire on evidence the rule does not fire on", given: armed, code: domain.EInvalid, field: "evidence",
			when: fire(func() domain.AutoOpsEvidence { e := fired; e.Probability = 0.5; return e }())},
		{name: "fire on evidence of a rule changed since", given: []domain.Event{ruleCreated(true), &domain.AutoOpsRuleUpdated{AutoOpsDefinition: changed}},
			when: fire(fired), code: domain.EInvalid, field: "evidence"},
		{name: "fire on quiet evidence", given: armed, code: domain.EInvalid, field: "evidence",
			when: fire(func() domain.AutoOpsEvidence { e := fired; e.Fired = false; return e }())},
		{name: "fire on doctored evidence", given: armed, code: domain.EInvalid, field: "evidence",
			when: fire(func() domain.AutoOpsEvidence { e := fired; e.Value = 0.9; return e }())},
		{name: "fire on evidence in another time zone", given: armed,
			when: fire(func() domain.AutoOpsEvidence { e := fired; e.At = e.At.In(time.FixedZone("CET", 3600)); return e }()),
			then: []domain.Event{triggered(fired)}},
		{name: "fire a disabled rule", given: disabled, when: fire(fired), code: domain.EConflict},
		{name: "fire a triggered rule", given: wasTriggered, when: fire(fired), code: domain.EConflict},
		{name: "fire a deleted rule", given: deleted, when: fire(fired), code: domain.ENotFound},
		{name: "fire on NaN evidence", given: armed, when: fire(domain.AutoOpsEvidence{Value: math.NaN(), Fired: true}), code: domain.EInvalid, field: "evidence"},
		{name: "fire on NaN control evidence", given: armed, when: fire(domain.AutoOpsEvidence{Control: &domain.AutoOpsArm{Rate: math.Inf(1)}}),
			code: domain.EInvalid, field: "evidence"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := expCatalog()
			if tc.cat != nil {
				tc.cat(cat)
			}
			r := foldRule(t, tc.given...)
			before := jsonOf(t, r)
			got, err := tc.when(r, cat)
			then(t, got, err, tc.then, tc.code, tc.field)
			if jsonOf(t, r) != before {
				t.Fatalf("the command mutated the rule")
			}
		})
	}
}

func TestFoldAutoOpsRule(t *testing.T) {
	ev := domain.AutoOpsEvidence{At: at(3), Value: 0.25, Control: &domain.AutoOpsArm{Exposed: 5, Rate: 0.5}, Fired: true, Decision: "fired"}
	r, err := domain.FoldAutoOpsRule(record(t, domain.AutoOpsStream(project, "ops1"),
		ruleCreated(false),
		&domain.AutoOpsRuleEnabled{},
		&domain.AutoOpsRuleUpdated{AutoOpsDefinition: func() domain.AutoOpsDefinition { d := errorsRule(); d.Name = "Errors"; return d }()},
		triggered(ev),
		&domain.AutoOpsRuleDisabled{},
	))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "Errors" || r.Enabled || !r.Triggered || r.Armed() || !r.TriggeredAt.Equal(at(3)) || r.Evidence == nil ||
		r.Evidence.Control.Rate != 0.5 || r.Version != 5 || !r.CreatedAt.Equal(t0) || !r.UpdatedAt.Equal(at(4)) {
		t.Fatalf("folded %+v", r)
	}
	ev.Control.Rate = 1
	if r.Evidence.Control.Rate != 0.5 {
		t.Fatalf("state aliases the evidence")
	}
	if r, err := domain.FoldAutoOpsRule(nil); r != nil || err != nil {
		t.Fatalf("empty stream: %v %v", r, err)
	}
	for name, stream := range map[string][]domain.RecordedEvent{
		"no creation event":          record(t, "autoops/acme/ops1", &domain.AutoOpsRuleEnabled{}),
		"created twice":              record(t, "autoops/acme/ops1", ruleCreated(true), ruleCreated(true)),
		"event of another aggregate": record(t, "autoops/acme/ops1", ruleCreated(true), &domain.TriggerEnabled{}),
	} {
		if _, err := domain.FoldAutoOpsRule(stream); err == nil {
			t.Errorf("%s: folded without error", name)
		}
	}
}
