package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

// checkoutDef is a valid definition: flag color in production, red (control) against blue, half
// the traffic, goals signup, clicks and errors.
func checkoutDef() domain.ExperimentDefinition {
	return domain.ExperimentDefinition{Name: "Checkout color", Hypothesis: "blue converts better",
		Flag: "color", Environment: "production",
		Variations: []domain.ExperimentVariation{{Variation: "red", Control: true}, {Variation: "blue"}},
		Allocation: 50000, Seed: "exp-seed-1", PrimaryGoal: "signup",
		SecondaryGoals: []string{"clicks"}, GuardrailGoals: []string{"errors"}}
}

// checkoutRecorded is checkoutDef as the domain records it (weights filled in).
func checkoutRecorded() domain.ExperimentDefinition {
	d := checkoutDef()
	d.Variations = []domain.ExperimentVariation{{Variation: "red", Control: true, Weight: 50000}, {Variation: "blue", Weight: 50000}}
	return d
}

func checkoutCreated() *domain.ExperimentCreated {
	return &domain.ExperimentCreated{Project: project, Key: "checkout", ExperimentDefinition: checkoutRecorded()}
}

func TestCreateExperiment(t *testing.T) {
	in := func(mod func(d *domain.ExperimentDefinition)) domain.NewExperiment {
		d := checkoutDef()
		if mod != nil {
			mod(&d)
		}
		return domain.NewExperiment{Project: project, Key: "checkout", ExperimentDefinition: d}
	}
	created := func(mod func(d *domain.ExperimentDefinition)) []domain.Event {
		d := checkoutRecorded()
		if mod != nil {
			mod(&d)
		}
		return []domain.Event{&domain.ExperimentCreated{Project: project, Key: "checkout", ExperimentDefinition: d}}
	}
	vars := func(vs ...domain.ExperimentVariation) func(d *domain.ExperimentDefinition) {
		return func(d *domain.ExperimentDefinition) { d.Variations = vs }
	}
	v := func(key string, control bool, weight int) domain.ExperimentVariation {
		return domain.ExperimentVariation{Variation: key, Control: control, Weight: weight}
	}
	tests := []struct {
		name        string
		in          domain.NewExperiment
		then        []domain.Event
		code, field string
	}{
		{name: "equal split of two", in: in(nil), then: created(nil)},
		{name: "equal split of three, the remainder to the first",
			in:   in(vars(v("green", false, 0), v("red", true, 0), v("blue", false, 0))),
			then: created(vars(v("green", false, 33334), v("red", true, 33333), v("blue", false, 33333)))},
		{name: "explicit weights", in: in(vars(v("red", true, 10000), v("blue", false, 90000))),
			then: created(vars(v("red", true, 10000), v("blue", false, 90000)))},
		{name: "no secondary or guardrail goals, all the traffic", in: in(func(d *domain.ExperimentDefinition) {
			d.SecondaryGoals, d.GuardrailGoals, d.Allocation, d.Hypothesis = nil, nil, domain.BucketCount, ""
		}),
			then: created(func(d *domain.ExperimentDefinition) {
				d.SecondaryGoals, d.GuardrailGoals, d.Allocation, d.Hypothesis = []string{}, []string{}, domain.BucketCount, ""
			})},
		{name: "a boolean flag", in: in(func(d *domain.ExperimentDefinition) {
			d.Flag = "other"
			d.Variations = []domain.ExperimentVariation{v("false", true, 0), v("true", false, 0)}
		}),
			then: created(func(d *domain.ExperimentDefinition) {
				d.Flag = "other"
				d.Variations = []domain.ExperimentVariation{v("false", true, 50000), v("true", false, 50000)}
			})},

		{name: "invalid project", in: domain.NewExperiment{Key: "checkout", ExperimentDefinition: checkoutDef()}, code: domain.EInvalid, field: "project"},
		{name: "invalid key", in: domain.NewExperiment{Project: project, Key: "check out", ExperimentDefinition: checkoutDef()},
			code: domain.EInvalid, field: "key"},
		{name: "key taken", in: domain.NewExperiment{Project: project, Key: "taken", ExperimentDefinition: checkoutDef()},
			code: domain.EConflict, field: "key"},
		{name: "key taken by an archived experiment", in: domain.NewExperiment{Project: project, Key: "gone", ExperimentDefinition: checkoutDef()},
			code: domain.EConflict, field: "key"},
		{name: "missing name", in: in(func(d *domain.ExperimentDefinition) { d.Name = "" }), code: domain.EInvalid, field: "name"},
		{name: "hypothesis too long", in: in(func(d *domain.ExperimentDefinition) { d.Hypothesis = strings.Repeat("h", 2001) }),
			code: domain.EInvalid, field: "hypothesis"},
		{name: "hypothesis not UTF-8", in: in(func(d *domain.ExperimentDefinition) { d.Hypothesis = "\xff" }),
			code: domain.EInvalid, field: "hypothesis"},
		{name: "invalid flag key", in: in(func(d *domain.ExperimentDefinition) { d.Flag = "" }), code: domain.EInvalid, field: "flag"},
		{name: "unknown flag", in: in(func(d *domain.ExperimentDefinition) { d.Flag = "ghost" }), code: domain.EInvalid, field: "flag"},
		{name: "archived flag", in: in(func(d *domain.ExperimentDefinition) { d.Flag = "retired" }), code: domain.EInvalid, field: "flag"},
		{name: "invalid environment key", in: in(func(d *domain.ExperimentDefinition) { d.Environment = "a b" }),
			code: domain.EInvalid, field: "environment"},
		{name: "unknown environment", in: in(func(d *domain.ExperimentDefinition) { d.Environment = "qa" }),
			code: domain.EInvalid, field: "environment"},
		{name: "one variation", in: in(vars(v("red", true, 0))), code: domain.EInvalid, field: "variations"},
		{name: "no variations", in: in(vars()), code: domain.EInvalid, field: "variations"},
		{name: "too many variations", in: in(func(d *domain.ExperimentDefinition) {
			d.Variations = make([]domain.ExperimentVariation, domain.MaxSplitVariations+1)
		}), code: domain.EInvalid, field: "variations"},
		{name: "unknown variation", in: in(vars(v("red", true, 0), v("pink", false, 0))), code: domain.EInvalid, field: "variations[1].variation"},
		{name: "variation twice", in: in(vars(v("red", true, 0), v("blue", false, 0), v("red", false, 0))),
			code: domain.EInvalid, field: "variations[2].variation"},
		{name: "no control", in: in(vars(v("red", false, 0), v("blue", false, 0))), code: domain.EInvalid, field: "variations"},
		{name: "two controls", in: in(vars(v("red", true, 0), v("blue", true, 0))), code: domain.EInvalid, field: "variations[1].control"},
		{name: "weights not adding up", in: in(vars(v("red", true, 50000), v("blue", false, 49999))), code: domain.EInvalid, field: "variations"},
		{name: "weights over 100%", in: in(vars(v("red", true, 60000), v("blue", false, 60000))), code: domain.EInvalid, field: "variations"},
		{name: "some weights missing", in: in(vars(v("red", true, 100000), v("blue", false, 0))), code: domain.EInvalid, field: "variations[1].weight"},
		{name: "negative weight", in: in(vars(v("red", true, 100001), v("blue", false, -1))), code: domain.EInvalid, field: "variations[0].weight"},
		{name: "allocation not given: all eligible users", in: in(func(d *domain.ExperimentDefinition) { d.Allocation = 0 }),
			then: created(func(d *domain.ExperimentDefinition) { d.Allocation = domain.BucketCount })},
		{name: "negative allocation", in: in(func(d *domain.ExperimentDefinition) { d.Allocation = -5 }), code: domain.EInvalid, field: "allocation"},
		{name: "allocation over 100%", in: in(func(d *domain.ExperimentDefinition) { d.Allocation = domain.BucketCount + 1 }),
			code: domain.EInvalid, field: "allocation"},
		{name: "missing seed", in: in(func(d *domain.ExperimentDefinition) { d.Seed = "  " }), code: domain.EInvalid, field: "seed"},
		{name: "seed too long", in: in(func(d *domain.ExperimentDefinition) { d.Seed = strings.Repeat("s", 201) }), code: domain.EInvalid, field: "seed"},
		{name: "missing primary goal", in: in(func(d *domain.ExperimentDefinition) { d.PrimaryGoal = "" }), code: domain.EInvalid, field: "primary_goal"},
		{name: "unknown primary goal", in: in(func(d *domain.ExperimentDefinition) { d.PrimaryGoal = "ghost" }), code: domain.EInvalid, field: "primary_goal"},
		{name: "archived primary goal", in: in(func(d *domain.ExperimentDefinition) { d.PrimaryGoal = "retired-goal" }),
			code: domain.EInvalid, field: "primary_goal"},
		{name: "invalid secondary goal key", in: in(func(d *domain.ExperimentDefinition) { d.SecondaryGoals = []string{"clicks", "a b"} }),
			code: domain.EInvalid, field: "secondary_goals[1]"},
		{name: "archived guardrail goal", in: in(func(d *domain.ExperimentDefinition) { d.GuardrailGoals = []string{"retired-goal"} }),
			code: domain.EInvalid, field: "guardrail_goals[0]"},
		{name: "primary goal also secondary", in: in(func(d *domain.ExperimentDefinition) { d.SecondaryGoals = []string{"clicks", "signup"} }),
			code: domain.EInvalid, field: "secondary_goals[1]"},
		{name: "secondary goal also guardrail", in: in(func(d *domain.ExperimentDefinition) { d.GuardrailGoals = []string{"clicks"} }),
			code: domain.EInvalid, field: "guardrail_goals[0]"},
		{name: "guardrail goal twice", in: in(func(d *domain.ExperimentDefinition) { d.GuardrailGoals = []string{"errors", "errors"} }),
			code: domain.EInvalid, field: "guardrail_goals[1]"},
		{name: "too many secondary goals", in: in(func(d *domain.ExperimentDefinition) { d.SecondaryGoals = strs("g", domain.MaxExperimentGoals+1) }),
			code: domain.EInvalid, field: "secondary_goals"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.CreateExperiment(tc.in, expCatalog())
			then(t, got, err, tc.then, tc.code, tc.field)
		})
	}
	// Without a catalog nothing can be referenced.
	if _, err := domain.CreateExperiment(in(nil), nil); domain.ErrorCode(err) != domain.EInvalid {
		t.Errorf("nil catalog: %v", err)
	}
}

