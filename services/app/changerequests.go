package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/changerequests"
)

// Four eyes (issue 18): in a protected environment a person's change to what it serves does not
// apply; the command itself, serialized, becomes a change request, which other people approve
// before it applies through the very same command. The gate is here, in the commands, so the
// REST API, the console and every other entry point go through it.
//
// Who bypasses the gate: the system's actors ("system:..."), which carry out decisions already
// taken (a due schedule, a rollout step, an auto-ops kill switch), webhook triggers ("trigger:"),
// which an alerting system calls to stop an incident at once, and the application of an approved
// request itself. Their events name them as actor, so the audit log shows every bypass.

// ChangeRequestPending is what a gated command returns instead of changing anything: the change
// request it opened. Entry points answer 202 with the request (see AsPending).
type ChangeRequestPending struct {
	Request *domain.ChangeRequest
	Version int64
}

func (p *ChangeRequestPending) Error() string {
	return fmt.Sprintf("environment %s is protected: change request %s was opened instead", p.Request.Environment, p.Request.ID)
}

// AsPending returns the change request a command opened instead of applying, if it did.
func AsPending(err error) (*ChangeRequestPending, bool) {
	var p *ChangeRequestPending
	ok := errors.As(err, &p)
	return p, ok
}

// bypassesApproval says whether m's actor changes protected environments directly.
func bypassesApproval(m Meta) bool {
	return m.applying != "" || strings.HasPrefix(m.Actor, "system:") || strings.HasPrefix(m.Actor, "trigger:")
}

// proposal is a gated command decoded back from its serialized form.
type proposal struct {
	project, environment string
	flag, segment        string
	// decide previews the command on the current target.
	decideFlag    func(*domain.Flag, *domain.Catalog) ([]domain.Event, error)
	decideSegment func(*domain.Segment, *domain.Catalog) ([]domain.Event, error)
	// stream and previewTarget replace the flag or segment as target for a change to a schedule
	// or a rollout (of flag, in environment): previewTarget decides it on its aggregate.
	stream        string
	previewTarget func(ctx context.Context) (int64, json.RawMessage, json.RawMessage, error)
	// run runs the command itself and returns the target's version after it.
	run func(ctx context.Context, m Meta) (int64, error)
}

func (p proposal) target() string {
	if p.stream != "" {
		return p.stream
	}
	if p.segment != "" {
		return domain.SegmentStream(p.project, p.segment)
	}
	return domain.FlagStream(p.project, p.flag)
}

// decodeProposal turns a serialized command into what the gate and the apply need. Every command
// the gate stops has a case here: it is the list of what a protected environment protects.
func (c *Commands) decodeProposal(ctx context.Context, pc domain.ProposedChange) (proposal, error) {
	bad := func(err error) (proposal, error) {
		return proposal{}, fmt.Errorf("app: decode proposed %s: %w", pc.Command, err)
	}
	switch pc.Command {
	case "ToggleFlag":
		var cmd ToggleFlag
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		return proposal{project: cmd.Project, environment: cmd.Environment, flag: cmd.Flag,
			decideFlag: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.Toggle(cmd.Environment, cmd.On, cat)
			},
			run: func(ctx context.Context, m Meta) (int64, error) {
				_, v, err := c.ToggleFlag(ctx, m, cmd)
				return v, err
			}}, nil
	case "UpdateTargeting":
		var cmd UpdateTargeting
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		return proposal{project: cmd.Project, environment: cmd.Environment, flag: cmd.Flag,
			decideFlag: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateTargeting(cmd.Environment, cmd.Targeting, cat)
			},
			run: func(ctx context.Context, m Meta) (int64, error) {
				_, v, err := c.UpdateTargeting(ctx, m, cmd)
				return v, err
			}}, nil
	case "UpdateVariations":
		var cmd UpdateVariations
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		return proposal{project: cmd.Project, flag: cmd.Flag,
			decideFlag: func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
				return f.UpdateVariations(cmd.Variations, cat)
			},
			run: func(ctx context.Context, m Meta) (int64, error) {
				_, v, err := c.UpdateVariations(ctx, m, cmd)
				return v, err
			}}, nil
	case "UpdateSegment":
		var cmd UpdateSegment
		if err := json.Unmarshal(pc.Payload, &cmd); err != nil {
			return bad(err)
		}
		return proposal{project: cmd.Project, segment: cmd.Segment,
			decideSegment: func(s *domain.Segment, cat *domain.Catalog) ([]domain.Event, error) {
				return s.Update(cmd.Definition, cat)
			},
			run: func(ctx context.Context, m Meta) (int64, error) {
				_, v, err := c.UpdateSegment(ctx, m, cmd)
				return v, err
			}}, nil
	}
	if p, ok, err := c.decodeDeliveryProposal(ctx, pc); ok {
		return p, err
	}
	return proposal{}, fmt.Errorf("app: %q cannot be proposed in a change request", pc.Command)
}

