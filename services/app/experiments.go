package app

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
)

// CreateGoal creates a goal in an existing project.
type CreateGoal struct {
	Goal domain.NewGoal // Goal.Project is the project
}

// CreateGoal runs CreateGoal.
func (c *Commands) CreateGoal(ctx context.Context, m Meta, cmd CreateGoal) (*domain.Goal, int64, error) {
	in := cmd.Goal
	if !domain.ValidKey(in.Key) {
		return nil, 0, invalidKey("key")
	}
	if _, _, err := c.q.Project(ctx, in.Project); err != nil {
		return nil, 0, err
	}
	m.Expected = Version(0)
	g, v, err := execute(ctx, c.c, domain.GoalStream(in.Project, in.Key), m, func(*domain.Goal) ([]domain.Event, error) {
		return domain.CreateGoal(in)
	})
	return g, v, alreadyExists(err, "goal", in.Key)
}

func (c *Commands) onGoal(ctx context.Context, m Meta, project, goal string, decide func(*domain.Goal, *domain.ExperimentCatalog) ([]domain.Event, error)) (*domain.Goal, int64, error) {
	cat, err := c.q.ExperimentCatalog(ctx, project)
	if err != nil {
		return nil, 0, err
	}
	return existing(ctx, c.c, domain.GoalStream(project, goal), m, notFound("goal %q not found in project %q", goal, project),
		func(g *domain.Goal) ([]domain.Event, error) { return decide(g, cat) })
}

// UpdateGoal changes a goal's settings; Edit returns them given the current ones.
type UpdateGoal struct {
	Project, Goal string
	Edit          func(current domain.GoalSettings) (domain.GoalSettings, error)
}

// UpdateGoal runs UpdateGoal.
func (c *Commands) UpdateGoal(ctx context.Context, m Meta, cmd UpdateGoal) (*domain.Goal, int64, error) {
	return c.onGoal(ctx, m, cmd.Project, cmd.Goal, func(g *domain.Goal, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
		s, err := cmd.Edit(domain.GoalSettings{Name: g.Name, Description: g.Description, Direction: g.Direction, ValueCap: g.ValueCap})
		if err != nil {
			return nil, err
		}
		return g.Update(s)
	})
}

// GoalRef names one goal.
type GoalRef struct{ Project, Goal string }

// ArchiveGoal archives a goal (refused while a running experiment measures it).
type ArchiveGoal GoalRef

// ArchiveGoal runs ArchiveGoal.
func (c *Commands) ArchiveGoal(ctx context.Context, m Meta, cmd ArchiveGoal) (*domain.Goal, int64, error) {
	return c.onGoal(ctx, m, cmd.Project, cmd.Goal, func(g *domain.Goal, cat *domain.ExperimentCatalog) ([]domain.Event, error) {
		return g.Archive(cat)
	})
}

// RestoreGoal brings an archived goal back.
type RestoreGoal GoalRef

// RestoreGoal runs RestoreGoal.
func (c *Commands) RestoreGoal(ctx context.Context, m Meta, cmd RestoreGoal) (*domain.Goal, int64, error) {
	return c.onGoal(ctx, m, cmd.Project, cmd.Goal, func(g *domain.Goal, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
		return g.Restore()
	})
}

// CreateExperiment creates a draft experiment (its bucketing seed is generated when empty).
type CreateExperiment struct {
	Project, Key string
	Definition   domain.ExperimentDefinition
}

// CreateExperiment runs CreateExperiment.
func (c *Commands) CreateExperiment(ctx context.Context, m Meta, cmd CreateExperiment) (*domain.Experiment, int64, error) {
	if !domain.ValidKey(cmd.Key) {
		return nil, 0, invalidKey("key")
	}
	cat, err := c.q.ExperimentCatalog(ctx, cmd.Project)
	if err != nil {
		return nil, 0, err
	}
	if cmd.Definition.Seed == "" {
		cmd.Definition.Seed = NewID(8) // the experiment's own bucketing seed
	}
	m.Expected = Version(0)
	e, v, err := execute(ctx, c.c, domain.ExperimentStream(cmd.Project, cmd.Key), m, func(*domain.Experiment) ([]domain.Event, error) {
		return domain.CreateExperiment(domain.NewExperiment{Project: cmd.Project, Key: cmd.Key, ExperimentDefinition: cmd.Definition}, cat)
	})
	return e, v, alreadyExists(err, "experiment", cmd.Key)
}

