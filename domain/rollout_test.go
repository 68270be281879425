package domain_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// Rollouts of the boolean flag new-checkout in production, which is on and serves false by
// default. "Now" is t0; the standard plan starts at at(60) and steps hourly: 1, 5, 25, 50, 100%.

func newCheckoutFlag() []domain.Event {
	tg := *initial("false", "false")
	tg.On = true
	return []domain.Event{boolCreated("new-checkout"), &domain.FlagTargetingUpdated{Environment: "production", Targeting: tg}}
}

// splitServe serves "true" to weight buckets and "false" to the rest.
func splitServe(weight int) domain.Serve {
	return domain.Serve{Split: &domain.Split{Variations: []domain.WeightedVariation{
		{Variation: "true", Weight: weight}, {Variation: "false", Weight: domain.BucketCount - weight}}}}
}

// servingTrue is new-checkout with a default that already serves "true" to weight buckets.
func servingTrue(weight int) []domain.Event {
	tg := *initial("false", "false")
	tg.On = true
	tg.Default = splitServe(weight)
	if weight == domain.BucketCount {
		tg.Default = domain.Serve{Variation: "true"}
	}
	return []domain.Event{boolCreated("new-checkout"), &domain.FlagTargetingUpdated{Environment: "production", Targeting: tg}}
}

func hourlyPlan() []domain.RolloutStep {
	return domain.RolloutTemplate(at(60), time.Hour, domain.StandardRolloutPercents()...)
}

func rolloutCreated(steps ...domain.RolloutStep) *domain.RolloutCreated {
	if steps == nil {
		steps = hourlyPlan()
	}
	return &domain.RolloutCreated{Project: project, ID: "r1", Flag: "new-checkout", Environment: "production",
		Variation: "true", Other: "false", Steps: steps, Start: domain.Serve{Variation: "false"}}
}

func TestRolloutTemplateAndWeight(t *testing.T) {
	got := domain.RolloutTemplate(t0, 24*time.Hour, 1, 5, 25, 50, 100)
	want := []domain.RolloutStep{{At: t0, Percent: 1}, {At: t0.Add(24 * time.Hour), Percent: 5}, {At: t0.Add(48 * time.Hour), Percent: 25},
		{At: t0.Add(72 * time.Hour), Percent: 50}, {At: t0.Add(96 * time.Hour), Percent: 100}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("daily template %+v", got)
	}
	if err := domain.ValidateRolloutSteps(got, t0); err != nil {
		t.Fatalf("the standard daily plan is invalid: %v", err)
	}
	if len(domain.RolloutTemplate(t0, time.Hour)) != 0 {
		t.Fatalf("a template without percents has steps")
	}
	for p, w := range map[float64]int{1: 1000, 5: 5000, 100: 100000, 0.001: 1, 0.0005: 1, 0.0004: 0, 12.3455: 12346,
		33.3333: 33333, 66.66666: 66667, 99.9994: 99999, 99.9995: 100000, 0: 0, -3: 0, 150: 100000, math.NaN(): 0} {
		if got := domain.RolloutWeight(p); got != w {
			t.Errorf("RolloutWeight(%v) = %d, want %d", p, got, w)
		}
	}
}

