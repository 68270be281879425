package domain_test

import (
	"math"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

func TestExperimentAnalysisSettings(t *testing.T) {
	create := func(a domain.ExperimentAnalysis) ([]domain.Event, error) {
		d := checkoutDef()
		d.Analysis = a
		return domain.CreateExperiment(domain.NewExperiment{Project: project, Key: "checkout", ExperimentDefinition: d}, expCatalog())
	}
	prior := &domain.GoalPrior{Alpha: 2, Beta: 20}
	ok := domain.ExperimentAnalysis{Engine: domain.EngineFrequentist, Alpha: 0.01, Sequential: true, SequentialTuning: 10000,
		Correction: domain.CorrectionHolm, CUPEDLookbackDays: 14,
		Goals:        []domain.GoalAnalysis{{Goal: "signup", ConversionWindowHours: 72, Prior: prior}, {Goal: "errors"}},
		RatioMetrics: []domain.RatioMetric{{Key: "clicks-per-signup", Numerator: "clicks", Denominator: "signup"}}}
	evs, err := create(ok)
	if err != nil {
		t.Fatal(err)
	}
	got := evs[0].(*domain.ExperimentCreated).Analysis
	if got.Engine != domain.EngineFrequentist || got.GoalSettings("signup").ConversionWindowHours != 72 || got.GoalSettings("clicks").Goal != "clicks" {
		t.Fatalf("recorded %+v", got)
	}
	prior.Alpha = 99 // the recorded definition does not alias the input
	if got.Goals[0].Prior.Alpha != 2 {
		t.Fatalf("prior aliased: %+v", got.Goals[0].Prior)
	}
	if z := (domain.ExperimentAnalysis{}); z.EffectiveAlpha() != 0.05 || z.EffectiveSequentialTuning() != 5000 {
		t.Fatalf("defaults %v %v", z.EffectiveAlpha(), z.EffectiveSequentialTuning())
	}
	for _, tc := range []struct {
		name  string
		a     domain.ExperimentAnalysis
		field string
	}{
		{"engine", domain.ExperimentAnalysis{Engine: "bootstrap"}, "analysis.engine"},
		{"alpha too large", domain.ExperimentAnalysis{Alpha: 0.5}, "analysis.alpha"},
		{"alpha NaN", domain.ExperimentAnalysis{Alpha: math.NaN()}, "analysis.alpha"},
		{"tuning", domain.ExperimentAnalysis{SequentialTuning: -1}, "analysis.sequential_tuning"},
		{"correction", domain.ExperimentAnalysis{Correction: "bonferroni"}, "analysis.correction"},
		{"lookback", domain.ExperimentAnalysis{CUPEDLookbackDays: 181}, "analysis.cuped_lookback_days"},
		{"goal not measured", domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "nope"}}}, "analysis.goals[0].goal"},
		{"goal twice", domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "signup"}, {Goal: "signup"}}}, "analysis.goals[1].goal"},
		{"window", domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "signup", ConversionWindowHours: math.Inf(1)}}}, "analysis.goals[0].conversion_window_hours"},
		{"prior", domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "signup", Prior: &domain.GoalPrior{Beta: -1}}}}, "analysis.goals[0].prior.beta"},
		{"ratio of an unmeasured goal", domain.ExperimentAnalysis{RatioMetrics: []domain.RatioMetric{{Key: "r", Numerator: "clicks", Denominator: "nope"}}}, "analysis.ratio_metrics[0].denominator"},
		{"ratio of a goal over itself", domain.ExperimentAnalysis{RatioMetrics: []domain.RatioMetric{{Key: "r", Numerator: "clicks", Denominator: "clicks"}}}, "analysis.ratio_metrics[0].denominator"},
		{"quantile of a conversion goal", domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "signup", Quantile: 0.5}}}, "analysis.goals[0].quantile"},
		{"quantile of 1", domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "signup", Quantile: 1}}}, "analysis.goals[0].quantile"},
		{"quantile NaN", domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "signup", Quantile: math.NaN()}}}, "analysis.goals[0].quantile"},
		{"ratio twice", domain.ExperimentAnalysis{RatioMetrics: []domain.RatioMetric{{Key: "r", Numerator: "clicks", Denominator: "signup"}, {Key: "r", Numerator: "signup", Denominator: "clicks"}}}, "analysis.ratio_metrics[1].key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := create(tc.a)
			wantError(t, err, domain.EInvalid, tc.field, evs)
		})
	}
}

