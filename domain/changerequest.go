package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Change requests (four eyes): in a protected environment a change to what it serves is not
// applied at once but proposed as a change request, which people other than its author approve
// before it applies through the same command as a direct change.

const (
	changeRequestAggregate = "changerequest"
	// MaxComments bounds a change request's comments: a discussion longer than this belongs
	// elsewhere, and the aggregate is folded on every command.
	MaxComments = 200
)

// ChangeRequestStream is the stream of one change request.
func ChangeRequestStream(project, id string) string { return "changerequest/" + project + "/" + id }

// ChangeRequestStatus is where a change request stands.
type ChangeRequestStatus string

const (
	RequestOpen      ChangeRequestStatus = "open"      // waiting for approvals
	RequestApproved  ChangeRequestStatus = "approved"  // enough approvals; may be applied
	RequestRejected  ChangeRequestStatus = "rejected"  // refused by an approver; final
	RequestApplied   ChangeRequestStatus = "applied"   // the change is made; final
	RequestCancelled ChangeRequestStatus = "cancelled" // withdrawn by its author; final
)

// ProposedChange is the command a change request will run, serialized: Command names it (the
// application layer's command, e.g. "ToggleFlag") and Payload is its JSON.
type ProposedChange struct {
	Command string          `json:"command"`
	Payload json.RawMessage `json:"payload"`
}

// NewChangeRequest is the input that opens a change request.
type NewChangeRequest struct {
	Project     string `json:"project"`
	ID          string `json:"id"`
	Environment string `json:"environment"`
	// Flag or Segment names what the change is to; Target is that aggregate's stream and
	// BaseVersion its version the change was proposed against (optimistic concurrency on apply).
	Flag        string         `json:"flag,omitempty"`
	Segment     string         `json:"segment,omitempty"`
	Target      string         `json:"target"`
	BaseVersion int64          `json:"base_version"`
	Change      ProposedChange `json:"change"`
	// Before and After are the parts of the target that the change alters, as JSON.
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	Author string          `json:"author"`
	Reason string          `json:"reason,omitempty"`
	Protection
	ApplyAt time.Time `json:"apply_at,omitzero"`
}