func TestCreateRollout(t *testing.T) {
	in := func(mod func(*domain.NewRollout)) domain.NewRollout {
		r := domain.NewRollout{Project: project, ID: "r1", Flag: "new-checkout", Environment: "production", Steps: hourlyPlan()}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	steps := func(s ...domain.RolloutStep) func(*domain.NewRollout) {
		return func(r *domain.NewRollout) { r.Steps = s }
	}
	step := func(minutes int, p float64) domain.RolloutStep {
		return domain.RolloutStep{At: at(minutes), Percent: p}
	}
	tests := []struct {
		name        string
		in          domain.NewRollout
		flag        []domain.Event // newCheckoutFlag() when nil
		active      []string
		experiments []string
		then        []domain.Event
		code, field string
	}{
		{name: "boolean flag: true rolled out over false", in: in(nil), then: []domain.Event{rolloutCreated()}},
		// (The default serves true here: a rollout of the variation everybody already gets has nothing to do.)
		{name: "boolean flag: false rolled out, true gets the rest", in: in(func(r *domain.NewRollout) { r.Variation = "false" }),
			flag: servingTrue(domain.BucketCount),
			then: []domain.Event{func() *domain.RolloutCreated {
				c := rolloutCreated()
				c.Variation, c.Other = "false", "true"
				c.Start = domain.Serve{Variation: "true"}
				return c
			}()}},
		{name: "string flag with explicit variations, bucketed by company, first step now",
			flag: []domain.Event{colorCreated()},
			in: domain.NewRollout{Project: project, ID: "r1", Flag: "color", Environment: "staging", Variation: "blue", Other: "red",
				BucketBy: "company", Steps: []domain.RolloutStep{step(0, 10), step(1, 100)}},
			then: []domain.Event{&domain.RolloutCreated{Project: project, ID: "r1", Flag: "color", Environment: "staging",
				Variation: "blue", Other: "red", BucketBy: "company", Steps: []domain.RolloutStep{step(0, 10), step(1, 100)},
				Start: domain.Serve{Variation: "red"}}}},
		{name: "the rollout itself in the active list", in: in(nil), active: []string{"r1"}, then: []domain.Event{rolloutCreated()}},
		{name: "a plan ending below 100%", in: in(steps(step(60, 0.5), step(61, 2.5))),
			then: []domain.Event{rolloutCreated(step(60, 0.5), step(61, 2.5))}},

		{name: "a flag already serving 10%: the 1% and 5% steps are skipped at once", in: in(nil), flag: servingTrue(10000),
			then: []domain.Event{func() *domain.RolloutCreated {
				c := rolloutCreated()
				c.Start = splitServe(10000)
				return c
			}(), &domain.RolloutStepSkipped{Environment: "production", Index: 0, Percent: 1, AlreadyServed: true},
				&domain.RolloutStepSkipped{Environment: "production", Index: 1, Percent: 5, AlreadyServed: true}}},
		{name: "a flag serving exactly a step's share skips that step", in: in(nil), flag: servingTrue(25000),
			then: []domain.Event{func() *domain.RolloutCreated {
				c := rolloutCreated()
				c.Start = splitServe(25000)
				return c
			}(), &domain.RolloutStepSkipped{Environment: "production", Index: 0, Percent: 1, AlreadyServed: true},
				&domain.RolloutStepSkipped{Environment: "production", Index: 1, Percent: 5, AlreadyServed: true},
				&domain.RolloutStepSkipped{Environment: "production", Index: 2, Percent: 25, AlreadyServed: true}}},
		{name: "an off flag serves nobody its default: every step applies", in: in(nil),
			flag: func() []domain.Event {
				tg := *initial("false", "true")
				return []domain.Event{boolCreated("new-checkout"), &domain.FlagTargetingUpdated{Environment: "production", Targeting: tg}}
			}(),
			then: []domain.Event{func() *domain.RolloutCreated {
				c := rolloutCreated()
				c.Start = domain.Serve{Variation: "true"}
				return c
			}()}},
		{name: "a flag already serving the variation to everybody: nothing to roll out", in: in(nil),
			flag: func() []domain.Event {
				tg := *initial("false", "true")
				tg.On = true
				return []domain.Event{boolCreated("new-checkout"), &domain.FlagTargetingUpdated{Environment: "production", Targeting: tg}}
			}(), code: domain.EInvalid, field: "steps"},

		{name: "invalid project", in: in(func(r *domain.NewRollout) { r.Project = "" }), code: domain.EInvalid, field: "project"},
		{name: "invalid id", in: in(func(r *domain.NewRollout) { r.ID = "r/1" }), code: domain.EInvalid, field: "id"},
		{name: "missing flag", in: in(nil), flag: []domain.Event{}, code: domain.EInvalid, field: "flag"},
		{name: "archived flag", in: in(nil), flag: append(newCheckoutFlag(), &domain.FlagArchived{}), code: domain.EConflict},
		{name: "unknown environment", in: in(func(r *domain.NewRollout) { r.Environment = "qa" }), code: domain.EInvalid, field: "environment"},
		{name: "another active rollout", in: in(nil), active: []string{"r1", "r0"}, code: domain.EConflict},
		{name: "an experiment running on the flag", in: in(nil), experiments: []string{"checkout-test"}, code: domain.EConflict, field: "flag"},
		{name: "unknown variation", in: in(func(r *domain.NewRollout) { r.Variation = "maybe" }), code: domain.EInvalid, field: "variation"},
		{name: "unknown other", in: in(func(r *domain.NewRollout) { r.Other = "maybe" }), code: domain.EInvalid, field: "other"},
		{name: "other is the variation", in: in(func(r *domain.NewRollout) { r.Variation, r.Other = "true", "true" }),
			code: domain.EInvalid, field: "other"},
		{name: "string flag without variation", flag: []domain.Event{colorCreated()},
			in: in(func(r *domain.NewRollout) { r.Flag, r.Other = "color", "red" }), code: domain.EInvalid, field: "variation"},
		{name: "string flag without other", flag: []domain.Event{colorCreated()},
			in: in(func(r *domain.NewRollout) { r.Flag, r.Variation = "color", "red" }), code: domain.EInvalid, field: "other"},
		{name: "blank bucket-by attribute", in: in(func(r *domain.NewRollout) { r.BucketBy = " " }), code: domain.EInvalid, field: "bucket_by"},
		{name: "no steps", in: in(steps()), code: domain.EInvalid, field: "steps"},
		{name: "too many steps", in: in(func(r *domain.NewRollout) {
			r.Steps = nil
			for i := 0; i <= domain.MaxRolloutSteps; i++ {
				r.Steps = append(r.Steps, step(60+i, float64(i+1)*0.5))
			}
		}), code: domain.EInvalid, field: "steps"},
		{name: "first step in the past", in: in(steps(step(-1, 10), step(60, 20))), code: domain.EInvalid, field: "steps[0].at"},
		{name: "step without time", in: in(steps(step(60, 10), domain.RolloutStep{Percent: 20})), code: domain.EInvalid, field: "steps[1].at"},
		{name: "steps at the same time", in: in(steps(step(60, 10), step(60, 20))), code: domain.EInvalid, field: "steps[1].at"},
		{name: "steps going back in time", in: in(steps(step(60, 10), step(120, 20), step(90, 30))), code: domain.EInvalid, field: "steps[2].at"},
		{name: "zero percent", in: in(steps(step(60, 0))), code: domain.EInvalid, field: "steps[0].percent"},
		{name: "negative percent", in: in(steps(step(60, -5))), code: domain.EInvalid, field: "steps[0].percent"},
		{name: "over 100 percent", in: in(steps(step(60, 50), step(61, 100.5))), code: domain.EInvalid, field: "steps[1].percent"},
		{name: "NaN percent", in: in(steps(step(60, math.NaN()))), code: domain.EInvalid, field: "steps[0].percent"},
		{name: "infinite percent", in: in(steps(step(60, math.Inf(1)))), code: domain.EInvalid, field: "steps[0].percent"},
		{name: "less than one bucket", in: in(steps(step(60, 0.0004))), code: domain.EInvalid, field: "steps[0].percent"},
		{name: "percents going down", in: in(steps(step(60, 10), step(61, 5))), code: domain.EInvalid, field: "steps[1].percent"},
		{name: "percents repeating", in: in(steps(step(60, 10), step(61, 10))), code: domain.EInvalid, field: "steps[1].percent"},
		{name: "percents equal in buckets", in: in(steps(step(60, 1.0001), step(61, 1.0004))), code: domain.EInvalid, field: "steps[1].percent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			given := tc.flag
			if given == nil {
				given = newCheckoutFlag()
			}
			got, err := domain.CreateRollout(tc.in, foldFlag(t, given...), catalog(), tc.active, tc.experiments, t0)
			then(t, got, err, tc.then, tc.code, tc.field)
			if tc.code == domain.EConflict && (tc.active != nil || tc.experiments != nil) {
				var de *domain.Error
				errors.As(err, &de)
				want := map[string]any{"rollouts": []string{"r0"}}
				if tc.experiments != nil {
					want = map[string]any{"experiments": tc.experiments}
				}
				if !reflect.DeepEqual(de.Details, want) {
					t.Fatalf("details %v", de.Details)
				}
			}
		})
	}
}