// preview decides p on the target's current state: its version, and the parts the change alters
// before and after (empty when it changes nothing). On a decision's error the version is still
// returned.
func (c *Commands) preview(ctx context.Context, p proposal) (version int64, before, after json.RawMessage, err error) {
	if p.previewTarget != nil {
		return p.previewTarget(ctx)
	}
	cat, err := c.q.Catalog(ctx, p.project)
	if err != nil {
		return 0, nil, nil, err
	}
	if p.segment != "" {
		return previewOn[domain.Segment](ctx, c.c, p.target(), fmt.Sprintf("segment %q in project %q", p.segment, p.project),
			func(s *domain.Segment) ([]domain.Event, error) { return p.decideSegment(s, cat) })
	}
	return previewOn[domain.Flag](ctx, c.c, p.target(), fmt.Sprintf("flag %q in project %q", p.flag, p.project),
		func(f *domain.Flag) ([]domain.Event, error) { return p.decideFlag(f, cat) })
}

// previewOn folds stream, decides on it and diffs the state before and after the decision's
// events (applied to the folded copy only: nothing is appended).
func previewOn[T any, PT interface {
	aggregate[T]
	Apply(domain.Event)
}](ctx context.Context, c *core, stream, what string, decide func(PT) ([]domain.Event, error)) (int64, json.RawMessage, json.RawMessage, error) {
	agg, v, err := mustLoad[T, PT](ctx, c, stream, what)
	if err != nil {
		return 0, nil, nil, err
	}
	events, err := decide(agg)
	if err != nil || len(events) == 0 {
		return v, nil, nil, err
	}
	before, err := json.Marshal(agg)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("app: snapshot %s for a change request's diff: %w", stream, err)
	}
	for _, e := range events {
		agg.Apply(e)
	}
	after, err := json.Marshal(agg)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("app: snapshot %s for a change request's diff: %w", stream, err)
	}
	b, a := audit.Diff(before, after)
	return v, b, a, nil
}

// protectedEnvironment returns the environment of p whose protection applies, with its policy;
// "" when the change applies directly. A flag's targeting and toggle are about their environment;
// its variations, and a segment its flags use, are served in every environment, so the first
// protected environment (in creation order) reviews them.
func (c *Commands) protectedEnvironment(ctx context.Context, p proposal) (string, *domain.Protection, error) {
	proj, _, err := c.q.Project(ctx, p.project)
	if err != nil {
		return "", nil, err
	}
	if p.environment != "" {
		return p.environment, proj.Protected(p.environment), nil
	}
	if p.segment != "" {
		cat, err := c.q.Catalog(ctx, p.project)
		if err != nil {
			return "", nil, err
		}
		if len(cat.FlagsUsingSegment(p.segment)) == 0 {
			return "", nil, nil // no flag serves it anywhere yet
		}
	}
	for _, env := range proj.EnvironmentOrder {
		if prot := proj.Protected(env); prot != nil {
			return env, prot, nil
		}
	}
	return "", nil, nil
}

// gate opens a change request instead of running command (serialized from payload) when it
// changes a protected environment and m's actor does not bypass approval; it returns the
// *ChangeRequestPending then, nil when the command should run as usual.
func (c *Commands) gate(ctx context.Context, m Meta, command string, payload any) error {
	if bypassesApproval(m) {
		return nil
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("app: serialize %s for a change request: %w", command, err)
	}
	change := domain.ProposedChange{Command: command, Payload: raw}
	p, err := c.decodeProposal(ctx, change)
	if err != nil {
		return err
	}
	env, prot, err := c.protectedEnvironment(ctx, p)
	if err != nil || prot == nil {
		return err // not protected (or the project does not exist: the command says so itself)
	}
	version, before, after, err := c.preview(ctx, p)
	if err != nil {
		return err
	}
	if m.Expected != nil && *m.Expected != version {
		return conflict(*m.Expected, version)
	}
	if before == nil && after == nil {
		return nil // changes nothing: the command is a no-op anyway
	}
	id, err := newDeliveryID("")
	if err != nil {
		return err
	}
	in := domain.NewChangeRequest{Project: p.project, ID: id, Environment: env, Flag: p.flag, Segment: p.segment,
		Target: p.target(), BaseVersion: version, Change: change, Before: before, After: after,
		Author: m.Actor, Reason: m.metadata().Reason, Protection: *prot}
	om := m
	om.Expected = Version(0)
	r, v, err := execute(ctx, c.c, domain.ChangeRequestStream(p.project, id), om, func(*domain.ChangeRequest) ([]domain.Event, error) {
		return domain.OpenChangeRequest(in, c.c.now())
	})
	if err != nil {
		return err
	}
	return &ChangeRequestPending{Request: r, Version: v}
}

