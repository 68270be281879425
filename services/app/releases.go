package app

import (
	"context"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
)

// CreatePipeline creates a release pipeline: a named template of stages.
type CreatePipeline struct {
	Project, Key, Name string
	Stages             []domain.PipelineStage
}

// CreatePipeline runs CreatePipeline.
func (c *Commands) CreatePipeline(ctx context.Context, m Meta, cmd CreatePipeline) (*domain.Pipeline, int64, error) {
	if !domain.ValidKey(cmd.Key) {
		return nil, 0, invalidKey("key")
	}
	ec, err := c.q.ExperimentCatalog(ctx, cmd.Project)
	if err != nil {
		return nil, 0, err
	}
	stages, err := domain.ValidatePipelineStages(cmd.Stages, ec)
	if err != nil {
		return nil, 0, err
	}
	m.Expected = Version(0)
	p, v, err := execute(ctx, c.c, domain.PipelineStream(cmd.Project, cmd.Key), m, func(*domain.Pipeline) ([]domain.Event, error) {
		return domain.CreatePipeline(cmd.Project, cmd.Key, cmd.Name, stages)
	})
	if err != nil && domain.ErrorCode(err) == domain.EConflict && !IsDuplicateCommand(err) {
		return nil, 0, &domain.Error{Code: domain.EConflict, Field: "key", Message: "pipeline " + cmd.Key + " already exists"}
	}
	return p, v, err
}

// StartRelease puts a flag through a pipeline; the scheduler then advances it stage by stage.
type StartRelease struct {
	Project  string
	ID       string // generated (UUIDv7) when empty
	Pipeline string
	Flag     string
}