// rolloutWorld is a flag and a rollout driven by a controllable clock, as the scheduler of the
// experiment role drives them: the flag events are applied to the flag, the rollout events to the
// rollout, and both are kept as their streams would be.
type rolloutWorld struct {
	tb      testing.TB
	flag    *domain.Flag
	rollout *domain.Rollout
	stream  []domain.Event // the rollout's stream
	weights []int          // the rolled-out variation's weight after each step applied
}

func newRolloutWorld(tb testing.TB, steps ...domain.RolloutStep) *rolloutWorld {
	tb.Helper()
	w := &rolloutWorld{tb: tb, flag: foldFlag(tb, newCheckoutFlag()...)}
	evs, err := domain.CreateRollout(domain.NewRollout{Project: project, ID: "r1", Flag: "new-checkout",
		Environment: "production", Steps: steps}, w.flag, catalog(), nil, nil, t0)
	if err != nil {
		tb.Fatalf("create rollout: %v", err)
	}
	w.rollout = &domain.Rollout{}
	w.record(nil, evs)
	return w
}

func (w *rolloutWorld) record(flagEvents, rolloutEvents []domain.Event) {
	w.tb.Helper()
	applyAll(w.flag, flagEvents)
	applyAll(w.rollout, rolloutEvents)
	w.stream = append(w.stream, rolloutEvents...)
	for _, e := range rolloutEvents {
		if _, ok := e.(*domain.RolloutStepApplied); ok {
			w.weights = append(w.weights, w.weight())
		}
	}
}

// tick runs the scheduler once at now; it reports the step applied, or -1.
func (w *rolloutWorld) tick(now time.Time) int {
	w.tb.Helper()
	i, ok := w.rollout.Due(now)
	if !ok {
		return -1
	}
	fe, re, err := w.rollout.ApplyStep(i, w.flag, catalog())
	if err != nil {
		w.tb.Fatalf("apply step %d at %s: %v", i, now, err)
	}
	w.record(fe, re)
	return i
}

// serve is the flag's default serve in production.
func (w *rolloutWorld) serve() domain.Serve { return w.flag.ConfigFor("production").Targeting.Default }

// weight is the share of "true" in the default serve, checking the serve is well-formed.
func (w *rolloutWorld) weight() int {
	w.tb.Helper()
	s := w.serve()
	switch {
	case s.Split == nil && s.Variation == "true":
		return domain.BucketCount
	case s.Split == nil && s.Variation == "false":
		return 0
	case s.Split == nil:
		w.tb.Fatalf("default serves %q", s.Variation)
	}
	sum := 0
	for _, v := range s.Split.Variations {
		sum += v.Weight
	}
	vs := s.Split.Variations
	if sum != domain.BucketCount || len(vs) != 2 || vs[0].Variation != "true" || vs[1].Variation != "false" {
		w.tb.Fatalf("default split %+v adds up to %d", vs, sum)
	}
	return vs[0].Weight
}

// checkFold checks that the rollout's stream folds to the state built by Apply.
func (w *rolloutWorld) checkFold() {
	w.tb.Helper()
	folded, err := domain.FoldRollout(record(w.tb, domain.RolloutStream(project, "r1"), w.stream...))
	if err != nil {
		w.tb.Fatalf("fold: %v", err)
	}
	folded.CreatedAt, folded.UpdatedAt = time.Time{}, time.Time{}
	if g, m := jsonOf(w.tb, folded), jsonOf(w.tb, w.rollout); g != m {
		w.tb.Fatalf("fold differs from apply\nfold:  %s\napply: %s", g, m)
	}
}

