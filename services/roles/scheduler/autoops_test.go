package scheduler_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/roles/scheduler"
)

// fakeMetrics serves injected counts per variation and records what it was asked.
type fakeMetrics struct {
	mu      sync.Mutex
	arms    map[string]scheduler.ArmCounts
	queries []scheduler.MetricsQuery
}

func (f *fakeMetrics) set(arms map[string]scheduler.ArmCounts) {
	f.mu.Lock()
	f.arms = arms
	f.mu.Unlock()
}

func (f *fakeMetrics) Arms(_ context.Context, q scheduler.MetricsQuery) (map[string]scheduler.ArmCounts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	return f.arms, nil
}

func (h *harness) createGoal(key string, kind domain.GoalKind) {
	h.t.Helper()
	h.exec(domain.GoalStream(project, key), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.CreateGoal(domain.NewGoal{Project: project, Key: key, Name: key, Kind: kind, Direction: domain.GoalDecrease})
	})
}

func (h *harness) createRule(id, flag string, action domain.AutoOpsAction) *domain.AutoOpsRule {
	h.t.Helper()
	ecat := domain.NewExperimentCatalog(h.catalog())
	events, err := h.store.Load(h.ctx, domain.GoalStream(project, "errors"))
	if err != nil {
		h.t.Fatal(err)
	}
	g, err := domain.FoldGoal(events)
	if err != nil {
		h.t.Fatal(err)
	}
	ecat.AddGoal(g)
	return h.exec(domain.AutoOpsStream(project, id), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.CreateAutoOpsRule(domain.NewAutoOpsRule{Project: project, ID: id, Flag: flag, Environment: "production",
			Enabled: true, AutoOpsDefinition: domain.AutoOpsDefinition{Name: "error rate guard",
				Metric:     domain.AutoOpsMetric{Goal: "errors", Variation: "true", Control: "false"},
				Comparison: domain.AutoOpsGreaterThan, Threshold: 0.01, MinSample: 500, MinProbability: 0.95, Action: action}}, ecat)
	}).(*domain.AutoOpsRule)
}

func (h *harness) rule(id string) *domain.AutoOpsRule {
	h.t.Helper()
	events, err := h.store.Load(h.ctx, domain.AutoOpsStream(project, id))
	if err != nil {
		h.t.Fatal(err)
	}
	r, err := domain.FoldAutoOpsRule(events)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

var (
	// 2% of control users and 6% of treatment users hit an error: clearly worse.
	badMetrics = map[string]scheduler.ArmCounts{
		"true":  {Exposed: 2000, Converted: 120, Events: 150},
		"false": {Exposed: 2000, Converted: 40, Events: 45},
	}
	// The treatment is as good as the control.
	goodMetrics = map[string]scheduler.ArmCounts{
		"true":  {Exposed: 2000, Converted: 39, Events: 41},
		"false": {Exposed: 2000, Converted: 40, Events: 45},
	}
	// As bad, but too few users.
	smallMetrics = map[string]scheduler.ArmCounts{
		"true":  {Exposed: 100, Converted: 30, Events: 31},
		"false": {Exposed: 100, Converted: 2, Events: 2},
	}
	// Worse by more than the threshold, but too noisy to be sure.
	noisyMetrics = map[string]scheduler.ArmCounts{
		"true":  {Exposed: 500, Converted: 16, Events: 16},
		"false": {Exposed: 500, Converted: 10, Events: 10},
	}
)

// An auto-ops rule stays quiet on good metrics, on too-small samples and on differences the
// guard is not sure of; on bad metrics it turns the flag off once, as the system actor, and
// records the evidence.
func TestAutoOpsFiresOnBadMetricsOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	h.createGoal("errors", domain.GoalConversion)
	h.createRule("guard", "checkout", domain.AutoOpsTurnOff)
	metrics := &fakeMetrics{}
	s := h.scheduler(withMetrics(metrics))

	for name, m := range map[string]map[string]scheduler.ArmCounts{"good": goodMetrics, "small": smallMetrics, "noisy": noisyMetrics} {
		metrics.set(m)
		if rep := h.tick(s); rep.RulesEvaluated != 1 || rep.RulesFired != 0 || rep.Errors != 0 {
			t.Fatalf("%s metrics: %+v", name, rep)
		}
		if f, _ := h.flag("checkout"); !f.ConfigFor("production").Targeting.On {
			t.Fatalf("%s metrics turned the flag off", name)
		}
	}
	q := metrics.queries[0]
	if q.Flag != "checkout" || q.Environment != "production" || q.Goal != "errors" || len(q.Variations) != 2 || q.Since.IsZero() {
		t.Fatalf("metrics query: %+v", q)
	}

	metrics.set(badMetrics)
	h.clock.Set(h.start.Add(time.Minute))
	if rep := h.tick(s); rep.RulesFired != 1 || rep.Errors != 0 {
		t.Fatalf("bad metrics: %+v", rep)
	}
	f, events := h.flag("checkout")
	if f.ConfigFor("production").Targeting.On {
		t.Fatal("the rule did not turn the flag off")
	}
	last := events[len(events)-1]
	if last.Type != "FlagToggled" || last.Metadata.Actor != "system:autoops/guard" ||
		!strings.Contains(last.Metadata.Reason, "fired: metric") || last.Metadata.CommandID != "guard:fire:1" {
		t.Fatalf("the action's audit: %s %+v", last.Type, last.Metadata)
	}
	r := h.rule("guard")
	if !r.Triggered || r.Evidence == nil || !r.Evidence.Fired || r.Evidence.Treatment.Exposed != 2000 ||
		r.Evidence.Control == nil || r.Evidence.Probability <= 0.95 || math.Abs(r.Evidence.Value-0.04) > 1e-9 {
		t.Fatalf("rule after firing: %+v evidence %+v", r, r.Evidence)
	}
	firings, _, err := delivery.ListFirings(h.ctx, h.pool, project, "guard", "", 0)
	if err != nil || len(firings) != 1 || firings[0].Action != domain.AutoOpsTurnOff || firings[0].Actor != "system:autoops/guard" ||
		!firings[0].Evidence.Fired {
		t.Fatalf("firings: %+v %v", firings, err)
	}
	// Fired once: a triggered rule stays quiet until re-armed.
	if rep := h.tick(s); rep.RulesEvaluated != 0 || rep.RulesFired != 0 {
		t.Fatalf("after firing: %+v", rep)
	}
}