// ChangeRequestRef names one change request.
type ChangeRequestRef struct{ Project, ID string }

// ChangeRequest returns a change request and its version.
func (q *Queries) ChangeRequest(ctx context.Context, project, id string) (*domain.ChangeRequest, int64, error) {
	return mustLoad[domain.ChangeRequest](ctx, q.c, domain.ChangeRequestStream(project, id),
		fmt.Sprintf("change request %q in project %q", id, project))
}

func (c *Commands) onChangeRequest(ctx context.Context, m Meta, ref ChangeRequestRef, decide func(*domain.ChangeRequest) ([]domain.Event, error)) (*domain.ChangeRequest, int64, error) {
	if !domain.ValidKey(ref.ID) {
		return nil, 0, domain.Errorf(domain.ENotFound, "change request %q not found in project %q", ref.ID, ref.Project)
	}
	return existing(ctx, c.c, domain.ChangeRequestStream(ref.Project, ref.ID), m,
		notFound("change request %q not found in project %q", ref.ID, ref.Project), decide)
}

// CommentChangeRequest adds a comment.
type CommentChangeRequest struct {
	ChangeRequestRef
	Text string
}

// CommentChangeRequest runs CommentChangeRequest.
func (c *Commands) CommentChangeRequest(ctx context.Context, m Meta, cmd CommentChangeRequest) (*domain.ChangeRequest, int64, error) {
	return c.onChangeRequest(ctx, m, cmd.ChangeRequestRef, func(r *domain.ChangeRequest) ([]domain.Event, error) {
		return r.Comment(m.Actor, cmd.Text)
	})
}

// ReviewChangeRequest approves or rejects a change request. Role is the reviewer's role in the
// project ("viewer", "editor", "admin"), which the entry point knows (token scope, membership).
type ReviewChangeRequest struct {
	ChangeRequestRef
	Role    string
	Comment string
}

// ApproveChangeRequest approves; the request applies once approved (by hand, or by the scheduler
// at its apply_at).
func (c *Commands) ApproveChangeRequest(ctx context.Context, m Meta, cmd ReviewChangeRequest) (*domain.ChangeRequest, int64, error) {
	return c.onChangeRequest(ctx, m, cmd.ChangeRequestRef, func(r *domain.ChangeRequest) ([]domain.Event, error) {
		return r.Approve(m.Actor, cmd.Role, cmd.Comment)
	})
}

// RejectChangeRequest rejects for good.
func (c *Commands) RejectChangeRequest(ctx context.Context, m Meta, cmd ReviewChangeRequest) (*domain.ChangeRequest, int64, error) {
	return c.onChangeRequest(ctx, m, cmd.ChangeRequestRef, func(r *domain.ChangeRequest) ([]domain.Event, error) {
		return r.Reject(m.Actor, cmd.Role, cmd.Comment)
	})
}

// CancelChangeRequest withdraws a request (its author only).
type CancelChangeRequest ChangeRequestRef

// CancelChangeRequest runs CancelChangeRequest.
func (c *Commands) CancelChangeRequest(ctx context.Context, m Meta, cmd CancelChangeRequest) (*domain.ChangeRequest, int64, error) {
	return c.onChangeRequest(ctx, m, ChangeRequestRef(cmd), func(r *domain.ChangeRequest) ([]domain.Event, error) {
		return r.Cancel(m.Actor)
	})
}

// ScheduleChangeRequest sets when the scheduler applies the request once approved (zero: only
// by hand).
type ScheduleChangeRequest struct {
	ChangeRequestRef
	ApplyAt time.Time
}

// ScheduleChangeRequest runs ScheduleChangeRequest.
func (c *Commands) ScheduleChangeRequest(ctx context.Context, m Meta, cmd ScheduleChangeRequest) (*domain.ChangeRequest, int64, error) {
	return c.onChangeRequest(ctx, m, cmd.ChangeRequestRef, func(r *domain.ChangeRequest) ([]domain.Event, error) {
		return r.Schedule(cmd.ApplyAt, c.c.now())
	})
}

// RebaseChangeRequest moves a request onto the target's current version, recomputing the diff;
// approvals start again. A change that no longer validates against the new state is refused with
// the domain's error (the author proposes another change instead).
type RebaseChangeRequest ChangeRequestRef

