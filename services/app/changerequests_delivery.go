package app

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/vexil-flags/vexil/domain"
)

// Schedules and rollouts in a protected environment (issue 18): the scheduler carries them out
// later as a system actor, past approval, so a person's every change to them (create, edit and
// cancel a schedule; create, pause, resume and abort a rollout) is a change request like a toggle.
// The request's target is the schedule's or rollout's stream (optimistic concurrency is on it);
// its flag is theirs, so the flag page lists it among the flag's pending requests.

// decodeDeliveryProposal decodes the schedule and rollout commands a change request can carry;
// ok is false for any other command.
func (c *Commands) decodeDeliveryProposal(ctx context.Context, pc domain.ProposedChange) (p proposal, ok bool, err error) {
	bad := func(err error) (proposal, bool, error) {
		return proposal{}, true, fmt.Errorf("app: decode proposed %s: %w", pc.Command, err)
	}
	switch pc.Command {
	case "ScheduleChange":
		var cmd ScheduleChange
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		stream := domain.ScheduleStream(cmd.Project, cmd.ID)
		return proposal{project: cmd.Project, environment: cmd.Env, flag: cmd.Flag, stream: stream,
			previewTarget: func(ctx context.Context) (int64, json.RawMessage, json.RawMessage, error) {
				decide, err := c.scheduleChangeDecision(ctx, cmd)
				if err != nil {
					return 0, nil, nil, err
				}
				return previewNew[domain.ScheduledChange](ctx, c.c, stream, "scheduled change "+cmd.ID, decide)
			},
			run: func(ctx context.Context, m Meta) (int64, error) {
				_, v, err := c.ScheduleChange(ctx, m, cmd)
				return v, err
			}}, true, nil
	case "EditSchedule":
		var cmd EditSchedule
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		p, err := onExistingSchedule(ctx, c, cmd.Project, cmd.ID, func(ctx context.Context, sc *domain.ScheduledChange) ([]domain.Event, error) {
			decide, err := c.editScheduleDecision(ctx, cmd)
			if err != nil {
				return nil, err
			}
			return decide(sc)
		}, func(ctx context.Context, m Meta) (int64, error) {
			_, v, err := c.EditSchedule(ctx, m, cmd)
			return v, err
		})
		return p, true, err
	case "CancelSchedule":
		var cmd CancelSchedule
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		p, err := onExistingSchedule(ctx, c, cmd.Project, cmd.ID, func(_ context.Context, sc *domain.ScheduledChange) ([]domain.Event, error) {
			return cancelSchedule(sc)
		}, func(ctx context.Context, m Meta) (int64, error) {
			_, v, err := c.CancelSchedule(ctx, m, cmd)
			return v, err
		})
		return p, true, err
	case "CreateRollout":
		var cmd CreateRollout
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		stream := domain.RolloutStream(cmd.Project, cmd.ID)
		return proposal{project: cmd.Project, environment: cmd.Env, flag: cmd.Flag, stream: stream,
			previewTarget: func(ctx context.Context) (int64, json.RawMessage, json.RawMessage, error) {
				decide, err := c.createRolloutDecision(ctx, cmd)
				if err != nil {
					return 0, nil, nil, err
				}
				return previewNew[domain.Rollout](ctx, c.c, stream, "rollout "+cmd.ID, decide)
			},
			run: func(ctx context.Context, m Meta) (int64, error) {
				_, v, err := c.CreateRollout(ctx, m, cmd)
				return v, err
			}}, true, nil
	case "PauseRollout":
		var cmd PauseRollout
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		p, err := onExistingRollout(ctx, c, cmd.Project, cmd.ID, func(_ context.Context, r *domain.Rollout) ([]domain.Event, error) {
			return c.pauseRollout(cmd)(r)
		}, func(ctx context.Context, m Meta) (int64, error) {
			_, v, err := c.PauseRollout(ctx, m, cmd)
			return v, err
		})
		return p, true, err
	case "ResumeRollout":
		var cmd ResumeRollout
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		p, err := onExistingRollout(ctx, c, cmd.Project, cmd.ID, func(_ context.Context, r *domain.Rollout) ([]domain.Event, error) {
			return c.resumeRollout(r)
		}, func(ctx context.Context, m Meta) (int64, error) {
			_, v, err := c.ResumeRollout(ctx, m, cmd)
			return v, err
		})
		return p, true, err
	case "AbortRollout":
		var cmd AbortRollout
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		p, err := onExistingRollout(ctx, c, cmd.Project, cmd.ID, func(ctx context.Context, r *domain.Rollout) ([]domain.Event, error) {
			// The diff shows the rollout's end; the flag's default serve goes back to the
			// rollout's start, which the request's rollout (its "start") shows.
			cat, err := c.q.Catalog(ctx, cmd.Project)
			if err != nil {
				return nil, err
			}
			f, _, err := load[domain.Flag](ctx, c.c, domain.FlagStream(cmd.Project, r.Flag))
			if err != nil {
				return nil, err
			}
			_, events, err := r.Abort(cmd.Reason, f, cat, c.c.now())
			return events, err
		}, func(ctx context.Context, m Meta) (int64, error) {
			_, v, err := c.AbortRollout(ctx, m, cmd)
			return v, err
		})
		return p, true, err
	}
	return proposal{}, false, nil
}