// rollback_rollout sends the flag's active rollout back to 0% and pauses it; pause_rollout pauses
// it; a crash between the action and the record neither loses the action nor repeats it.
func TestAutoOpsRollsBackAndPausesRollouts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createFlag("checkout")
	h.createFlag("search")
	h.createGoal("errors", domain.GoalConversion)
	rb := h.createRollout("rb", "checkout", 10, 50, 100)
	h.createRollout("pz", "search", 10, 50, 100)
	h.createRule("rollback", "checkout", domain.AutoOpsRollbackRollout)
	h.createRule("pause", "search", domain.AutoOpsPauseRollout)
	metrics := &fakeMetrics{}
	metrics.set(goodMetrics)
	s := h.scheduler(withMetrics(metrics))
	h.clock.Set(rb.Steps[1].At)
	if rep := h.tick(s); rep.StepsApplied != 2 || rep.RulesFired != 0 {
		t.Fatalf("rollouts at 50%%: %+v", rep)
	}

	crashing := h.scheduler(withMetrics(metrics))
	scheduler.SetCrashHook(crashing, func(stage, id string) error {
		if stage == "autoops" {
			return errors.New("simulated crash")
		}
		return nil
	})
	metrics.set(badMetrics)
	if rep := h.tick(crashing); rep.Errors != 2 || rep.RulesFired != 0 {
		t.Fatalf("crashing pass: %+v", rep)
	}
	if r, _ := h.rollout("rb"); r.Status != domain.RolloutStatusPaused || !r.RolledBack {
		t.Fatalf("rollback before the crash: %s rolled back %v", r.Status, r.RolledBack)
	}
	if h.rule("rollback").Triggered {
		t.Fatal("the firing should not be recorded before the crash")
	}
	_, flagEvents := h.flag("checkout")
	writes := len(flagEvents)

	if rep := h.tick(s); rep.RulesFired != 2 || rep.Errors != 0 {
		t.Fatalf("pass after the crash: %+v", rep)
	}
	f, flagEvents := h.flag("checkout")
	if len(flagEvents) != writes || defaultWeight(f) != 0 {
		t.Fatalf("rollback repeated or lost: %d flag events (was %d), weight %d", len(flagEvents), writes, defaultWeight(f))
	}
	r, events := h.rollout("rb")
	if r.Status != domain.RolloutStatusPaused || r.Percent != 0 || countType(events, "RolloutRolledBack") != 1 ||
		!strings.Contains(r.Reason, "error rate guard") {
		t.Fatalf("rolled-back rollout: %s %v %q %v", r.Status, r.Percent, r.Reason, eventTypes(events))
	}
	if !h.rule("rollback").Triggered || !h.rule("pause").Triggered {
		t.Fatal("firings not recorded")
	}
	p, events := h.rollout("pz")
	if p.Status != domain.RolloutStatusPaused || countType(events, "RolloutPaused") != 1 {
		t.Fatalf("paused rollout: %s %v", p.Status, eventTypes(events))
	}
	if f, _ := h.flag("search"); defaultWeight(f) != domain.RolloutWeight(50) {
		t.Fatal("pause_rollout changed the flag")
	}
	// Paused rollouts do not advance.
	h.clock.Set(rb.Steps[2].At)
	if rep := h.tick(s); rep.StepsApplied != 0 {
		t.Fatalf("paused rollouts advanced: %+v", rep)
	}
}