// Approval is one person's approval.
type Approval struct {
	By      string    `json:"by"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// Comment is one remark on a change request.
type Comment struct {
	By   string    `json:"by"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// ChangeRequest is a proposed change to a protected environment and its review.
type ChangeRequest struct {
	NewChangeRequest
	Status     ChangeRequestStatus `json:"status"`
	Approvals  []Approval          `json:"approvals"`
	Comments   []Comment           `json:"comments"`
	ResolvedBy string              `json:"resolved_by,omitempty"` // who rejected, applied or cancelled it
	// AppliedVersion is the target's version after the change applied.
	AppliedVersion int64     `json:"applied_version,omitempty"`
	Rebased        int       `json:"rebased"` // how many times it was rebased
	Version        int64     `json:"version"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Events of the change request stream. Each carries project, environment, flag (or segment)
// and the request id, so consumers (audit, webhooks) need not fold the stream.
type ChangeRequestRef struct {
	ID          string `json:"id"`
	Project     string `json:"project"`
	Environment string `json:"environment"`
	Flag        string `json:"flag,omitempty"`
	Segment     string `json:"segment,omitempty"`
}

type ChangeRequestOpened struct {
	NewChangeRequest
}

type ChangeRequestCommented struct {
	ChangeRequestRef
	Text string `json:"text"`
}

type ChangeRequestApproved struct {
	ChangeRequestRef
	Comment string `json:"comment,omitempty"`
}

type ChangeRequestRejected struct {
	ChangeRequestRef
	Comment string `json:"comment,omitempty"`
}

// ChangeRequestRebased moves the request onto the target's current version; the diff is
// recomputed and earlier approvals are dropped (they approved another diff).
type ChangeRequestRebased struct {
	ChangeRequestRef
	BaseVersion int64           `json:"base_version"`
	Before      json.RawMessage `json:"before,omitempty"`
	After       json.RawMessage `json:"after,omitempty"`
}

// ChangeRequestScheduled sets (or, zero, clears) when the scheduler applies the approved request.
type ChangeRequestScheduled struct {
	ChangeRequestRef
	ApplyAt time.Time `json:"apply_at,omitzero"`
}

type ChangeRequestApplied struct {
	ChangeRequestRef
	// Version is the target's version after the change.
	Version int64 `json:"version"`
}

type ChangeRequestCancelled struct {
	ChangeRequestRef
}

func (*ChangeRequestOpened) EventType() string    { return "ChangeRequestOpened" }
func (*ChangeRequestCommented) EventType() string { return "ChangeRequestCommented" }
func (*ChangeRequestApproved) EventType() string  { return "ChangeRequestApproved" }
func (*ChangeRequestRejected) EventType() string  { return "ChangeRequestRejected" }
func (*ChangeRequestRebased) EventType() string   { return "ChangeRequestRebased" }
func (*ChangeRequestScheduled) EventType() string { return "ChangeRequestScheduled" }
func (*ChangeRequestApplied) EventType() string   { return "ChangeRequestApplied" }
func (*ChangeRequestCancelled) EventType() string { return "ChangeRequestCancelled" }

func init() {
	register(
		func() Event { return new(ChangeRequestOpened) },
		func() Event { return new(ChangeRequestCommented) },
		func() Event { return new(ChangeRequestApproved) },
		func() Event { return new(ChangeRequestRejected) },
		func() Event { return new(ChangeRequestRebased) },
		func() Event { return new(ChangeRequestScheduled) },
		func() Event { return new(ChangeRequestApplied) },
		func() Event { return new(ChangeRequestCancelled) },
	)
}

// OpenChangeRequest opens a change request. The caller (the application layer) has already
// checked the change against the target by deciding it, and computed the diff.
func OpenChangeRequest(in NewChangeRequest, now time.Time) ([]Event, error) {
	switch {
	case !ValidKey(in.Project):
		return nil, Invalid("project", "invalid project key %q", truncate(in.Project, 120))
	case !ValidKey(in.ID):
		return nil, Invalid("id", "invalid change request id %q", truncate(in.ID, 120))
	case !ValidKey(in.Environment):
		return nil, Invalid("environment", "invalid environment key %q", truncate(in.Environment, 120))
	case in.Flag == "" && in.Segment == "":
		return nil, Invalid("flag", "a change request changes a flag or a segment")
	case in.Author == "":
		return nil, Errorf(EInvalid, "a change request needs an author")
	case in.Change.Command == "" || len(in.Change.Payload) == 0:
		return nil, Errorf(EInvalid, "a change request needs the proposed command")
	case in.RequiredApprovals < 1:
		return nil, Errorf(EInvalid, "a change request needs at least one approval")
	case !in.ApplyAt.IsZero() && !in.ApplyAt.After(now):
		return nil, Invalid("apply_at", "apply_at must be in the future")
	}
	if err := validReason("reason", in.Reason, false); err != nil {
		return nil, err
	}
	return []Event{&ChangeRequestOpened{NewChangeRequest: in}}, nil
}

// Ref names this request in its events.
func (r *ChangeRequest) Ref() ChangeRequestRef {
	return ChangeRequestRef{ID: r.ID, Project: r.Project, Environment: r.Environment, Flag: r.Flag, Segment: r.Segment}
}

// Final says whether the request can no longer change.
func (r *ChangeRequest) Final() bool {
	return r.Status == RequestRejected || r.Status == RequestApplied || r.Status == RequestCancelled
}

func (r *ChangeRequest) live() error {
	if r == nil || r.ID == "" {
		return Errorf(ENotFound, "change request not found")
	}
	if r.Final() {
		return &Error{Code: EConflict, Message: fmt.Sprintf("change request %s is %s", r.ID, r.Status),
			Details: map[string]any{"status": string(r.Status)}}
	}
	return nil
}

// Comment adds a remark by actor.
func (r *ChangeRequest) Comment(actor, text string) ([]Event, error) {
	if r == nil || r.ID == "" {
		return nil, Errorf(ENotFound, "change request not found")
	}
	if err := validText("text", text, true); err != nil {
		return nil, err
	}
	if len(r.Comments) >= MaxComments {
		return nil, Errorf(EConflict, "a change request has at most %d comments", MaxComments)
	}
	return []Event{&ChangeRequestCommented{ChangeRequestRef: r.Ref(), Text: text}}, nil
}

// Approve records actor's approval. The author never approves their own request, each person
// approves once, and role is the actor's role in the project ("viewer", "editor", "admin").
func (r *ChangeRequest) Approve(actor, role, comment string) ([]Event, error) {
	if err := r.live(); err != nil {
		return nil, err
	}
	if actor == r.Author {
		return nil, Errorf(EForbidden, "the author of a change request cannot approve it: another person must")
	}
	if !r.Protection.RoleMayApprove(role) {
		return nil, Errorf(EForbidden, "approving in environment %s needs the %s role", r.Environment, r.ApproverRole)
	}
	if slices.ContainsFunc(r.Approvals, func(a Approval) bool { return a.By == actor }) {
		return nil, nil
	}
	if err := validText("comment", comment, false); err != nil {
		return nil, err
	}
	return []Event{&ChangeRequestApproved{ChangeRequestRef: r.Ref(), Comment: comment}}, nil
}

// Reject refuses the request for good. Like approving, it takes an approver other than the
// author (the author cancels instead).
func (r *ChangeRequest) Reject(actor, role, comment string) ([]Event, error) {
	if err := r.live(); err != nil {
		return nil, err
	}
	if actor == r.Author {
		return nil, Errorf(EForbidden, "the author of a change request cannot reject it; cancel it instead")
	}
	if !r.Protection.RoleMayApprove(role) {
		return nil, Errorf(EForbidden, "rejecting in environment %s needs the %s role", r.Environment, r.ApproverRole)
	}
	if err := validText("comment", comment, false); err != nil {
		return nil, err
	}
	return []Event{&ChangeRequestRejected{ChangeRequestRef: r.Ref(), Comment: comment}}, nil
}

// Cancel withdraws the request; only its author does.
func (r *ChangeRequest) Cancel(actor string) ([]Event, error) {
	if err := r.live(); err != nil {
		return nil, err
	}
	if actor != r.Author {
		return nil, Errorf(EForbidden, "only the author of a change request cancels it")
	}
	return []Event{&ChangeRequestCancelled{ChangeRequestRef: r.Ref()}}, nil
}

// Rebase moves the request onto the target's version base with the diff recomputed there;
// approvals are dropped, since they approved another diff.
func (r *ChangeRequest) Rebase(base int64, before, after json.RawMessage) ([]Event, error) {
	if err := r.live(); err != nil {
		return nil, err
	}
	if base == r.BaseVersion {
		return nil, nil
	}
	return []Event{&ChangeRequestRebased{ChangeRequestRef: r.Ref(), BaseVersion: base, Before: before, After: after}}, nil
}

// Schedule sets when the request applies by itself once approved (zero: only by hand).
func (r *ChangeRequest) Schedule(at, now time.Time) ([]Event, error) {
	if err := r.live(); err != nil {
		return nil, err
	}
	if !at.IsZero() && !at.After(now) {
		return nil, Invalid("apply_at", "apply_at must be in the future")
	}
	if at.Equal(r.ApplyAt) {
		return nil, nil
	}
	return []Event{&ChangeRequestScheduled{ChangeRequestRef: r.Ref(), ApplyAt: at.UTC()}}, nil
}

// CheckApplicable says whether the request may apply now: approved, and proposed against the
// target's current version (EConflict otherwise; the caller adds the new diff).
func (r *ChangeRequest) CheckApplicable(targetVersion int64) error {
	if err := r.live(); err != nil {
		return err
	}
	if r.Status != RequestApproved {
		return &Error{Code: EConflict, Message: fmt.Sprintf("change request %s has %d of %d approvals", r.ID, len(r.Approvals), r.RequiredApprovals),
			Details: map[string]any{"status": string(r.Status)}}
	}
	if targetVersion != r.BaseVersion {
		return &Error{Code: EConflict,
			Message: fmt.Sprintf("the %s changed since the request was made (version %d, now %d): rebase the request", r.kind(), r.BaseVersion, targetVersion),
			Details: map[string]any{"base_version": r.BaseVersion, "current_version": targetVersion, "rebase": true}}
	}
	return nil
}

// Applied records that the change applied, leaving the target at version.
func (r *ChangeRequest) Applied(version int64) ([]Event, error) {
	if err := r.CheckApplicable(r.BaseVersion); err != nil {
		return nil, err
	}
	return []Event{&ChangeRequestApplied{ChangeRequestRef: r.Ref(), Version: version}}, nil
}

func (r *ChangeRequest) kind() string {
	switch {
	case strings.HasPrefix(r.Target, "schedule/"):
		return "scheduled change"
	case strings.HasPrefix(r.Target, "rollout/"):
		return "rollout"
	}
	if r.Segment != "" {
		return "segment"
	}
	return "flag"
}

func validText(field, s string, required bool) *Error {
	switch {
	case required && s == "":
		return Invalid(field, "%s is required", field)
	case !utf8.ValidString(s):
		return Invalid(field, "%s is not valid UTF-8", field)
	case utf8.RuneCountInString(s) > MaxDescriptionLength:
		return Invalid(field, "%s longer than %d characters", field, MaxDescriptionLength)
	}
	return nil
}

func (r *ChangeRequest) apply(e Event, actor string, at time.Time) bool {
	switch e := e.(type) {
	case *ChangeRequestOpened:
		r.NewChangeRequest = e.NewChangeRequest
		r.Status = RequestOpen
		r.Approvals, r.Comments = []Approval{}, []Comment{}
	case *ChangeRequestCommented:
		r.Comments = append(r.Comments, Comment{By: actor, Text: e.Text, At: at})
	case *ChangeRequestApproved:
		r.Approvals = append(r.Approvals, Approval{By: actor, Comment: e.Comment, At: at})
		if len(r.Approvals) >= r.RequiredApprovals {
			r.Status = RequestApproved
		}
	case *ChangeRequestRejected:
		r.Status, r.ResolvedBy = RequestRejected, actor
		if e.Comment != "" {
			r.Comments = append(r.Comments, Comment{By: actor, Text: e.Comment, At: at})
		}
	case *ChangeRequestRebased:
		r.BaseVersion, r.Before, r.After = e.BaseVersion, e.Before, e.After
		r.Approvals, r.Status = []Approval{}, RequestOpen
		r.Rebased++
	case *ChangeRequestScheduled:
		r.ApplyAt = e.ApplyAt
	case *ChangeRequestApplied:
		r.Status, r.ResolvedBy, r.AppliedVersion = RequestApplied, actor, e.Version
	case *ChangeRequestCancelled:
		r.Status, r.ResolvedBy = RequestCancelled, actor
	default:
		return false
	}
	return true
}

// ApplyRecorded folds one stored event.
func (r *ChangeRequest) ApplyRecorded(rec RecordedEvent) error {
	e, err := rec.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(changeRequestAggregate, rec, r.ID != "", isType[*ChangeRequestOpened](e)); err != nil {
		return err
	}
	if !r.apply(e, rec.Metadata.Actor, rec.OccurredAt) {
		return unexpectedEvent(changeRequestAggregate, rec)
	}
	r.Version = rec.Version
	r.UpdatedAt = rec.OccurredAt
	if _, ok := e.(*ChangeRequestOpened); ok {
		r.CreatedAt = rec.OccurredAt
	}
	return nil
}