// Histories of experiment checkout in each status.
var (
	draft     = []domain.Event{checkoutCreated()}
	running   = []domain.Event{checkoutCreated(), &domain.ExperimentStarted{At: at(10)}}
	stopped   = []domain.Event{checkoutCreated(), &domain.ExperimentStarted{At: at(10)}, &domain.ExperimentStopped{At: at(20)}}
	concluded = []domain.Event{checkoutCreated(), &domain.ExperimentStarted{At: at(10)}, &domain.ExperimentStopped{At: at(20)},
		&domain.ExperimentConcluded{Variation: "blue", Reason: "won"}}
	archivedDraft   = []domain.Event{checkoutCreated(), &domain.ExperimentArchived{}}
	archivedStopped = append(append([]domain.Event{}, stopped...), &domain.ExperimentArchived{})
)

func foldExperiment(tb testing.TB, events ...domain.Event) *domain.Experiment {
	tb.Helper()
	if len(events) == 0 {
		return nil
	}
	e, err := fold[domain.Experiment](record(tb, domain.ExperimentStream(project, "checkout"), events...))
	if err != nil {
		tb.Fatalf("fold experiment: %v", err)
	}
	return e
}

func TestExperimentCommands(t *testing.T) {
	type when func(e *domain.Experiment, cat *domain.ExperimentCatalog) ([]domain.Event, error)
	updateDraft := func(mod func(d *domain.ExperimentDefinition)) when {
		return func(e *domain.Experiment, cat *domain.ExperimentCatalog) ([]domain.Event, error) {
			d := checkoutDef()
			mod(&d)
			return e.UpdateDraft(d, cat)
		}
	}
	start := func(e *domain.Experiment, cat *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.Start(cat, at(30))
	}
	stop := func(e *domain.Experiment, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return e.Stop(at(40)) }
	conclude := func(variation, reason string) when {
		return func(e *domain.Experiment, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
			return e.Conclude(variation, reason, at(50))
		}
	}
	archive := func(e *domain.Experiment, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return e.Archive() }
	tests := []struct {
		name        string
		given       []domain.Event
		cat         func(*domain.ExperimentCatalog)
		when        when
		then        []domain.Event
		code, field string
		details     map[string]any
	}{
		// UpdateDraft
		{name: "update a draft, seed kept", given: draft,
			when: updateDraft(func(d *domain.ExperimentDefinition) {
				d.Seed, d.Environment, d.Allocation = "", "staging", 100000
				d.Variations = append(d.Variations, domain.ExperimentVariation{Variation: "green"})
			}),
			then: []domain.Event{&domain.ExperimentUpdated{ExperimentDefinition: func() domain.ExperimentDefinition {
				d := checkoutRecorded()
				d.Environment, d.Allocation = "staging", 100000
				d.Variations = []domain.ExperimentVariation{{Variation: "red", Control: true, Weight: 33334},
					{Variation: "blue", Weight: 33333}, {Variation: "green", Weight: 33333}}
				return d
			}()}}},
		{name: "update a draft with a new seed", given: draft, when: updateDraft(func(d *domain.ExperimentDefinition) { d.Seed = "exp-seed-2" }),
			then: []domain.Event{&domain.ExperimentUpdated{ExperimentDefinition: func() domain.ExperimentDefinition {
				d := checkoutRecorded()
				d.Seed = "exp-seed-2"
				return d
			}()}}},
		{name: "update a draft to the same definition is a no-op", given: draft, when: updateDraft(func(d *domain.ExperimentDefinition) { d.Seed = "" })},
		{name: "update a draft with an invalid definition", given: draft,
			when: updateDraft(func(d *domain.ExperimentDefinition) { d.GuardrailGoals = []string{"signup"} }),
			code: domain.EInvalid, field: "guardrail_goals[0]"},
		{name: "update a running experiment", given: running, when: updateDraft(func(*domain.ExperimentDefinition) {}), code: domain.EConflict},
		{name: "update a missing experiment", when: updateDraft(func(*domain.ExperimentDefinition) {}), code: domain.ENotFound},

		// Start
		{name: "start", given: draft, when: start, then: []domain.Event{&domain.ExperimentStarted{At: at(30)}}},
		{name: "start while another experiment runs on the flag and environment", given: draft, when: start, code: domain.EConflict,
			cat: func(c *domain.ExperimentCatalog) {
				c.Experiments["rival"] = domain.ExperimentInfo{Flag: "color", Environment: "production", Status: domain.ExperimentStatusRunning}
			},
			details: map[string]any{"experiments": []string{"rival"}}},
		{name: "start while a rollout of the flag is active in the environment", given: draft, when: start, code: domain.EConflict, field: "flag",
			cat: func(c *domain.ExperimentCatalog) {
				c.AddRollout(&domain.Rollout{ID: "ramp", Flag: "color", Environment: "production", Status: domain.RolloutStatusPaused})
				c.AddRollout(&domain.Rollout{ID: "staging-ramp", Flag: "color", Environment: "staging", Status: domain.RolloutStatusRunning})
			},
			details: map[string]any{"rollouts": []string{"ramp"}}},
		{name: "start after the flag's rollout completed", given: draft, when: start,
			cat: func(c *domain.ExperimentCatalog) {
				c.AddRollout(&domain.Rollout{ID: "ramp", Flag: "color", Environment: "production", Status: domain.RolloutStatusRunning})
				c.AddRollout(&domain.Rollout{ID: "ramp", Flag: "color", Environment: "production", Status: domain.RolloutStatusCompleted})
			},
			then: []domain.Event{&domain.ExperimentStarted{At: at(30)}}},
		{name: "start while others run elsewhere or are stopped", given: draft, when: start,
			cat: func(c *domain.ExperimentCatalog) {
				c.Experiments["staging-run"] = domain.ExperimentInfo{Flag: "color", Environment: "staging", Status: domain.ExperimentStatusRunning}
				c.Experiments["other-run"] = domain.ExperimentInfo{Flag: "other", Environment: "production", Status: domain.ExperimentStatusRunning}
				c.Experiments["stopped"] = domain.ExperimentInfo{Flag: "color", Environment: "production", Status: domain.ExperimentStatusStopped}
				c.Experiments["checkout"] = domain.ExperimentInfo{Flag: "color", Environment: "production", Status: domain.ExperimentStatusRunning}
			},
			then: []domain.Event{&domain.ExperimentStarted{At: at(30)}}},
		{name: "start after the primary goal was archived", given: draft, when: start, code: domain.EConflict, field: "primary_goal",
			cat: func(c *domain.ExperimentCatalog) {
				c.Goals["signup"] = domain.GoalInfo{Kind: domain.GoalConversion, Archived: true}
			}},
		{name: "start after a variation was removed", given: draft, when: start, code: domain.EConflict, field: "variations[1].variation",
			cat: func(c *domain.ExperimentCatalog) {
				fi := c.Catalog.Flags["color"]
				fi.Variations = []string{"red", "green"}
				c.Catalog.Flags["color"] = fi
			}},
		{name: "start after the flag was archived", given: draft, when: start, code: domain.EConflict, field: "flag",
			cat: func(c *domain.ExperimentCatalog) {
				fi := c.Catalog.Flags["color"]
				fi.Archived = true
				c.Catalog.Flags["color"] = fi
			}},

		// Stop
		{name: "stop", given: running, when: stop, then: []domain.Event{&domain.ExperimentStopped{At: at(40)}}},

		// Conclude
		{name: "conclude a stopped experiment", given: stopped, when: conclude("blue", "blue won with 97% probability"),
			then: []domain.Event{&domain.ExperimentConcluded{Variation: "blue", Reason: "blue won with 97% probability"}}},
		{name: "conclude a running experiment stops it", given: running, when: conclude("red", "no difference, keep the control"),
			then: []domain.Event{&domain.ExperimentStopped{At: at(50)},
				&domain.ExperimentConcluded{Variation: "red", Reason: "no difference, keep the control"}}},
		{name: "conclude with a variation not in play", given: stopped, when: conclude("green", "why not"), code: domain.EInvalid, field: "variation"},
		{name: "conclude without a reason", given: stopped, when: conclude("blue", " "), code: domain.EInvalid, field: "reason"},
		{name: "conclude with a reason too long", given: stopped, when: conclude("blue", strings.Repeat("r", 2001)),
			code: domain.EInvalid, field: "reason"},

		// Archive
		{name: "archive a draft", given: draft, when: archive, then: []domain.Event{&domain.ExperimentArchived{}}},
		{name: "archive a stopped experiment", given: stopped, when: archive, then: []domain.Event{&domain.ExperimentArchived{}}},
		{name: "archive a concluded experiment", given: concluded, when: archive, then: []domain.Event{&domain.ExperimentArchived{}}},
		{name: "archive a running experiment", given: running, when: archive, code: domain.EConflict},
		{name: "archive twice", given: archivedDraft, when: archive, code: domain.EConflict},
		{name: "archive a missing experiment", when: archive, code: domain.ENotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := expCatalog()
			if tc.cat != nil {
				tc.cat(cat)
			}
			e := foldExperiment(t, tc.given...)
			before := jsonOf(t, e)
			got, err := tc.when(e, cat)
			then(t, got, err, tc.then, tc.code, tc.field)
			if tc.details != nil {
				var de *domain.Error
				errors.As(err, &de)
				if !reflect.DeepEqual(de.Details, tc.details) {
					t.Fatalf("details %v, want %v", de.Details, tc.details)
				}
			}
			if jsonOf(t, e) != before {
				t.Fatalf("the command mutated the experiment")
			}
			if e != nil {
				applyAll(e, got)
				if e.Version != int64(len(tc.given)+len(got)) {
					t.Fatalf("version after apply %d", e.Version)
				}
			}
		})
	}
}

