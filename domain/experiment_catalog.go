package domain

import "slices"

// ExperimentCatalog is the reference data that goal, experiment and auto-ops commands validate
// against: the project's Catalog (environments, flags), its goals and its experiments. Like
// Catalog, the application layer fills it (by folding streams) and the domain only reads it; a nil
// *ExperimentCatalog, or a nil Catalog in it, behaves as an empty one.
type ExperimentCatalog struct {
	Catalog *Catalog
	// Goals by key, archived ones included.
	Goals map[string]GoalInfo
	// Experiments by key, archived ones included.
	Experiments map[string]ExperimentInfo
	// Rollouts that still have a say over a flag (scheduled, running or paused), by id.
	Rollouts map[string]RolloutInfo
}

// RolloutInfo is what experiment validation needs to know about an active rollout.
type RolloutInfo struct {
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
}

// GoalInfo is what validation needs to know about a goal.
type GoalInfo struct {
	Kind     GoalKind `json:"kind"`
	Archived bool     `json:"archived"`
}

// ExperimentInfo is what validation needs to know about an experiment.
type ExperimentInfo struct {
	Flag        string           `json:"flag"`
	Environment string           `json:"environment"`
	Status      ExperimentStatus `json:"status"`
	Archived    bool             `json:"archived"`
	// Goals are every goal the experiment measures: primary, secondary and guardrail.
	Goals []string `json:"goals"`
}

// NewExperimentCatalog returns an empty catalog over cat, ready to be filled.
func NewExperimentCatalog(cat *Catalog) *ExperimentCatalog {
	return &ExperimentCatalog{Catalog: cat, Goals: map[string]GoalInfo{}, Experiments: map[string]ExperimentInfo{}}
}

// BuildExperimentCatalog is a convenience for the application layer and tests.
func BuildExperimentCatalog(cat *Catalog, goals []*Goal, experiments []*Experiment) *ExperimentCatalog {
	c := NewExperimentCatalog(cat)
	for _, g := range goals {
		c.AddGoal(g)
	}
	for _, e := range experiments {
		c.AddExperiment(e)
	}
	return c
}

// AddGoal records (or replaces) a goal.
func (c *ExperimentCatalog) AddGoal(g *Goal) {
	if c.Goals == nil {
		c.Goals = map[string]GoalInfo{}
	}
	c.Goals[g.Key] = GoalInfoOf(g)
}

// AddExperiment records (or replaces) an experiment.
func (c *ExperimentCatalog) AddExperiment(e *Experiment) {
	if c.Experiments == nil {
		c.Experiments = map[string]ExperimentInfo{}
	}
	c.Experiments[e.Key] = ExperimentInfoOf(e)
}

// GoalInfoOf extracts the catalog entry of a goal.
func GoalInfoOf(g *Goal) GoalInfo { return GoalInfo{Kind: g.Kind, Archived: g.Archived} }

// ExperimentInfoOf extracts the catalog entry of an experiment.
func ExperimentInfoOf(e *Experiment) ExperimentInfo {
	return ExperimentInfo{Flag: e.Flag, Environment: e.Environment, Status: e.Status, Archived: e.Archived,
		Goals: e.Goals()}
}

// flags returns the project catalog (environments, flags); nil-safe.
func (c *ExperimentCatalog) flags() *Catalog {
	if c == nil {
		return nil
	}
	return c.Catalog
}

// Goal returns the catalog entry of a goal.
func (c *ExperimentCatalog) Goal(key string) (GoalInfo, bool) {
	if c == nil {
		return GoalInfo{}, false
	}
	g, ok := c.Goals[key]
	return g, ok
}

// Experiment returns the catalog entry of an experiment.
func (c *ExperimentCatalog) Experiment(key string) (ExperimentInfo, bool) {
	if c == nil {
		return ExperimentInfo{}, false
	}
	e, ok := c.Experiments[key]
	return e, ok
}

// Live reports whether the experiment still counts on its references: not archived, and draft,
// running or stopped (a concluded experiment is a finished record).
func (i ExperimentInfo) Live() bool {
	return !i.Archived && i.Status != ExperimentStatusConcluded
}

// ExperimentsUsingGoal returns the keys of the live experiments measuring goal, sorted.
func (c *ExperimentCatalog) ExperimentsUsingGoal(goal string) []string {
	if c == nil {
		return nil
	}
	return keysWhere(c.Experiments, func(_ string, e ExperimentInfo) bool {
		return e.Live() && slices.Contains(e.Goals, goal)
	})
}

// RunningExperiments returns the keys of the experiments running on flag in environment env,
// sorted.
// AddRollout records a rollout if it is active, and forgets it otherwise.
func (c *ExperimentCatalog) AddRollout(r *Rollout) {
	if r == nil || r.ID == "" {
		return
	}
	if !r.Active() {
		delete(c.Rollouts, r.ID)
		return
	}
	if c.Rollouts == nil {
		c.Rollouts = map[string]RolloutInfo{}
	}
	c.Rollouts[r.ID] = RolloutInfo{Flag: r.Flag, Environment: r.Environment}
}

// ActiveRollouts lists, sorted, the active rollouts of flag in env.
func (c *ExperimentCatalog) ActiveRollouts(flag, env string) []string {
	if c == nil {
		return nil
	}
	return keysWhere(c.Rollouts, func(_ string, r RolloutInfo) bool { return r.Flag == flag && r.Environment == env })
}

func (c *ExperimentCatalog) RunningExperiments(flag, env string) []string {
	if c == nil {
		return nil
	}
	return keysWhere(c.Experiments, func(_ string, e ExperimentInfo) bool {
		return !e.Archived && e.Status == ExperimentStatusRunning && e.Flag == flag && e.Environment == env
	})
}