func TestRolloutAllSteps(t *testing.T) {
	w := newRolloutWorld(t, hourlyPlan()...)
	if w.rollout.Status != domain.RolloutStatusScheduled || w.weight() != 0 {
		t.Fatalf("created: %s, weight %d", w.rollout.Status, w.weight())
	}
	var appliedAt []int
	for m := 0; m <= 400; m++ {
		if i := w.tick(at(m)); i >= 0 {
			appliedAt = append(appliedAt, m)
			if i != len(appliedAt)-1 {
				t.Fatalf("step %d applied at minute %d out of order", i, m)
			}
		}
	}
	if !reflect.DeepEqual(appliedAt, []int{60, 120, 180, 240, 300}) {
		t.Fatalf("steps applied at minutes %v", appliedAt)
	}
	if !reflect.DeepEqual(w.weights, []int{1000, 5000, 25000, 50000, 100000}) {
		t.Fatalf("weights %v", w.weights)
	}
	if s := w.serve(); s.Variation != "true" || s.Split != nil {
		t.Fatalf("a completed rollout serves %+v", s)
	}
	r := w.rollout
	if r.Status != domain.RolloutStatusCompleted || r.Next != 5 || r.Percent != 100 || len(r.Skipped) != 0 || r.Active() {
		t.Fatalf("completed: %+v", r)
	}
	if _, ok := r.Due(at(10000)); ok {
		t.Fatalf("a completed rollout has a step due")
	}
	// The flag's rules, targets and on/off state were never touched.
	if tg := w.flag.ConfigFor("production").Targeting; !tg.On || tg.OffVariation != "false" || len(tg.Rules) != 0 {
		t.Fatalf("targeting %+v", tg)
	}
	last := w.stream[len(w.stream)-2:]
	sameEvents(t, "last events", last, []domain.Event{&domain.RolloutStepApplied{Environment: "production", Index: 4, Percent: 100, Weight: 100000}, &domain.RolloutCompleted{Environment: "production"}})
	w.checkFold()
}

func TestRolloutMissedSteps(t *testing.T) {
	w := newRolloutWorld(t, hourlyPlan()...)
	if w.tick(at(60)) != 0 {
		t.Fatalf("step 0 not applied on time")
	}
	// The service was down from minute 61 to 250: steps 1 and 2 were missed, step 3 is due.
	if i, ok := w.rollout.Due(at(250)); !ok || i != 3 {
		t.Fatalf("due at 250: %d %v", i, ok)
	}
	fe, re, err := w.rollout.ApplyStep(3, w.flag, catalog())
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "rollout events", re, []domain.Event{&domain.RolloutStepSkipped{Environment: "production", Index: 1, Percent: 5},
		&domain.RolloutStepSkipped{Environment: "production", Index: 2, Percent: 25}, &domain.RolloutStepApplied{Environment: "production", Index: 3, Percent: 50, Weight: 50000}})
	w.record(fe, re)
	if w.weight() != 50000 || !reflect.DeepEqual(w.rollout.Skipped, []int{1, 2}) {
		t.Fatalf("weight %d skipped %v", w.weight(), w.rollout.Skipped)
	}
	// The skipped steps never apply later, and nothing goes backwards.
	for _, i := range []int{0, 1, 2, 3} {
		if _, _, err := w.rollout.ApplyStep(i, w.flag, catalog()); domain.ErrorCode(err) != domain.EConflict {
			t.Fatalf("step %d again: %v", i, err)
		}
	}
	if _, ok := w.rollout.Due(at(299)); ok {
		t.Fatalf("step 4 due early")
	}
	if w.tick(at(300)) != 4 || w.rollout.Status != domain.RolloutStatusCompleted {
		t.Fatalf("step 4: %s", w.rollout.Status)
	}
	w.checkFold()

	// Down for the whole plan: the last step applies, every other one is skipped.
	w = newRolloutWorld(t, hourlyPlan()...)
	if w.tick(at(10000)) != 4 || !reflect.DeepEqual(w.rollout.Skipped, []int{0, 1, 2, 3}) || w.weight() != domain.BucketCount ||
		w.rollout.Status != domain.RolloutStatusCompleted {
		t.Fatalf("caught up: %+v", w.rollout)
	}
	w.checkFold()
}

func TestRolloutPauseResume(t *testing.T) {
	w := newRolloutWorld(t, hourlyPlan()...)
	w.tick(at(60))
	pause, err := w.rollout.Pause("error rate looks odd", at(90))
	if err != nil {
		t.Fatal(err)
	}
	w.record(nil, pause)
	if _, ok := w.rollout.Due(at(1000)); ok || w.tick(at(130)) != -1 || w.rollout.Status != domain.RolloutStatusPaused {
		t.Fatalf("a paused rollout moves")
	}
	if _, _, err := w.rollout.ApplyStep(1, w.flag, catalog()); domain.ErrorCode(err) != domain.EConflict {
		t.Fatalf("apply while paused: %v", err)
	}
	resume, err := w.rollout.Resume(at(150))
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "resume", resume, []domain.Event{&domain.RolloutResumed{Environment: "production", At: at(150), Shift: time.Hour}})
	w.record(nil, resume)
	// Paused for an hour: the steps not yet applied move an hour later; applied ones stay.
	var times []time.Time
	for _, s := range w.rollout.Steps {
		times = append(times, s.At)
	}
	if !reflect.DeepEqual(times, []time.Time{at(60), at(180), at(240), at(300), at(360)}) {
		t.Fatalf("steps after resume %v", times)
	}
	if w.rollout.Status != domain.RolloutStatusRunning {
		t.Fatalf("resumed to %s", w.rollout.Status)
	}
	if w.tick(at(179)) != -1 || w.tick(at(180)) != 1 {
		t.Fatalf("step 1 not at its shifted time")
	}
	for m := 181; m <= 400; m++ {
		w.tick(at(m))
	}
	if !reflect.DeepEqual(w.weights, []int{1000, 5000, 25000, 50000, 100000}) || w.rollout.Status != domain.RolloutStatusCompleted {
		t.Fatalf("weights %v, %s", w.weights, w.rollout.Status)
	}
	w.checkFold()

	// Paused before it started: resuming goes back to scheduled, the first step shifted.
	w = newRolloutWorld(t, hourlyPlan()...)
	p, _ := w.rollout.Pause("", at(10))
	w.record(nil, p)
	r, _ := w.rollout.Resume(at(40))
	w.record(nil, r)
	if w.rollout.Status != domain.RolloutStatusScheduled || !w.rollout.Steps[0].At.Equal(at(90)) {
		t.Fatalf("resumed before the start: %s, first step %s", w.rollout.Status, w.rollout.Steps[0].At)
	}
	if w.tick(at(89)) != -1 || w.tick(at(90)) != 0 {
		t.Fatalf("first step not at its shifted time")
	}
	w.checkFold()
}