// TestExperimentTransitions checks the lifecycle as a whole: from each status, exactly the
// allowed commands succeed and every other one is EConflict.
func TestExperimentTransitions(t *testing.T) {
	commands := map[string]func(e *domain.Experiment) ([]domain.Event, error){
		"update":   func(e *domain.Experiment) ([]domain.Event, error) { return e.UpdateDraft(checkoutDef(), expCatalog()) },
		"start":    func(e *domain.Experiment) ([]domain.Event, error) { return e.Start(expCatalog(), at(100)) },
		"stop":     func(e *domain.Experiment) ([]domain.Event, error) { return e.Stop(at(100)) },
		"conclude": func(e *domain.Experiment) ([]domain.Event, error) { return e.Conclude("red", "r", at(100)) },
		"archive":  func(e *domain.Experiment) ([]domain.Event, error) { return e.Archive() },
	}
	statuses := []struct {
		name    string
		given   []domain.Event
		allowed map[string]domain.ExperimentStatus // command -> status after it
	}{
		{"draft", draft, map[string]domain.ExperimentStatus{"update": domain.ExperimentStatusDraft,
			"start": domain.ExperimentStatusRunning, "archive": domain.ExperimentStatusDraft}},
		{"running", running, map[string]domain.ExperimentStatus{"stop": domain.ExperimentStatusStopped,
			"conclude": domain.ExperimentStatusConcluded}},
		{"stopped", stopped, map[string]domain.ExperimentStatus{"conclude": domain.ExperimentStatusConcluded,
			"archive": domain.ExperimentStatusStopped}},
		{"concluded", concluded, map[string]domain.ExperimentStatus{"archive": domain.ExperimentStatusConcluded}},
		{"archived draft", archivedDraft, nil},
		{"archived stopped", archivedStopped, nil},
	}
	for _, st := range statuses {
		for name, cmd := range commands {
			t.Run(st.name+"/"+name, func(t *testing.T) {
				e := foldExperiment(t, st.given...)
				got, err := cmd(e)
				want, ok := st.allowed[name]
				if !ok {
					wantError(t, err, domain.EConflict, "", got)
					return
				}
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				applyAll(e, got)
				if e.Status != want {
					t.Fatalf("status %s, want %s", e.Status, want)
				}
			})
		}
	}
}