// RebaseChangeRequest runs RebaseChangeRequest.
func (c *Commands) RebaseChangeRequest(ctx context.Context, m Meta, cmd RebaseChangeRequest) (*domain.ChangeRequest, int64, error) {
	r, _, err := c.q.ChangeRequest(ctx, cmd.Project, cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	p, err := c.decodeProposal(ctx, r.Change)
	if err != nil {
		return nil, 0, err
	}
	version, before, after, err := c.preview(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	return c.onChangeRequest(ctx, m, ChangeRequestRef(cmd), func(r *domain.ChangeRequest) ([]domain.Event, error) {
		return r.Rebase(version, before, after)
	})
}

// ApplyChangeRequest applies an approved request through the command it proposes, expecting the
// target at the version the request was made (or rebased) against. If the target moved, it fails
// with EConflict whose details carry the new diff ("before", "after", "current_version"), and the
// request must be rebased.
type ApplyChangeRequest ChangeRequestRef

// ApplyChangeRequest runs ApplyChangeRequest.
func (c *Commands) ApplyChangeRequest(ctx context.Context, m Meta, cmd ApplyChangeRequest) (*domain.ChangeRequest, int64, error) {
	r, rv, err := c.q.ChangeRequest(ctx, cmd.Project, cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	p, err := c.decodeProposal(ctx, r.Change)
	if err != nil {
		return nil, 0, err
	}
	targetVersion, _, _, err := c.preview(ctx, p)
	if err != nil && targetVersion == 0 {
		return nil, 0, err
	}
	if err := r.CheckApplicable(targetVersion); err != nil {
		if de, ok := domainError(err); ok && de.Details["rebase"] == true {
			return nil, 0, c.withNewDiff(ctx, p, err)
		}
		return nil, 0, err
	}
	am := Meta{Actor: m.Actor, RequestID: m.RequestID, CommandID: "changerequest-" + r.ID,
		Expected: Version(r.BaseVersion), applying: r.ID,
		Reason: ReasonText(fmt.Sprintf("change request %s by %s: %s", r.ID, r.Author, r.Reason))}
	applied, err := p.run(ctx, am)
	if err != nil {
		if IsVersionConflict(err) {
			return nil, 0, c.withNewDiff(ctx, p, err)
		}
		return nil, 0, err
	}
	m.Expected = Version(rv)
	return c.onChangeRequest(ctx, m, ChangeRequestRef(cmd), func(r *domain.ChangeRequest) ([]domain.Event, error) {
		return r.Applied(applied)
	})
}

// withNewDiff adds the diff of the proposed change against the target's current state to a
// conflict, so the people deciding on a rebase see what they would approve now.
func (c *Commands) withNewDiff(ctx context.Context, p proposal, err error) error {
	de, ok := domainError(err)
	if !ok || de.Code != domain.EConflict {
		return err
	}
	out := *de
	out.Details = map[string]any{}
	for k, v := range de.Details {
		out.Details[k] = v
	}
	version, before, after, perr := c.preview(ctx, p)
	if perr != nil {
		out.Details["rebase_error"] = perr.Error()
		return &out
	}
	out.Details["current_version"] = version
	out.Details["before"], out.Details["after"] = before, after
	out.Details["rebase"] = true
	return &out
}

// ListChangeRequests lists a project's change requests from the read model, newest first.
func (q *Queries) ListChangeRequests(ctx context.Context, lq changerequests.ListQuery) ([]*domain.ChangeRequest, error) {
	return changerequests.List(ctx, q.c.pool, lq)
}

// ApplyDueChangeRequests applies the approved requests whose apply_at has come, as the system
// actor system:changerequest/<id>, and returns how many applied. A request that cannot apply
// (its flag moved: it needs a rebase) stays approved and is logged; people see it on its page.
func (c *Commands) ApplyDueChangeRequests(ctx context.Context, now time.Time) (int, error) {
	due, err := changerequests.Due(ctx, c.c.pool, now, 100)
	if err != nil {
		return 0, err
	}
	applied := 0
	for _, r := range due {
		m := Meta{Actor: "system:changerequest/" + r.ID}
		if _, _, err := c.ApplyChangeRequest(ctx, m, ApplyChangeRequest{Project: r.Project, ID: r.ID}); err != nil {
			c.c.log.Warn("scheduled change request did not apply", "project", r.Project, "change_request", r.ID, "err", err)
			continue
		}
		applied++
	}
	return applied, nil
}

// SetEnvironmentProtection protects an environment (Protection set) or lifts its protection.
type SetEnvironmentProtection struct {
	Project, Environment string
	Protection           *domain.Protection
}

// SetEnvironmentProtection runs SetEnvironmentProtection and returns the environment after it.
func (c *Commands) SetEnvironmentProtection(ctx context.Context, m Meta, cmd SetEnvironmentProtection) (*domain.Environment, error) {
	p, _, err := c.onProject(ctx, m, cmd.Project, func(p *domain.Project) ([]domain.Event, error) {
		return p.SetEnvironmentProtection(cmd.Environment, cmd.Protection)
	})
	if err != nil {
		return nil, err
	}
	return p.Environments[cmd.Environment], nil
}