// The guard's probability: exact posteriors from the experiment statistics.
func TestMeasure(t *testing.T) {
	t.Parallel()
	rule := &domain.AutoOpsRule{AutoOpsDefinition: domain.AutoOpsDefinition{
		Metric: domain.AutoOpsMetric{Variation: "t", Control: "c"}, Comparison: domain.AutoOpsGreaterThan, Threshold: 0}}
	arms := func(t, c scheduler.ArmCounts) map[string]scheduler.ArmCounts {
		return map[string]scheduler.ArmCounts{"t": t, "c": c}
	}

	m := scheduler.Measure(rule, domain.GoalConversion, arms(scheduler.ArmCounts{Exposed: 1000, Converted: 60}, scheduler.ArmCounts{Exposed: 1000, Converted: 20}))
	if m.Treatment.Rate != 0.06 || m.Control.Rate != 0.02 || m.Probability < 0.999 {
		t.Fatalf("clearly worse: %+v", m)
	}
	m = scheduler.Measure(rule, domain.GoalConversion, arms(scheduler.ArmCounts{Exposed: 1000, Converted: 20}, scheduler.ArmCounts{Exposed: 1000, Converted: 20}))
	if math.Abs(m.Probability-0.5) > 1e-6 {
		t.Fatalf("identical arms: %v", m.Probability)
	}
	lt := *rule
	lt.Comparison = domain.AutoOpsLessThan
	m = scheduler.Measure(&lt, domain.GoalConversion, arms(scheduler.ArmCounts{Exposed: 1000, Converted: 60}, scheduler.ArmCounts{Exposed: 1000, Converted: 20}))
	if m.Probability > 0.001 {
		t.Fatalf("lower is worse, treatment higher: %v", m.Probability)
	}
	m = scheduler.Measure(rule, domain.GoalCount, arms(scheduler.ArmCounts{Exposed: 1000, Events: 3000}, scheduler.ArmCounts{Exposed: 1000, Events: 1000}))
	if m.Treatment.Rate != 3 || m.Probability < 0.999 {
		t.Fatalf("count: %+v", m)
	}
	m = scheduler.Measure(rule, domain.GoalValue, arms(scheduler.ArmCounts{Exposed: 100, ValueSum: 1000, ValueSumSquares: 20000},
		scheduler.ArmCounts{Exposed: 100, ValueSum: 500, ValueSumSquares: 5000}))
	if m.Treatment.Rate != 10 || m.Probability < 0.99 {
		t.Fatalf("value: %+v", m)
	}
	// Without a control: the probability that the rate itself is beyond the threshold.
	solo := &domain.AutoOpsRule{AutoOpsDefinition: domain.AutoOpsDefinition{
		Metric: domain.AutoOpsMetric{Variation: "t"}, Comparison: domain.AutoOpsGreaterThan, Threshold: 0.05}}
	m = scheduler.Measure(solo, domain.GoalConversion, map[string]scheduler.ArmCounts{"t": {Exposed: 1000, Converted: 100}})
	if m.Probability < 0.999 {
		t.Fatalf("10%% against a 5%% threshold: %v", m.Probability)
	}
	m = scheduler.Measure(solo, domain.GoalConversion, map[string]scheduler.ArmCounts{"t": {Exposed: 1000, Converted: 50}})
	if m.Probability < 0.4 || m.Probability > 0.6 {
		t.Fatalf("at the threshold: %v", m.Probability)
	}
	// Nobody exposed: rate 0, no opinion either way (the minimum sample keeps the rule quiet).
	m = scheduler.Measure(rule, domain.GoalConversion, nil)
	if m.Treatment.Rate != 0 || math.IsNaN(m.Probability) {
		t.Fatalf("no data: %+v", m)
	}
	// Counts the statistics refuse never fire.
	m = scheduler.Measure(rule, domain.GoalConversion, arms(scheduler.ArmCounts{Exposed: 10, Converted: 20}, scheduler.ArmCounts{Exposed: 10}))
	if !math.IsNaN(m.Probability) {
		t.Fatalf("impossible counts: %v", m.Probability)
	}
}