func TestExperimentServing(t *testing.T) {
	e := foldExperiment(t, draft...)
	if e.Running() || e.Control() != "red" {
		t.Fatalf("draft: running %v control %q", e.Running(), e.Control())
	}
	want := domain.ExperimentSplit{Key: "checkout", Seed: "exp-seed-1", Allocation: 50000,
		Variations: []domain.WeightedVariation{{Variation: "red", Weight: 50000}, {Variation: "blue", Weight: 50000}}}
	if got := e.Split(); !reflect.DeepEqual(got, want) {
		t.Fatalf("split %+v", got)
	}
	if !foldExperiment(t, running...).Running() || foldExperiment(t, stopped...).Running() || foldExperiment(t, concluded...).Running() {
		t.Fatalf("Running() is wrong")
	}
	var none *domain.Experiment
	if none.Running() {
		t.Fatalf("a nil experiment runs")
	}
	if got := e.Goals(); !reflect.DeepEqual(got, []string{"signup", "clicks", "errors"}) {
		t.Fatalf("goals %v", got)
	}
}

func TestFoldExperiment(t *testing.T) {
	updated := checkoutRecorded()
	updated.Name = "Checkout colour"
	e, err := fold[domain.Experiment](record(t, domain.ExperimentStream(project, "checkout"),
		checkoutCreated(),
		&domain.ExperimentUpdated{ExperimentDefinition: updated},
		&domain.ExperimentStarted{At: at(2)},
		&domain.ExperimentStopped{At: at(3)},
		&domain.ExperimentConcluded{Variation: "blue", Reason: "won"},
		&domain.ExperimentArchived{},
	))
	if err != nil {
		t.Fatal(err)
	}
	want := domain.Experiment{Project: project, Key: "checkout", ExperimentDefinition: updated,
		Status: domain.ExperimentStatusConcluded, Archived: true, StartedAt: at(2), StoppedAt: at(3),
		Winner: "blue", ConclusionReason: "won", ConcludedAt: at(4), Version: 6, CreatedAt: t0, UpdatedAt: at(5)}
	if !reflect.DeepEqual(*e, want) {
		t.Fatalf("got  %+v\nwant %+v", *e, want)
	}
	info := domain.ExperimentInfoOf(e)
	if info.Live() || info.Status != domain.ExperimentStatusConcluded || !reflect.DeepEqual(info.Goals, []string{"signup", "clicks", "errors"}) {
		t.Fatalf("info %+v", info)
	}
	// The catalog built from aggregates answers the questions commands ask.
	run := foldExperiment(t, running...)
	sig := &domain.Goal{Key: "signup", Kind: domain.GoalConversion}
	c := domain.BuildExperimentCatalog(catalog(), []*domain.Goal{sig}, []*domain.Experiment{run})
	if got := c.RunningExperiments("color", "production"); !reflect.DeepEqual(got, []string{"checkout"}) {
		t.Errorf("running %v", got)
	}
	if got := c.ExperimentsUsingGoal("signup"); !reflect.DeepEqual(got, []string{"checkout"}) {
		t.Errorf("using signup %v", got)
	}
	if g, ok := c.Goal("signup"); !ok || g.Kind != domain.GoalConversion {
		t.Errorf("goal %+v", g)
	}
	var none *domain.ExperimentCatalog
	if none.RunningExperiments("color", "production") != nil || none.ExperimentsUsingGoal("signup") != nil {
		t.Errorf("nil catalog is not empty")
	}
	if _, ok := none.Experiment("checkout"); ok {
		t.Errorf("nil catalog has an experiment")
	}
	var zero domain.ExperimentCatalog
	zero.AddGoal(sig)
	zero.AddExperiment(run)
	if _, ok := zero.Experiment("checkout"); !ok {
		t.Errorf("AddExperiment on a zero catalog")
	}

	if e, err := fold[domain.Experiment](nil); e != nil || err != nil {
		t.Fatalf("empty stream: %v %v", e, err)
	}
	for name, stream := range map[string][]domain.RecordedEvent{
		"no creation event":          record(t, "experiment/acme/x", &domain.ExperimentStarted{At: t0}),
		"created twice":              record(t, "experiment/acme/x", checkoutCreated(), checkoutCreated()),
		"event of another aggregate": record(t, "experiment/acme/x", checkoutCreated(), &domain.GoalArchived{}),
	} {
		if _, err := fold[domain.Experiment](stream); err == nil {
			t.Errorf("%s: folded without error", name)
		}
	}
}