// ChangeAnalysis: the one change a started experiment allows, validated as at creation (a
// quantile needs a value goal), recorded with the previous settings, nothing when identical;
// refused for a draft (its definition changes instead), a concluded or an archived experiment.
func TestExperimentChangeAnalysis(t *testing.T) {
	def := checkoutRecorded()
	def.SecondaryGoals = []string{"clicks", "revenue"}
	created := &domain.ExperimentCreated{Project: project, Key: "checkout", ExperimentDefinition: def}
	running := foldExperiment(t, created, &domain.ExperimentStarted{At: at(1)})
	next := domain.ExperimentAnalysis{Engine: domain.EngineFrequentist, Alpha: 0.1,
		Goals: []domain.GoalAnalysis{{Goal: "revenue", Quantile: 0.9, ConversionWindowHours: 24}}}
	evs, err := running.ChangeAnalysis(next, expCatalog())
	if err != nil || len(evs) != 1 {
		t.Fatalf("change: %v %v", evs, err)
	}
	ev := evs[0].(*domain.ExperimentAnalysisChanged)
	if ev.Analysis.GoalSettings("revenue").Quantile != 0.9 || ev.Previous.Engine != "" {
		t.Fatalf("recorded %+v", ev)
	}
	changed := foldExperiment(t, created, &domain.ExperimentStarted{At: at(1)}, ev)
	if changed.Analysis.Engine != domain.EngineFrequentist || changed.Status != domain.ExperimentStatusRunning || changed.Version != 3 {
		t.Fatalf("after the change %+v", changed)
	}
	if evs, err := changed.ChangeAnalysis(next, expCatalog()); err != nil || len(evs) != 0 {
		t.Fatalf("identical settings: %v %v", evs, err)
	}
	for _, tc := range []struct {
		name  string
		a     domain.ExperimentAnalysis
		field string
	}{
		{"quantile of a count goal", domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "clicks", Quantile: 0.5}}}, "analysis.goals[0].quantile"},
		{"engine", domain.ExperimentAnalysis{Engine: "bootstrap"}, "analysis.engine"},
		{"goal not measured", domain.ExperimentAnalysis{Goals: []domain.GoalAnalysis{{Goal: "nope"}}}, "analysis.goals[0].goal"},
	} {
		evs, err := running.ChangeAnalysis(tc.a, expCatalog())
		wantError(t, err, domain.EInvalid, tc.field, evs)
	}
	stopped := foldExperiment(t, created, &domain.ExperimentStarted{At: at(1)}, &domain.ExperimentStopped{At: at(2)})
	if evs, err := stopped.ChangeAnalysis(next, expCatalog()); err != nil || len(evs) != 1 {
		t.Fatalf("stopped: %v %v", evs, err)
	}
	for name, e := range map[string]*domain.Experiment{
		"draft":     foldExperiment(t, created),
		"concluded": foldExperiment(t, created, &domain.ExperimentStarted{At: at(1)}, &domain.ExperimentConcluded{Variation: "blue", Reason: "won"}),
		"archived":  foldExperiment(t, created, &domain.ExperimentArchived{}),
	} {
		t.Run(name, func(t *testing.T) {
			evs, err := e.ChangeAnalysis(next, expCatalog())
			wantError(t, err, domain.EConflict, "", evs)
		})
	}
}
