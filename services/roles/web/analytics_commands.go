package web

// The analytics pages' door to the application (issue 17, part A): flag insights and stale flags
// from the telemetry rollups, goals, experiments and their reports. Commands run through the
// application layer (services/app) like every other entry point; reports, history and the plan
// come from the experiment analyzer (services/roles/analysis), the same code the REST API answers
// with, so the numbers on the pages are the API's.

import (
	"context"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/roles/analysis"
)

// AnalyticsCommands is what the insights, goals and experiment pages ask of the application.
// Errors as Commands'; EUnavailable when the server has no experiment analyzer.
type AnalyticsCommands interface {
	// FlagStats is a flag's evaluations per variation over q's range, from the rollup of q's
	// interval (the REST API's GET …/flags/{flag}/stats).
	FlagStats(ctx context.Context, q telemetry.StatsQuery, flag string) (*telemetry.FlagStats, error)
	// FlagsActivity lists live flags with their last evaluation; with staleSince, only those not
	// evaluated since (the REST API's stale-flags).
	FlagsActivity(ctx context.Context, project, env string, staleSince *time.Time) ([]telemetry.FlagActivity, error)
	// VariationsServed is the evaluations per variation of each flag since a moment (daily rollup).
	VariationsServed(ctx context.Context, project, env string, since time.Time) (map[string]telemetry.Served, error)
	ArchiveFlag(ctx context.Context, meta domain.Metadata, project, flag string, expected int64) (*domain.Flag, error)

	Goals(ctx context.Context, project string) ([]*domain.Goal, error)
	Goal(ctx context.Context, project, goal string) (*domain.Goal, error)
	CreateGoal(ctx context.Context, meta domain.Metadata, in domain.NewGoal) (*domain.Goal, error)
	UpdateGoal(ctx context.Context, meta domain.Metadata, project, goal string, expected int64, s domain.GoalSettings) (*domain.Goal, error)
	GoalStats(ctx context.Context, q telemetry.StatsQuery, goal, subjectKind, subject string) (*telemetry.GoalStats, error)

	Experiments(ctx context.Context, project string) ([]*domain.Experiment, error)
	Experiment(ctx context.Context, project, experiment string) (*domain.Experiment, error)
	CreateExperiment(ctx context.Context, meta domain.Metadata, in domain.NewExperiment) (*domain.Experiment, error)
	StartExperiment(ctx context.Context, meta domain.Metadata, project, experiment string, expected int64) (*domain.Experiment, error)
	StopExperiment(ctx context.Context, meta domain.Metadata, project, experiment string, expected int64) (*domain.Experiment, error)
	ConcludeExperiment(ctx context.Context, meta domain.Metadata, project, experiment string, expected int64, variation, reason string, applyToFlag bool) (*domain.Experiment, error)
	// AnalyzeExperiment analyses now and stores the result (POST …/analyze).
	AnalyzeExperiment(ctx context.Context, project, experiment string) error
	// ExperimentReport is the latest stored analysis (GET …/results); ENotFound before the first.
	ExperimentReport(ctx context.Context, project, experiment string) (*analysis.Report, error)
	// ExperimentHistory is a goal's results over the analyses in [from, to) (GET …/results/history).
	ExperimentHistory(ctx context.Context, project, experiment, goal string, from, to time.Time) ([]analysis.Point, error)
	// PlanExperiment sizes an experiment (POST …/experiment-plan).
	PlanExperiment(ctx context.Context, project string, in analysis.PlanRequest) (*analysis.PlanResponse, error)
}

var _ AnalyticsCommands = (*AppCommands)(nil)

// WithAnalyzer gives the console the experiment analyzer (the platform's, shared with the REST
// API); without it the report, analyse and plan actions answer "unavailable".
func (a *AppCommands) WithAnalyzer(an *analysis.Analyzer) *AppCommands {
	a.analyzer = an
	return a
}

func (a *AppCommands) requireAnalyzer() error {
	if a.analyzer == nil {
		return domain.Errorf(domain.EUnavailable, "experiment analysis is not configured on this server")
	}
	return nil
}

// FlagStats reads the rollup of the query's interval.
func (a *AppCommands) FlagStats(ctx context.Context, q telemetry.StatsQuery, flag string) (*telemetry.FlagStats, error) {
	return telemetry.FlagEvaluations(ctx, a.pool, q, flag)
}

// FlagsActivity reads the catalog and the daily rollup.
func (a *AppCommands) FlagsActivity(ctx context.Context, project, env string, staleSince *time.Time) ([]telemetry.FlagActivity, error) {
	return telemetry.FlagsActivity(ctx, a.pool, project, env, staleSince)
}

// VariationsServed reads the daily rollup.
func (a *AppCommands) VariationsServed(ctx context.Context, project, env string, since time.Time) (map[string]telemetry.Served, error) {
	return telemetry.VariationsServed(ctx, a.pool, project, env, since)
}

// ArchiveFlag archives a flag (refused while something depends on it).
func (a *AppCommands) ArchiveFlag(ctx context.Context, m domain.Metadata, project, flag string, expected int64) (*domain.Flag, error) {
	f, _, err := a.app.Commands.ArchiveFlag(ctx, appMeta(m, expected), app.ArchiveFlag{Project: project, Flag: flag})
	return f, err
}