// TestExperimentStateDoesNotAliasEvents: the folded state must not share slices with the events.
func TestExperimentStateDoesNotAliasEvents(t *testing.T) {
	ev := checkoutCreated()
	e := &domain.Experiment{}
	e.Apply(ev)
	ev.Variations[0].Weight = 1
	ev.SecondaryGoals[0] = "changed"
	if e.Variations[0].Weight != 50000 || e.SecondaryGoals[0] != "clicks" {
		t.Fatalf("state aliases the event: %+v", e.ExperimentDefinition)
	}
}

// FuzzExperimentSplit feeds arbitrary variations, weights and allocations to the definition
// validator: it never panics, fails only with EInvalid and a field, and whatever it accepts serves
// weights of at least 1 adding up to BucketCount, exactly one control, and an allocation in
// 1..BucketCount, and validates again to itself.
func FuzzExperimentSplit(f *testing.F) {
	f.Add([]byte(`[{"variation":"red","control":true},{"variation":"blue"}]`), 50000)
	f.Add([]byte(`[{"variation":"red","control":true,"weight":1},{"variation":"blue","weight":99999}]`), 100000)
	f.Add([]byte(`[{"variation":"red","control":true},{"variation":"blue"},{"variation":"green"}]`), 1)
	f.Add([]byte(`[{"variation":"red","control":true,"weight":-1},{"variation":"blue","weight":100001}]`), 0)
	f.Add([]byte(`[{"variation":"red","weight":50000},{"variation":"red","control":true,"weight":50000}]`), -1)
	f.Add([]byte(`[{"variation":"red","control":true,"weight":9223372036854775807},{"variation":"blue","weight":9223372036854775807}]`), 100001)
	cat := expCatalog()
	f.Fuzz(func(t *testing.T, variations []byte, allocation int) {
		var vs []domain.ExperimentVariation
		if json.Unmarshal(variations, &vs) != nil {
			return
		}
		d := checkoutDef()
		d.Variations, d.Allocation = vs, allocation
		out, err := domain.ValidateExperimentDefinition(d, cat)
		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EInvalid || de.Field == "" {
				t.Fatalf("want an EInvalid *Error with a field, got %#v", err)
			}
			return
		}
		if out.Allocation < 1 || out.Allocation > domain.BucketCount {
			t.Fatalf("allocation %d accepted", out.Allocation)
		}
		sum, controls := 0, 0
		for _, v := range out.Variations {
			if v.Weight < 1 {
				t.Fatalf("weight %d accepted", v.Weight)
			}
			sum += v.Weight
			if v.Control {
				controls++
			}
		}
		if sum != domain.BucketCount || controls != 1 || len(out.Variations) != len(vs) {
			t.Fatalf("weights add up to %d with %d controls: %+v", sum, controls, out.Variations)
		}
		again, err := domain.ValidateExperimentDefinition(out, cat)
		if err != nil || !reflect.DeepEqual(again, out) {
			t.Fatalf("validating a validated definition changed it (%v)", err)
		}
		e := foldExperiment(t, &domain.ExperimentCreated{Project: project, Key: "checkout", ExperimentDefinition: out})
		split := e.Split()
		total := 0
		for _, w := range split.Variations {
			total += w.Weight
		}
		if total != domain.BucketCount || split.Allocation != out.Allocation {
			t.Fatalf("split %+v", split)
		}
	})
}