func TestRolloutRounding(t *testing.T) {
	steps := domain.RolloutTemplate(at(60), time.Minute, 0.0005, 12.3455, 33.3333, 66.66666, 99.9994, 100)
	w := newRolloutWorld(t, steps...)
	for m := 60; m < 70; m++ {
		w.tick(at(m))
	}
	if !reflect.DeepEqual(w.weights, []int{1, 12346, 33333, 66667, 99999, 100000}) {
		t.Fatalf("weights %v", w.weights) // weight() checked that every split adds up to BucketCount
	}
}

// Histories of rollout r1 for the command table.
func rolloutHistory(extra ...domain.Event) []domain.Event {
	return append([]domain.Event{rolloutCreated()}, extra...)
}

func stepApplied(i int) *domain.RolloutStepApplied {
	p := domain.StandardRolloutPercents()[i]
	return &domain.RolloutStepApplied{Environment: "production", Index: i, Percent: p, Weight: domain.RolloutWeight(p)}
}

// flagAt is new-checkout as a rollout left it with weight w of "true" in production.
func flagAt(w int, extra ...domain.Event) []domain.Event {
	r := &domain.Rollout{}
	r.Apply(rolloutCreated())
	tg := *initial("false", "false")
	tg.On, tg.Default = true, r.ServeAt(w)
	return append(newCheckoutFlag(), append([]domain.Event{&domain.FlagTargetingUpdated{Environment: "production", Targeting: tg}}, extra...)...)
}

func defaultUpdate(s domain.Serve) *domain.FlagTargetingUpdated {
	tg := *initial("false", "false")
	tg.On, tg.Default = true, s
	return &domain.FlagTargetingUpdated{Environment: "production", Targeting: tg}
}