// Goals lists the live goals.
func (a *AppCommands) Goals(ctx context.Context, project string) ([]*domain.Goal, error) {
	return a.app.Queries.ListGoals(ctx, project, false)
}

// Goal loads a goal from its events.
func (a *AppCommands) Goal(ctx context.Context, project, goal string) (*domain.Goal, error) {
	g, _, err := a.app.Queries.Goal(ctx, project, goal)
	return g, err
}

// CreateGoal creates a goal.
func (a *AppCommands) CreateGoal(ctx context.Context, m domain.Metadata, in domain.NewGoal) (*domain.Goal, error) {
	g, _, err := a.app.Commands.CreateGoal(ctx, appMeta(m, AnyVersion), app.CreateGoal{Goal: in})
	return g, err
}

// UpdateGoal replaces a goal's settings.
func (a *AppCommands) UpdateGoal(ctx context.Context, m domain.Metadata, project, goal string, expected int64, s domain.GoalSettings) (*domain.Goal, error) {
	g, _, err := a.app.Commands.UpdateGoal(ctx, appMeta(m, expected), app.UpdateGoal{Project: project, Goal: goal,
		Edit: func(domain.GoalSettings) (domain.GoalSettings, error) { return s, nil }})
	return g, err
}

// GoalStats reads the goal rollups.
func (a *AppCommands) GoalStats(ctx context.Context, q telemetry.StatsQuery, goal, subjectKind, subject string) (*telemetry.GoalStats, error) {
	return telemetry.GoalConversions(ctx, a.pool, q, goal, subjectKind, subject)
}

// Experiments lists the live experiments.
func (a *AppCommands) Experiments(ctx context.Context, project string) ([]*domain.Experiment, error) {
	return a.app.Queries.ListExperiments(ctx, project, false)
}

// Experiment loads an experiment from its events.
func (a *AppCommands) Experiment(ctx context.Context, project, experiment string) (*domain.Experiment, error) {
	e, _, err := a.app.Queries.Experiment(ctx, project, experiment)
	return e, err
}

// CreateExperiment creates a draft experiment (a fresh seed when none is given).
func (a *AppCommands) CreateExperiment(ctx context.Context, m domain.Metadata, in domain.NewExperiment) (*domain.Experiment, error) {
	e, _, err := a.app.Commands.CreateExperiment(ctx, appMeta(m, AnyVersion), app.CreateExperiment{Project: in.Project, Key: in.Key,
		Definition: in.ExperimentDefinition})
	return e, err
}

// StartExperiment starts an experiment.
func (a *AppCommands) StartExperiment(ctx context.Context, m domain.Metadata, project, experiment string, expected int64) (*domain.Experiment, error) {
	e, _, err := a.app.Commands.StartExperiment(ctx, appMeta(m, expected), app.StartExperiment{Project: project, Experiment: experiment})
	return e, err
}

// StopExperiment stops a running experiment.
func (a *AppCommands) StopExperiment(ctx context.Context, m domain.Metadata, project, experiment string, expected int64) (*domain.Experiment, error) {
	e, _, err := a.app.Commands.StopExperiment(ctx, appMeta(m, expected), app.StopExperiment{Project: project, Experiment: experiment})
	return e, err
}

// ConcludeExperiment records the decision and optionally makes it the flag's default serve.
func (a *AppCommands) ConcludeExperiment(ctx context.Context, m domain.Metadata, project, experiment string, expected int64, variation, reason string, applyToFlag bool) (*domain.Experiment, error) {
	res, err := a.app.Commands.ConcludeExperiment(ctx, appMeta(m, expected), app.ConcludeExperiment{Project: project, Experiment: experiment,
		Variation: variation, Reason: reason, ApplyToFlag: applyToFlag})
	return res.Experiment, err
}

// AnalyzeExperiment runs the analyzer once.
func (a *AppCommands) AnalyzeExperiment(ctx context.Context, project, experiment string) error {
	if err := a.requireAnalyzer(); err != nil {
		return err
	}
	_, err := a.analyzer.Analyze(ctx, project, experiment)
	return err
}

// ExperimentReport reads the latest stored analysis.
func (a *AppCommands) ExperimentReport(ctx context.Context, project, experiment string) (*analysis.Report, error) {
	if err := a.requireAnalyzer(); err != nil {
		return nil, err
	}
	return a.analyzer.Latest(ctx, project, experiment)
}

// ExperimentHistory reads a goal's stored results over time.
func (a *AppCommands) ExperimentHistory(ctx context.Context, project, experiment, goal string, from, to time.Time) ([]analysis.Point, error) {
	if err := a.requireAnalyzer(); err != nil {
		return nil, err
	}
	return a.analyzer.History(ctx, project, experiment, goal, from, to)
}

// PlanExperiment sizes an experiment at the flag's measured traffic.
func (a *AppCommands) PlanExperiment(ctx context.Context, project string, in analysis.PlanRequest) (*analysis.PlanResponse, error) {
	if err := a.requireAnalyzer(); err != nil {
		return nil, err
	}
	return a.analyzer.Plan(ctx, project, in)
}