// StartRelease runs StartRelease.
func (c *Commands) StartRelease(ctx context.Context, m Meta, cmd StartRelease) (*domain.Release, int64, error) {
	id, err := newDeliveryID(cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	if len(id) > 80 {
		return nil, 0, domain.Invalid("id", "a release id has at most 80 characters (its stages' rollouts are named after it)")
	}
	if !domain.ValidKey(cmd.Pipeline) {
		return nil, 0, invalidKey("pipeline")
	}
	p, _, err := load[domain.Pipeline](ctx, c.c, domain.PipelineStream(cmd.Project, cmd.Pipeline))
	if err != nil {
		return nil, 0, err
	}
	if p == nil {
		return nil, 0, domain.Invalid("pipeline", "unknown pipeline %q", cmd.Pipeline)
	}
	f, err := c.q.optionalFlag(ctx, cmd.Project, cmd.Flag)
	if err != nil {
		return nil, 0, err
	}
	m.Expected = Version(0)
	r, v, err := execute(ctx, c.c, domain.ReleaseStream(cmd.Project, id), m, func(*domain.Release) ([]domain.Event, error) {
		return domain.StartRelease(cmd.Project, id, p, f)
	})
	return r, v, idTaken(err, "release", id)
}

// ReleaseStage names the current stage of a release (Stage guards against acting on a stage that
// has moved on meanwhile).
type ReleaseStage struct {
	Project, ID string
	Stage       int
	Reason      string
}

func (c *Commands) onRelease(ctx context.Context, m Meta, project, id string, decide func(*domain.Release) ([]domain.Event, error)) (*domain.Release, int64, error) {
	return existing(ctx, c.c, domain.ReleaseStream(project, id), m, notFound("release not found"), decide)
}

// ApproveReleaseStage approves the gate of the current stage.
type ApproveReleaseStage ReleaseStage

// ApproveReleaseStage runs ApproveReleaseStage.
func (c *Commands) ApproveReleaseStage(ctx context.Context, m Meta, cmd ApproveReleaseStage) (*domain.Release, int64, error) {
	return c.onRelease(ctx, m, cmd.Project, cmd.ID, func(r *domain.Release) ([]domain.Event, error) {
		return r.Approve(cmd.Stage, c.c.now())
	})
}

// PauseRelease pauses a release and the rollout its stage runs, if any.
type PauseRelease struct{ Project, ID, Reason string }

// PauseRelease runs PauseRelease: the rollout first (a paused release must not keep stepping).
func (c *Commands) PauseRelease(ctx context.Context, m Meta, cmd PauseRelease) (*domain.Release, int64, error) {
	r, _, err := c.q.Release(ctx, cmd.Project, cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	if ro := r.CurrentRollout(); ro != "" && r.Status == domain.ReleaseRunning {
		rm := releaseOwn(m, cmd.ID)
		rm.Expected, rm.Retries = nil, 3
		if _, _, err := c.PauseRollout(ctx, rm, PauseRollout{Project: cmd.Project, ID: ro, Reason: cmd.Reason}); err != nil &&
			domain.ErrorCode(err) != domain.EConflict {
			return nil, 0, err
		}
	}
	return c.onRelease(ctx, m, cmd.Project, cmd.ID, func(r *domain.Release) ([]domain.Event, error) {
		return r.Pause(cmd.Reason, c.c.now())
	})
}

// ResumeRelease resumes a paused release and its stage's rollout if that is paused.
type ResumeRelease struct{ Project, ID string }

// ResumeRelease runs ResumeRelease.
func (c *Commands) ResumeRelease(ctx context.Context, m Meta, cmd ResumeRelease) (*domain.Release, int64, error) {
	r, _, err := c.q.Release(ctx, cmd.Project, cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	if ro := r.CurrentRollout(); ro != "" && r.Status == domain.ReleasePausedSt {
		rollout, _, err := c.q.Rollout(ctx, cmd.Project, ro)
		if err != nil {
			return nil, 0, err
		}
		if rollout.Status == domain.RolloutStatusPaused {
			rm := releaseOwn(m, cmd.ID)
			rm.Expected = nil
			if _, _, err := c.ResumeRollout(ctx, rm, ResumeRollout{Project: cmd.Project, ID: ro}); err != nil {
				return nil, 0, err
			}
		}
	}
	return c.onRelease(ctx, m, cmd.Project, cmd.ID, func(r *domain.Release) ([]domain.Event, error) {
		return r.Resume(c.c.now())
	})
}

// SkipReleaseStage skips the current stage (its rollout, if any, must have ended: abort it
// first) and goes on to the next.
type SkipReleaseStage ReleaseStage

// SkipReleaseStage runs SkipReleaseStage.
func (c *Commands) SkipReleaseStage(ctx context.Context, m Meta, cmd SkipReleaseStage) (*domain.Release, int64, error) {
	return c.onRelease(ctx, m, cmd.Project, cmd.ID, func(r *domain.Release) ([]domain.Event, error) {
		var rollout *domain.Rollout
		if ro := r.CurrentRollout(); ro != "" {
			var err error
			if rollout, _, err = load[domain.Rollout](ctx, c.c, domain.RolloutStream(cmd.Project, ro)); err != nil {
				return nil, err
			}
		}
		return r.Skip(cmd.Stage, cmd.Reason, rollout, c.c.now())
	})
}

// AbortRelease aborts the rollout of the current stage, if one is active (restoring its starting
// default), then the release.
type AbortRelease struct{ Project, ID, Reason string }

// AbortRelease runs AbortRelease.
func (c *Commands) AbortRelease(ctx context.Context, m Meta, cmd AbortRelease) (*domain.Release, int64, error) {
	r, _, err := c.q.Release(ctx, cmd.Project, cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	if ro := r.CurrentRollout(); ro != "" && r.Active() {
		rollout, _, err := c.q.Rollout(ctx, cmd.Project, ro)
		if err != nil {
			return nil, 0, err
		}
		if rollout.Active() {
			rm := releaseOwn(m, cmd.ID)
			rm.Expected = nil
			if _, _, err := c.AbortRollout(ctx, rm, AbortRollout{Project: cmd.Project, ID: ro, Reason: cmd.Reason}); err != nil &&
				!IsDuplicateCommand(err) {
				return nil, 0, err
			}
		}
	}
	return c.onRelease(ctx, m, cmd.Project, cmd.ID, func(r *domain.Release) ([]domain.Event, error) {
		return r.Abort(cmd.Reason, c.c.now())
	})
}

// RecordRelease appends release events the scheduler decided (Release.Advance), at the version
// it decided them from.
type RecordRelease struct {
	Release *domain.Release
	Events  []domain.Event
}

// RecordRelease runs RecordRelease.
func (c *Commands) RecordRelease(ctx context.Context, m Meta, cmd RecordRelease) error {
	r := cmd.Release
	return record[domain.Release](ctx, c.c, domain.ReleaseStream(r.Project, r.ID), r.Version, m, cmd.Events)
}

// Pipeline returns a release pipeline and its version.
func (q *Queries) Pipeline(ctx context.Context, project, key string) (*domain.Pipeline, int64, error) {
	return mustLoad[domain.Pipeline](ctx, q.c, domain.PipelineStream(project, key), "pipeline "+key)
}

// Release returns a release and its version.
func (q *Queries) Release(ctx context.Context, project, id string) (*domain.Release, int64, error) {
	return mustLoad[domain.Release](ctx, q.c, domain.ReleaseStream(project, id), "release "+id)
}

// ReleaseAt returns a release as it was at a moment (time travel), with its version then.
func (q *Queries) ReleaseAt(ctx context.Context, project, id string, at time.Time) (*domain.Release, int64, error) {
	stream := domain.ReleaseStream(project, id)
	events, err := q.c.store.LoadUntil(ctx, stream, at)
	if err != nil {
		return nil, 0, err
	}
	if len(events) == 0 {
		return nil, 0, domain.Errorf(domain.ENotFound, "release %q did not exist in project %q at %s", id, project, at.Format(time.RFC3339))
	}
	r, err := fold[domain.Release](stream, events)
	if err != nil {
		return nil, 0, err
	}
	return r, events[len(events)-1].Version, nil
}

// ListReleases is one page of releases (filters: flag, environment of the current stage, status).
func (q *Queries) ListReleases(ctx context.Context, lq delivery.ListQuery) ([]*domain.Release, string, error) {
	return delivery.ListReleases(ctx, q.c.pool, lq)
}

// ListPipelines is one page of pipelines.
func (q *Queries) ListPipelines(ctx context.Context, lq delivery.ListQuery) ([]*domain.Pipeline, string, error) {
	return delivery.ListPipelines(ctx, q.c.pool, lq)
}

// releaseOwn marks a release's own command on its rollout as passing the four-eyes gate: release
// pipelines are not gated yet (docs/change-requests.md), and a person's pause, resume or abort of
// a release must move its rollout with it, not leave the two apart while a change request waits.
func releaseOwn(m Meta, release string) Meta {
	m.applying = "release/" + release
	return m
}