func onExistingSchedule(ctx context.Context, c *Commands, project, id string,
	decide func(context.Context, *domain.ScheduledChange) ([]domain.Event, error), run func(context.Context, Meta) (int64, error)) (proposal, error) {
	stream := domain.ScheduleStream(project, id)
	sc, _, err := load[domain.ScheduledChange](ctx, c.c, stream)
	if err != nil {
		return proposal{}, err
	}
	if sc == nil {
		return proposal{}, domain.Errorf(domain.ENotFound, "scheduled change not found")
	}
	return existingProposal(c, project, sc.Environment, sc.Flag, stream, "scheduled change "+id, decide, run), nil
}

func onExistingRollout(ctx context.Context, c *Commands, project, id string,
	decide func(context.Context, *domain.Rollout) ([]domain.Event, error), run func(context.Context, Meta) (int64, error)) (proposal, error) {
	stream := domain.RolloutStream(project, id)
	r, _, err := load[domain.Rollout](ctx, c.c, stream)
	if err != nil {
		return proposal{}, err
	}
	if r == nil {
		return proposal{}, domain.Errorf(domain.ENotFound, "rollout not found")
	}
	return existingProposal(c, project, r.Environment, r.Flag, stream, "rollout "+id, decide, run), nil
}

// existingProposal is a proposed change to an existing schedule or rollout (stream) of flag in env.
func existingProposal[T any, PT interface {
	aggregate[T]
	Apply(domain.Event)
}](c *Commands, project, env, flag, stream, what string, decide func(context.Context, PT) ([]domain.Event, error),
	run func(context.Context, Meta) (int64, error)) proposal {
	return proposal{project: project, environment: env, flag: flag, stream: stream,
		previewTarget: func(ctx context.Context) (int64, json.RawMessage, json.RawMessage, error) {
			return previewOn[T, PT](ctx, c.c, stream, what, func(a PT) ([]domain.Event, error) { return decide(ctx, a) })
		},
		run: run}
}

// previewNew previews the creation of stream's aggregate: no before, the new aggregate as after.
// A stream that exists already is refused as the command would refuse it.
func previewNew[T any, PT interface {
	aggregate[T]
	Apply(domain.Event)
}](ctx context.Context, c *core, stream, what string, decide func() ([]domain.Event, error)) (int64, json.RawMessage, json.RawMessage, error) {
	existing, v, err := load[T, PT](ctx, c, stream)
	if err != nil {
		return 0, nil, nil, err
	}
	if existing != nil {
		return v, nil, nil, &domain.Error{Code: domain.EConflict, Field: "id", Message: what + " already exists"}
	}
	events, err := decide()
	if err != nil || len(events) == 0 {
		return 0, nil, nil, err
	}
	agg := PT(new(T))
	for _, e := range events {
		agg.Apply(e)
	}
	after, err := json.Marshal(agg)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("app: snapshot new %s for a change request: %w", stream, err)
	}
	return 0, nil, after, nil
}