// SQLMetrics reads the experiment-unit tables: first exposure decides the variation, users seen
// in two variations, under two subjects, or exposed before the rule was armed are left out, goals
// count per user and subject, value totals are capped; exposures to experiments on the flag count.
func TestSQLMetricsReadsTheExperimentUnitTables(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	armed := h.start
	// Experiments on the flag in this environment count; one on another flag does not.
	for _, x := range []struct{ key, flag string }{{"exp-checkout", "checkout"}, {"exp-other", "search"}} {
		if _, err := h.pool.Exec(h.ctx, `INSERT INTO rm_experiments (project, key, name, flag, environment, status, state,
			version, created_at, updated_at) VALUES ($1, $2, $2, $3, 'production', 'running', '{}', 1, now(), now())`,
			project, x.key, x.flag); err != nil {
			t.Fatal(err)
		}
	}
	exposures := []struct {
		user, kind, subject, variation string
		at                             time.Time
		multiple                       bool
	}{
		{"u1", "flag", "checkout", "true", armed.Add(time.Minute), false},
		{"u2", "flag", "checkout", "true", armed.Add(time.Minute), false},
		{"u3", "flag", "checkout", "true", armed.Add(time.Minute), true}, // seen in both: excluded
		{"u4", "flag", "checkout", "false", armed.Add(time.Minute), false},
		{"u5", "flag", "checkout", "true", armed.Add(-time.Hour), false}, // before the rule was armed: excluded
		{"u6", "experiment", "exp-checkout", "false", armed.Add(time.Minute), false},
		{"u7", "flag", "checkout", "true", armed.Add(time.Minute), false}, // under the flag and the experiment: excluded
		{"u7", "experiment", "exp-checkout", "true", armed.Add(2 * time.Minute), false},
		{"u8", "experiment", "exp-other", "true", armed.Add(time.Minute), false}, // another flag's experiment
		{"u9", "experiment", "exp-checkout", "true", armed.Add(-time.Hour), false},
	}
	for _, e := range exposures {
		if _, err := h.pool.Exec(h.ctx, `INSERT INTO experiment_exposures (project, environment, user_key, subject_kind, subject,
			variation, first_exposed_at, multiple_variations) VALUES ($1, 'production', $2, $3, $4, $5, $6, $7)`,
			project, e.user, e.kind, e.subject, e.variation, e.at, e.multiple); err != nil {
			t.Fatal(err)
		}
	}
	goals := []struct {
		user, kind, subject string
		goal                string
		count               int64
		value               float64
	}{
		{"u1", "flag", "checkout", "revenue", 3, 500}, {"u2", "flag", "checkout", "revenue", 1, 20},
		{"u3", "flag", "checkout", "revenue", 5, 5}, {"u4", "flag", "checkout", "revenue", 2, 30},
		{"u5", "flag", "checkout", "revenue", 9, 9}, {"u2", "flag", "checkout", "other", 7, 7},
		{"u6", "experiment", "exp-checkout", "revenue", 4, 40}, {"u6", "flag", "checkout", "revenue", 50, 50}, // the experiment's, not the flag's
		{"u7", "experiment", "exp-checkout", "revenue", 1, 1}, {"u8", "experiment", "exp-other", "revenue", 1, 1},
	}
	for _, g := range goals {
		if _, err := h.pool.Exec(h.ctx, `INSERT INTO experiment_user_goals (project, environment, subject_kind, subject, user_key, goal,
			conversions, value_sum, value_sum_squares, first_at, last_at) VALUES ($1, 'production', $2, $3, $4, $5, $6, $7, 0, now(), now())`,
			project, g.kind, g.subject, g.user, g.goal, g.count, g.value); err != nil {
			t.Fatal(err)
		}
	}
	got, err := scheduler.SQLMetrics{DB: h.pool}.Arms(h.ctx, scheduler.MetricsQuery{Project: project, Environment: "production",
		Flag: "checkout", Goal: "revenue", GoalKind: domain.GoalValue, ValueCap: 100, Variations: []string{"true", "false"}, Since: armed})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]scheduler.ArmCounts{
		"true":  {Exposed: 2, Converted: 2, Events: 4, ValueSum: 120, ValueSumSquares: 100*100 + 20*20},
		"false": {Exposed: 2, Converted: 2, Events: 2 + 4, ValueSum: 30 + 40, ValueSumSquares: 900 + 1600},
	}
	if len(got) != 2 || got["true"] != want["true"] || got["false"] != want["false"] {
		t.Fatalf("arms %+v, want %+v", got, want)
	}
}