func (c *Commands) onExperiment(ctx context.Context, m Meta, project, key string, decide func(*domain.Experiment, *domain.ExperimentCatalog) ([]domain.Event, error)) (*domain.Experiment, int64, error) {
	cat, err := c.q.ExperimentCatalog(ctx, project)
	if err != nil {
		return nil, 0, err
	}
	return existing(ctx, c.c, domain.ExperimentStream(project, key), m, notFound("experiment %q not found in project %q", key, project),
		func(e *domain.Experiment) ([]domain.Event, error) { return decide(e, cat) })
}

// UpdateExperiment replaces a draft experiment's definition.
type UpdateExperiment struct {
	Project, Experiment string
	Definition          domain.ExperimentDefinition
}

// UpdateExperiment runs UpdateExperiment.
func (c *Commands) UpdateExperiment(ctx context.Context, m Meta, cmd UpdateExperiment) (*domain.Experiment, int64, error) {
	return c.onExperiment(ctx, m, cmd.Project, cmd.Experiment, func(e *domain.Experiment, cat *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.UpdateDraft(cmd.Definition, cat)
	})
}

// ChangeExperimentAnalysis replaces the analysis settings of a running or stopped experiment
// (domain.Experiment.ChangeAnalysis): the next analysis uses them.
type ChangeExperimentAnalysis struct {
	Project, Experiment string
	Analysis            domain.ExperimentAnalysis
}

// ChangeExperimentAnalysis runs ChangeExperimentAnalysis.
func (c *Commands) ChangeExperimentAnalysis(ctx context.Context, m Meta, cmd ChangeExperimentAnalysis) (*domain.Experiment, int64, error) {
	return c.onExperiment(ctx, m, cmd.Project, cmd.Experiment, func(e *domain.Experiment, cat *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.ChangeAnalysis(cmd.Analysis, cat)
	})
}

// ExperimentRef names one experiment.
type ExperimentRef struct{ Project, Experiment string }

// StartExperiment starts an experiment: its flag starts splitting users.
type StartExperiment ExperimentRef

// StartExperiment runs StartExperiment.
func (c *Commands) StartExperiment(ctx context.Context, m Meta, cmd StartExperiment) (*domain.Experiment, int64, error) {
	return c.onExperiment(ctx, m, cmd.Project, cmd.Experiment, func(e *domain.Experiment, cat *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.Start(cat, c.c.now())
	})
}

// StopExperiment stops a running experiment.
type StopExperiment ExperimentRef

// StopExperiment runs StopExperiment.
func (c *Commands) StopExperiment(ctx context.Context, m Meta, cmd StopExperiment) (*domain.Experiment, int64, error) {
	return c.onExperiment(ctx, m, cmd.Project, cmd.Experiment, func(e *domain.Experiment, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.Stop(c.c.now())
	})
}

// ArchiveExperiment archives an experiment.
type ArchiveExperiment ExperimentRef

// ArchiveExperiment runs ArchiveExperiment.
func (c *Commands) ArchiveExperiment(ctx context.Context, m Meta, cmd ArchiveExperiment) (*domain.Experiment, int64, error) {
	return c.onExperiment(ctx, m, cmd.Project, cmd.Experiment, func(e *domain.Experiment, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.Archive()
	})
}

// ConcludeExperiment records the decision on an experiment and, with ApplyToFlag, makes the
// chosen variation the flag's default serve in the experiment's environment: two commands on two
// streams, each audited.
type ConcludeExperiment struct {
	Project, Experiment string
	Variation, Reason   string
	ApplyToFlag         bool
}

// Concluded is a concluded experiment and, when applied, its flag after the change.
type Concluded struct {
	Experiment  *domain.Experiment
	Flag        *domain.Flag // nil unless ApplyToFlag
	FlagVersion int64
}

// ConcludeExperiment runs ConcludeExperiment. The flag's change is attributed to the same actor,
// with the conclusion as its reason, and applies whatever the flag's version (Meta.Expected is
// the experiment's).
func (c *Commands) ConcludeExperiment(ctx context.Context, m Meta, cmd ConcludeExperiment) (Concluded, error) {
	e, _, err := c.onExperiment(ctx, m, cmd.Project, cmd.Experiment, func(e *domain.Experiment, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.Conclude(cmd.Variation, cmd.Reason, c.c.now())
	})
	if err != nil || !cmd.ApplyToFlag {
		return Concluded{Experiment: e}, err
	}
	fm := m
	fm.Expected = nil
	fm.Reason = "concluded experiment " + e.Key + ": " + cmd.Reason
	f, v, err := c.SetDefaultServe(ctx, fm, SetDefaultServe{Project: e.Project, Flag: e.Flag, Environment: e.Environment,
		Variation: cmd.Variation})
	if err != nil {
		return Concluded{}, err
	}
	return Concluded{Experiment: e, Flag: f, FlagVersion: v}, nil
}