func TestRolloutCommands(t *testing.T) {
	type when func(r *domain.Rollout, f *domain.Flag) ([]domain.Event, []domain.Event, error)
	onlyRollout := func(fn func(r *domain.Rollout) ([]domain.Event, error)) when {
		return func(r *domain.Rollout, _ *domain.Flag) ([]domain.Event, []domain.Event, error) {
			evs, err := fn(r)
			return nil, evs, err
		}
	}
	pause := onlyRollout(func(r *domain.Rollout) ([]domain.Event, error) { return r.Pause("auto-ops: errors", at(500)) })
	resume := onlyRollout(func(r *domain.Rollout) ([]domain.Event, error) { return r.Resume(at(500)) })
	applyStep := func(i int) when {
		return func(r *domain.Rollout, f *domain.Flag) ([]domain.Event, []domain.Event, error) {
			return r.ApplyStep(i, f, catalog())
		}
	}
	abort := func(r *domain.Rollout, f *domain.Flag) ([]domain.Event, []domain.Event, error) {
		return r.Abort("bad feedback", f, catalog(), at(500))
	}
	rollBack := func(r *domain.Rollout, f *domain.Flag) ([]domain.Event, []domain.Event, error) {
		return r.RollBack("auto-ops: error rate", f, catalog(), at(500))
	}
	paused := &domain.RolloutPaused{Environment: "production", At: at(90)}
	running := rolloutHistory(stepApplied(0), stepApplied(1))
	completed := rolloutHistory(stepApplied(0), stepApplied(1), stepApplied(2), stepApplied(3), stepApplied(4), &domain.RolloutCompleted{Environment: "production"})
	aborted := rolloutHistory(stepApplied(0), &domain.RolloutAborted{Environment: "production", At: at(70), Restored: true})
	tests := []struct {
		name          string
		given         []domain.Event // the rollout's history
		flag          []domain.Event // newCheckoutFlag() when nil
		when          when
		flagEvents    []domain.Event
		rolloutEvents []domain.Event
		code, field   string
		msg           string
	}{
		// Pause, Resume
		{name: "pause running", given: running, flag: flagAt(5000), when: pause,
			rolloutEvents: []domain.Event{&domain.RolloutPaused{Environment: "production", At: at(500), Reason: "auto-ops: errors"}}},
		{name: "pause scheduled", given: rolloutHistory(), when: pause,
			rolloutEvents: []domain.Event{&domain.RolloutPaused{Environment: "production", At: at(500), Reason: "auto-ops: errors"}}},
		{name: "pause paused", given: rolloutHistory(paused), when: pause, code: domain.EConflict},
		{name: "pause completed", given: completed, when: pause, code: domain.EConflict},
		{name: "pause aborted", given: aborted, when: pause, code: domain.EConflict},
		{name: "pause with a reason too long", given: running, when: onlyRollout(func(r *domain.Rollout) ([]domain.Event, error) {
			return r.Pause(strings.Repeat("r", 2001), at(500))
		}), code: domain.EInvalid, field: "reason"},
		{name: "pause a missing rollout", when: pause, code: domain.ENotFound},
		{name: "resume paused", given: rolloutHistory(paused), when: resume,
			rolloutEvents: []domain.Event{&domain.RolloutResumed{Environment: "production", At: at(500), Shift: 410 * time.Minute}}},
		{name: "resume paused, clock behind", given: rolloutHistory(&domain.RolloutPaused{Environment: "production", At: at(600)}), when: resume,
			rolloutEvents: []domain.Event{&domain.RolloutResumed{Environment: "production", At: at(500)}}},
		{name: "resume running", given: running, when: resume, code: domain.EConflict},
		{name: "resume scheduled", given: rolloutHistory(), when: resume, code: domain.EConflict},
		{name: "resume completed", given: completed, when: resume, code: domain.EConflict},

		// ApplyStep
		{name: "apply the first step", given: rolloutHistory(), when: applyStep(0),
			flagEvents:    []domain.Event{defaultUpdate(domain.Serve{Split: split("true", 1000, "false", 99000)})},
			rolloutEvents: []domain.Event{stepApplied(0)}},
		{name: "apply a step when the default is ahead of the rollout", given: rolloutHistory(stepApplied(0)), flag: flagAt(5000), when: applyStep(1),
			code: domain.EConflict, msg: "changed outside the rollout"},
		{name: "apply a step after the default was changed by hand", given: running, flag: flagAt(5000, defaultUpdate(domain.Serve{Variation: "false"})),
			when: applyStep(2), code: domain.EConflict, msg: `expected split true 5%, false 95%, found variation "false"`},
		{name: "apply a step after a resume overwrites a changed default",
			given: append(running, paused, &domain.RolloutResumed{Environment: "production", At: at(100)}), flag: flagAt(5000, defaultUpdate(domain.Serve{Variation: "false"})),
			when:          applyStep(2),
			flagEvents:    []domain.Event{defaultUpdate(domain.Serve{Split: split("true", 25000, "false", 75000)})},
			rolloutEvents: []domain.Event{stepApplied(2)}},
		{name: "apply a step that keeps a bucket-by attribute",
			given: []domain.Event{func() domain.Event { c := rolloutCreated(); c.BucketBy = "company"; return c }()}, when: applyStep(0),
			flagEvents: []domain.Event{defaultUpdate(domain.Serve{Split: &domain.Split{BucketBy: "company",
				Variations: []domain.WeightedVariation{{Variation: "true", Weight: 1000}, {Variation: "false", Weight: 99000}}}})},
			rolloutEvents: []domain.Event{stepApplied(0)}},
		{name: "apply a step again", given: running, flag: flagAt(5000), when: applyStep(1), code: domain.EConflict},
		{name: "apply an earlier step", given: running, flag: flagAt(5000), when: applyStep(0), code: domain.EConflict},
		{name: "apply a step that does not exist", given: running, flag: flagAt(5000), when: applyStep(5), code: domain.EInvalid, field: "index"},
		{name: "apply a negative step", given: running, flag: flagAt(5000), when: applyStep(-1), code: domain.EInvalid, field: "index"},
		{name: "apply a step of a paused rollout", given: append(running, paused), flag: flagAt(5000), when: applyStep(2), code: domain.EConflict},
		{name: "apply a step of a completed rollout", given: completed, when: applyStep(4), code: domain.EConflict},
		{name: "apply a step of an aborted rollout", given: aborted, when: applyStep(1), code: domain.EConflict},
		{name: "apply a step to an archived flag", given: rolloutHistory(), flag: append(newCheckoutFlag(), &domain.FlagArchived{}),
			when: applyStep(0), code: domain.EConflict},
		{name: "apply a step to a missing flag", given: rolloutHistory(), flag: []domain.Event{}, when: applyStep(0), code: domain.ENotFound},
		{name: "apply a step to another flag", given: rolloutHistory(), flag: []domain.Event{colorCreated()}, when: applyStep(0), code: domain.EInternal},
		{name: "apply a step of a missing rollout", when: applyStep(0), code: domain.ENotFound},

		// Abort
		{name: "abort a running rollout restores the starting default", given: running, flag: flagAt(5000), when: abort,
			flagEvents:    []domain.Event{defaultUpdate(domain.Serve{Variation: "false"})},
			rolloutEvents: []domain.Event{&domain.RolloutAborted{Environment: "production", At: at(500), Reason: "bad feedback", Restored: true}}},
		{name: "abort a paused rollout restores the starting default even over a manual change", given: append(running, paused),
			flag: flagAt(5000, defaultUpdate(domain.Serve{Variation: "true"})), when: abort,
			flagEvents:    []domain.Event{defaultUpdate(domain.Serve{Variation: "false"})},
			rolloutEvents: []domain.Event{&domain.RolloutAborted{Environment: "production", At: at(500), Reason: "bad feedback", Restored: true}}},
		{name: "abort a scheduled rollout leaves the flag alone", given: rolloutHistory(),
			flag: append(newCheckoutFlag(), defaultUpdate(domain.Serve{Variation: "true"})), when: abort,
			rolloutEvents: []domain.Event{&domain.RolloutAborted{Environment: "production", At: at(500), Reason: "bad feedback"}}},
		{name: "abort when the flag is archived", given: running, flag: flagAt(5000, &domain.FlagArchived{}), when: abort,
			rolloutEvents: []domain.Event{&domain.RolloutAborted{Environment: "production", At: at(500), Reason: "bad feedback",
				RestoreFailure: `the starting default could not be restored: flag "new-checkout" is archived`}}},
		{name: "abort with another flag loaded", given: running, flag: []domain.Event{colorCreated()}, when: abort, code: domain.EInternal},
		{name: "abort when the starting variation is gone", flag: flagAt(5000),
			given: []domain.Event{func() domain.Event {
				c := rolloutCreated()
				c.Start = domain.Serve{Variation: "gone"}
				return c
			}(), stepApplied(0), stepApplied(1)}, when: abort,
			rolloutEvents: []domain.Event{&domain.RolloutAborted{Environment: "production", At: at(500), Reason: "bad feedback",
				RestoreFailure: `the starting default could not be restored: unknown variation "gone" (field targeting.default.variation)`}}},
		{name: "abort with a reason too long", given: running, flag: flagAt(5000), code: domain.EInvalid, field: "reason",
			when: func(r *domain.Rollout, f *domain.Flag) ([]domain.Event, []domain.Event, error) {
				return r.Abort(strings.Repeat("r", 2001), f, catalog(), at(500))
			}},
		{name: "abort a completed rollout", given: completed, when: abort, code: domain.EConflict},
		{name: "abort an aborted rollout", given: aborted, when: abort, code: domain.EConflict},
		{name: "abort a missing rollout", when: abort, code: domain.ENotFound},

		// RollBack
		{name: "roll back a running rollout", given: running, flag: flagAt(5000), when: rollBack,
			flagEvents: []domain.Event{defaultUpdate(domain.Serve{Variation: "false"})},
			rolloutEvents: []domain.Event{&domain.RolloutRolledBack{Environment: "production", At: at(500), Reason: "auto-ops: error rate"},
				&domain.RolloutPaused{Environment: "production", At: at(500), Reason: "auto-ops: error rate"}}},
		{name: "roll back a paused rollout", given: append(running, paused), flag: flagAt(5000), when: rollBack,
			flagEvents:    []domain.Event{defaultUpdate(domain.Serve{Variation: "false"})},
			rolloutEvents: []domain.Event{&domain.RolloutRolledBack{Environment: "production", At: at(500), Reason: "auto-ops: error rate"}}},
		{name: "roll back over a manual change", given: running, flag: flagAt(5000, defaultUpdate(domain.Serve{Variation: "true"})), when: rollBack,
			flagEvents: []domain.Event{defaultUpdate(domain.Serve{Variation: "false"})},
			rolloutEvents: []domain.Event{&domain.RolloutRolledBack{Environment: "production", At: at(500), Reason: "auto-ops: error rate"},
				&domain.RolloutPaused{Environment: "production", At: at(500), Reason: "auto-ops: error rate"}}},
		{name: "roll back twice is a no-op", flag: flagAt(0), when: rollBack,
			given: append(running, &domain.RolloutRolledBack{Environment: "production", At: at(200)}, &domain.RolloutPaused{Environment: "production", At: at(200)})},
		{name: "roll back a scheduled rollout only pauses it", given: rolloutHistory(), when: rollBack,
			rolloutEvents: []domain.Event{&domain.RolloutPaused{Environment: "production", At: at(500), Reason: "auto-ops: error rate"}}},
		{name: "roll back a paused scheduled rollout is a no-op", given: rolloutHistory(paused), when: rollBack},
		{name: "roll back a completed rollout", given: completed, when: rollBack, code: domain.EConflict},
		{name: "roll back an aborted rollout", given: aborted, when: rollBack, code: domain.EConflict},
		{name: "roll back on an archived flag", given: running, flag: flagAt(5000, &domain.FlagArchived{}), when: rollBack, code: domain.EConflict},
		{name: "roll back with a reason too long", given: running, flag: flagAt(5000), code: domain.EInvalid, field: "reason",
			when: func(r *domain.Rollout, f *domain.Flag) ([]domain.Event, []domain.Event, error) {
				return r.RollBack(strings.Repeat("r", 2001), f, catalog(), at(500))
			}},
		{name: "roll back a missing rollout", when: rollBack, code: domain.ENotFound},
		{name: "resume a missing rollout", when: resume, code: domain.ENotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r *domain.Rollout
			if len(tc.given) > 0 {
				var err error
				if r, err = domain.FoldRollout(record(t, domain.RolloutStream(project, "r1"), tc.given...)); err != nil {
					t.Fatal(err)
				}
			}
			given := tc.flag
			if given == nil {
				given = newCheckoutFlag()
			}
			f := foldFlag(t, given...)
			rBefore, fBefore := jsonOf(t, r), jsonOf(t, f)
			fe, re, err := tc.when(r, f)
			if jsonOf(t, r) != rBefore || jsonOf(t, f) != fBefore {
				t.Fatalf("the command mutated its inputs")
			}
			if tc.code != "" {
				wantError(t, err, tc.code, tc.field, fe, re)
				if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %q does not mention %q", err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			sameEvents(t, "flag events", fe, tc.flagEvents)
			sameEvents(t, "rollout events", re, tc.rolloutEvents)
		})
	}
}

