package domain

import "time"

// Events of the experimentation aggregates: goals and experiments. As everywhere, each event's JSON
// is stored forever: add fields, never rename them.

// Goal stream: goal/<project>/<goal>.
type GoalCreated struct {
	Project     string        `json:"project"`
	Key         string        `json:"key"`
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Kind        GoalKind      `json:"kind"`
	Direction   GoalDirection `json:"direction"`
	// ValueCap caps each user's total of a value goal before analysis; 0 is no cap.
	ValueCap float64 `json:"value_cap,omitempty"`
}

// GoalUpdated replaces the goal's settings (its kind never changes).
type GoalUpdated struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Direction   GoalDirection `json:"direction"`
	ValueCap    float64       `json:"value_cap,omitempty"`
}

type GoalArchived struct{}
type GoalRestored struct{}

// Experiment stream: experiment/<project>/<experiment>.
type ExperimentCreated struct {
	Project string `json:"project"`
	Key     string `json:"key"`
	ExperimentDefinition
}

// ExperimentUpdated replaces the whole definition of a draft.
type ExperimentUpdated struct {
	ExperimentDefinition
}

// ExperimentStarted starts serving the experiment's split; At opens the analysis window.
type ExperimentStarted struct {
	At time.Time `json:"at"`
}

// ExperimentStopped stops serving the split; At closes the analysis window.
type ExperimentStopped struct {
	At time.Time `json:"at"`
}

// ExperimentAnalysisChanged replaces the analysis settings of a started experiment (see
// Experiment.ChangeAnalysis); Previous is what they were, for the audit trail.
type ExperimentAnalysisChanged struct {
	Analysis ExperimentAnalysis `json:"analysis"`
	Previous ExperimentAnalysis `json:"previous"`
}

// ExperimentConcluded records the decision: the variation chosen (one of those in play) and why.
type ExperimentConcluded struct {
	Variation string `json:"variation"`
	Reason    string `json:"reason"`
}

type ExperimentArchived struct{}

func (*GoalCreated) EventType() string         { return "GoalCreated" }
func (*GoalUpdated) EventType() string         { return "GoalUpdated" }
func (*GoalArchived) EventType() string        { return "GoalArchived" }
func (*GoalRestored) EventType() string        { return "GoalRestored" }
func (*ExperimentCreated) EventType() string   { return "ExperimentCreated" }
func (*ExperimentUpdated) EventType() string   { return "ExperimentUpdated" }
func (*ExperimentStarted) EventType() string   { return "ExperimentStarted" }
func (*ExperimentStopped) EventType() string   { return "ExperimentStopped" }
func (*ExperimentConcluded) EventType() string { return "ExperimentConcluded" }
func (*ExperimentAnalysisChanged) EventType() string {
	return "ExperimentAnalysisChanged"
}
func (*ExperimentArchived) EventType() string { return "ExperimentArchived" }

func init() {
	register(
		func() Event { return new(GoalCreated) },
		func() Event { return new(GoalUpdated) },
		func() Event { return new(GoalArchived) },
		func() Event { return new(GoalRestored) },
		func() Event { return new(ExperimentCreated) },
		func() Event { return new(ExperimentUpdated) },
		func() Event { return new(ExperimentStarted) },
		func() Event { return new(ExperimentStopped) },
		func() Event { return new(ExperimentConcluded) },
		func() Event { return new(ExperimentAnalysisChanged) },
		func() Event { return new(ExperimentArchived) },
	)
}

// Stream ids of the experimentation aggregates (see FlagStream).
func GoalStream(project, goal string) string { return "goal/" + project + "/" + goal }
func ExperimentStream(project, experiment string) string {
	return "experiment/" + project + "/" + experiment
}