// TestRolloutRollBackAndResume: auto-ops sends a running rollout back to 0% and pauses it; after
// a resume the rollout stays at 0% until its next step, which applies its own percent.
func TestRolloutRollBackAndResume(t *testing.T) {
	w := newRolloutWorld(t, hourlyPlan()...)
	w.tick(at(60))
	w.tick(at(120))
	fe, re, err := w.rollout.RollBack("auto-ops rule errors fired", w.flag, catalog(), at(130))
	if err != nil {
		t.Fatal(err)
	}
	w.record(fe, re)
	if w.weight() != 0 || w.rollout.Status != domain.RolloutStatusPaused || w.rollout.Percent != 0 || !w.rollout.RolledBack {
		t.Fatalf("rolled back: weight %d %+v", w.weight(), w.rollout)
	}
	res, _ := w.rollout.Resume(at(140))
	w.record(nil, res)
	if w.tick(at(189)) != -1 || w.weight() != 0 {
		t.Fatalf("moved before the next step")
	}
	if w.tick(at(190)) != 2 || w.weight() != 25000 || w.rollout.RolledBack {
		t.Fatalf("next step after the rollback: weight %d", w.weight())
	}
	w.checkFold()

	// Aborting restores the starting default.
	fe, re, err = w.rollout.Abort("", w.flag, catalog(), at(200))
	if err != nil {
		t.Fatal(err)
	}
	w.record(fe, re)
	if s := w.serve(); s.Variation != "false" || s.Split != nil || w.rollout.Status != domain.RolloutStatusAborted || w.rollout.Active() {
		t.Fatalf("aborted: %+v %s", s, w.rollout.Status)
	}
	w.checkFold()
}

func TestFoldRollout(t *testing.T) {
	if r, err := domain.FoldRollout(nil); r != nil || err != nil {
		t.Fatalf("empty stream: %v %v", r, err)
	}
	for name, stream := range map[string][]domain.RecordedEvent{
		"no creation event":          record(t, "rollout/acme/r1", &domain.RolloutCompleted{Environment: "production"}),
		"created twice":              record(t, "rollout/acme/r1", rolloutCreated(), rolloutCreated()),
		"event of another aggregate": record(t, "rollout/acme/r1", rolloutCreated(), &domain.FlagArchived{}),
		"undecodable":                {{Version: 1, Type: "RolloutCreated", Data: []byte(`{"steps":{}}`)}},
	} {
		if _, err := domain.FoldRollout(stream); err == nil {
			t.Errorf("%s: folded without error", name)
		}
	}
	r, err := domain.FoldRollout(record(t, "rollout/acme/r1", rolloutCreated()))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 || !r.CreatedAt.Equal(t0) || r.Status != domain.RolloutStatusScheduled || r.Expected == nil ||
		r.Expected.Variation != "false" || !r.Active() {
		t.Fatalf("created: %+v", r)
	}
	if got := r.StepCommandID(3); got != "r1:step:3" {
		t.Errorf("step command id %q", got)
	}
	var none *domain.Rollout
	if _, ok := none.Due(at(1000)); ok || none.Active() {
		t.Fatalf("a nil rollout is due")
	}
}

// FuzzRolloutSteps builds plans from arbitrary percents and intervals, and runs the valid ones
// to the end with a clock jumping arbitrarily: validation never panics and fails only with
// EInvalid at a field; a valid plan has strictly increasing times and bucket weights; every split
// written adds up to BucketCount; the rolled-out share never goes down; no step applies twice; the
// rollout completes with the last step's weight.
func FuzzRolloutSteps(f *testing.F) {
	f.Add(int64(time.Hour), 1.0, 5.0, 25.0, 50.0, 100.0, uint8(5), uint64(0))
	f.Add(int64(24*time.Hour), 0.0005, 12.3455, 33.3333, 66.66666, 99.9994, uint8(5), uint64(0xfff))
	f.Add(int64(time.Minute), 10.0, 10.0, 20.0, 30.0, 40.0, uint8(3), uint64(1))
	f.Add(int64(-time.Hour), 1.0, 2.0, 3.0, 4.0, 5.0, uint8(4), uint64(7))
	f.Add(int64(0), 50.0, 100.0, 0.0, 0.0, 0.0, uint8(2), uint64(0))
	f.Add(int64(math.MaxInt64), 1.0, 2.0, 3.0, 4.0, 5.0, uint8(5), uint64(3))
	f.Add(int64(time.Second), math.NaN(), math.Inf(1), -1.0, 101.0, 1e-9, uint8(5), uint64(0))
	f.Fuzz(func(t *testing.T, every int64, p0, p1, p2, p3, p4 float64, n uint8, jumps uint64) {
		percents := []float64{p0, p1, p2, p3, p4}[:n%6]
		steps := domain.RolloutTemplate(at(60), time.Duration(every), percents...)
		err := domain.ValidateRolloutSteps(steps, t0)
		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EInvalid || de.Field == "" {
				t.Fatalf("want an EInvalid *Error with a field, got %#v", err)
			}
			return
		}
		for i := 1; i < len(steps); i++ {
			if !steps[i].At.After(steps[i-1].At) || domain.RolloutWeight(steps[i].Percent) <= domain.RolloutWeight(steps[i-1].Percent) {
				t.Fatalf("accepted a plan that does not increase: %+v", steps)
			}
		}
		w := newRolloutWorld(t, steps...)
		now := steps[0].At
		applied := map[int]bool{}
		for tick := 0; w.rollout.Status != domain.RolloutStatusCompleted; tick++ {
			if tick > 2*len(steps)+2 {
				t.Fatalf("the rollout does not complete: %+v", w.rollout)
			}
			// Either tick exactly at the next step or jump past several, as bits of jumps say.
			next := w.rollout.Steps[w.rollout.Next].At
			if jumps>>(tick%64)&1 == 1 {
				next = w.rollout.Steps[len(w.rollout.Steps)-1].At
			}
			if next.After(now) {
				now = next
			}
			i := w.tick(now)
			if i < 0 || applied[i] {
				t.Fatalf("tick at %s applied %d (applied before: %v)", now, i, applied)
			}
			applied[i] = true
		}
		for j := 1; j < len(w.weights); j++ {
			if w.weights[j] <= w.weights[j-1] {
				t.Fatalf("weights went down: %v", w.weights)
			}
		}
		if last := w.weights[len(w.weights)-1]; last != domain.RolloutWeight(steps[len(steps)-1].Percent) {
			t.Fatalf("completed at weight %d, want the last step's", last)
		}
		if len(w.rollout.Skipped)+len(w.weights) != len(steps) {
			t.Fatalf("%d skipped and %d applied of %d steps", len(w.rollout.Skipped), len(w.weights), len(steps))
		}
		w.checkFold()
	})
}
