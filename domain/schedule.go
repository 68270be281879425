package domain

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

const scheduleAggregate = "schedule"

// ChangeKind is what a scheduled change does to its flag in its environment.
type ChangeKind string

const (
	ChangeToggle    ChangeKind = "toggle"    // turn the flag on or off (ChangeSpec.On)
	ChangeTargeting ChangeKind = "targeting" // replace the whole targeting (ChangeSpec.Targeting)
	ChangeDefault   ChangeKind = "default"   // replace the default serve (ChangeSpec.Default)
)

// ScheduleStatus is where a scheduled change is: pending, then exactly one of applied, failed or
// cancelled.
type ScheduleStatus string

const (
	ScheduleStatusPending   ScheduleStatus = "pending"
	ScheduleStatusApplied   ScheduleStatus = "applied"
	ScheduleStatusFailed    ScheduleStatus = "failed"
	ScheduleStatusCancelled ScheduleStatus = "cancelled"
)

// ChangeSpec is when a scheduled change is due and what it does: exactly the payload of its kind
// is set (On for a toggle, Targeting, or Default).
//
// At is a UTC instant: the one due time of a one-off change, or the next occurrence of a
// recurring one (Recurrence set; only toggles recur). TimeZone is the IANA zone the change was
// given in, kept for display and for computing the recurrence's occurrences (UTC when empty).
type ChangeSpec struct {
	At         time.Time   `json:"at"`
	TimeZone   string      `json:"time_zone,omitempty"`
	Recurrence *Recurrence `json:"recurrence,omitempty"`
	Kind       ChangeKind  `json:"kind"`
	On         bool        `json:"on,omitempty"`
	Targeting  *Targeting  `json:"targeting,omitempty"`
	Default    *Serve      `json:"default,omitempty"`
}

// ChangeBefore is the state of the flag in the environment when the change was scheduled (or last
// edited): the targeting for a targeting change, the default serve for a default change, nothing
// for a toggle. A change that would overwrite a different state fails instead (see Resolve).
type ChangeBefore struct {
	Targeting *Targeting `json:"targeting,omitempty"`
	Default   *Serve     `json:"default,omitempty"`
}

// NewScheduledChange is the input that schedules a change.
type NewScheduledChange struct {
	Project     string `json:"project"`
	ID          string `json:"id"`
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	ChangeSpec
}

// ScheduledChange is a change to one flag in one environment, made when it is due.
type ScheduledChange struct {
	Project     string `json:"project"`
	ID          string `json:"id"`
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	ChangeSpec
	Before ChangeBefore   `json:"before"`
	Status ScheduleStatus `json:"status"`
	// ResolvedAt and FailureReason are set once the change was applied or failed.
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Runs and LastRunAt count the occurrences of a recurring change applied so far.
	Runs          int       `json:"runs,omitempty"`
	LastRunAt     time.Time `json:"last_run_at,omitzero"`
	FailureReason string    `json:"failure_reason,omitempty"`
	Version       int64     `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// ScheduleChange schedules a change of flag current (the flag named by in.Flag, as it is now) in
// in.Environment. The payload is validated against the flag now, so a change that cannot apply is
// refused at once rather than failing when due, and the flag's current state is captured as
// Before (see ChangeBefore) by the domain rather than trusted from the caller.
//
// Errors: EInvalid for bad input (id, at not after now, kind, a missing or extra payload, an
// invalid targeting or serve with fields under "targeting." or "default."); EInvalid at "flag" when
// current is nil (the flag does not exist); EConflict for an archived flag; EInvalid at
// "environment" for an environment neither in cat nor configured on the flag.
func ScheduleChange(in NewScheduledChange, current *Flag, cat *Catalog, now time.Time) ([]Event, error) {
	if !ValidKey(in.Project) {
		return nil, Invalid("project", "invalid project key %q", truncate(in.Project, 120))
	}
	if !ValidKey(in.ID) {
		return nil, Invalid("id", "invalid schedule id %q", truncate(in.ID, 120))
	}
	if err := changeTarget(in.Flag, in.Environment, current, cat); err != nil {
		return nil, err
	}
	spec, before, err := validateChange(current, in.Environment, in.ChangeSpec, cat, now)
	if err != nil {
		return nil, err
	}
	return []Event{&ScheduleCreated{Project: in.Project, ID: in.ID, Flag: in.Flag, Environment: in.Environment,
		ChangeSpec: spec, Before: before}}, nil
}

// changeTarget checks that current is the live flag named flag and that env can be configured on
// it. Shared by the delivery aggregates that take the flag itself.
func changeTarget(flag, env string, current *Flag, cat *Catalog) *Error {
	if !ValidKey(flag) {
		return Invalid("flag", "invalid flag key %q", truncate(flag, 120))
	}
	if current == nil || current.Key == "" {
		return Invalid("flag", "unknown flag %q", flag)
	}
	if current.Key != flag {
		return Errorf(EInternal, "loaded flag %q for a change of flag %q", current.Key, flag)
	}
	if err := current.live(); err != nil {
		return err
	}
	if !ValidKey(env) {
		return Invalid("environment", "invalid environment key %q", truncate(env, 120))
	}
	if err := current.hasEnvironment(env, cat); err != nil {
		return Invalid("environment", "unknown environment %q", env)
	}
	return nil
}

// validateChange checks spec against flag f in env and returns it normalized (time in UTC,
// targeting normalized with rule ids assigned) with the state it must find when due.
func validateChange(f *Flag, env string, spec ChangeSpec, cat *Catalog, now time.Time) (ChangeSpec, ChangeBefore, *Error) {
	out := ChangeSpec{At: spec.At.UTC(), TimeZone: spec.TimeZone, Kind: spec.Kind, On: spec.On}
	var before ChangeBefore
	loc := time.UTC
	if spec.TimeZone != "" {
		l, err := LoadTimeZone(spec.TimeZone)
		if err != nil {
			return out, before, err.(*Error)
		}
		loc = l
	}
	if spec.Recurrence != nil {
		if spec.Kind != ChangeToggle {
			// A targeting or default change is checked against the state captured when it was
			// scheduled; a recurring one would meet that state again only by accident.
			return out, before, Invalid("recurrence", "only a toggle can recur (kind \"toggle\"), not %q", truncate(string(spec.Kind), 40))
		}
		if !spec.At.IsZero() {
			return out, before, Invalid("at", "a recurring change takes no at: it first runs at the recurrence's next occurrence")
		}
		r, err := spec.Recurrence.normalize()
		if err != nil {
			return out, before, err
		}
		out.Recurrence = &r
		out.At = r.Next(now, loc).UTC()
		return out, before, nil
	}
	if !spec.At.After(now) {
		return out, before, Invalid("at", "the change must be scheduled in the future, not at %s", spec.At.UTC().Format(time.RFC3339))
	}
	if spec.Kind != ChangeToggle && spec.On {
		return out, before, Invalid("on", "on is only for a toggle")
	}
	if spec.Kind != ChangeTargeting && spec.Targeting != nil {
		return out, before, Invalid("targeting", "targeting is only for a targeting change")
	}
	if spec.Kind != ChangeDefault && spec.Default != nil {
		return out, before, Invalid("default", "default is only for a default change")
	}
	cur := f.targeting(env)
	switch spec.Kind {
	case ChangeToggle:
	case ChangeTargeting:
		if spec.Targeting == nil {
			return out, before, Invalid("targeting", "a targeting change needs the targeting")
		}
		t, err := f.validateTargeting(env, *spec.Targeting, cat)
		if err != nil {
			return out, before, err.WithField("targeting")
		}
		out.Targeting, before.Targeting = &t, &cur
	case ChangeDefault:
		if spec.Default == nil {
			return out, before, Invalid("default", "a default change needs the serve")
		}
		if err := validateServe(*spec.Default, f.Variations); err != nil {
			return out, before, err.WithField("default")
		}
		s, b := cloneServe(*spec.Default), cloneServe(cur.Default)
		out.Default, before.Default = &s, &b
	default:
		return out, before, Invalid("kind", "kind must be toggle, targeting or default, not %q", truncate(string(spec.Kind), 40))
	}
	return out, before, nil
}

// Edit replaces the time and payload of a pending change (the flag and environment stay), and
// captures the flag's state again as Before. current and cat are as for ScheduleChange.
func (s *ScheduledChange) Edit(spec ChangeSpec, current *Flag, cat *Catalog, now time.Time) ([]Event, error) {
	if err := s.pending(); err != nil {
		return nil, err
	}
	if err := changeTarget(s.Flag, s.Environment, current, cat); err != nil {
		return nil, err
	}
	out, before, err := validateChange(current, s.Environment, spec, cat, now)
	if err != nil {
		return nil, err
	}
	if reflect.DeepEqual(out, s.ChangeSpec) && reflect.DeepEqual(before, s.Before) {
		return nil, nil
	}
	return []Event{&ScheduleEdited{ChangeSpec: out, Before: before}}, nil
}

// Cancel cancels a pending change.
func (s *ScheduledChange) Cancel() ([]Event, error) {
	if err := s.pending(); err != nil {
		return nil, err
	}
	return []Event{&ScheduleCancelled{}}, nil
}

// ApplyCommandID is the command id under which the caller appends Resolve's flag events to the
// flag stream, so that a retried or concurrent resolution can never apply the change twice. A
// recurring change has one per occurrence: "<id>:apply:<occurrence in RFC 3339 UTC>".
func (s *ScheduledChange) ApplyCommandID() string {
	if s.Recurrence != nil {
		return s.ID + ":apply:" + s.At.UTC().Format(time.RFC3339)
	}
	return s.ID + ":apply"
}

// OutcomeCommandID is the command id of the outcome Resolve decided, on the schedule's stream.
func (s *ScheduledChange) OutcomeCommandID() string {
	if s.Recurrence != nil {
		return s.ID + ":outcome:" + s.At.UTC().Format(time.RFC3339)
	}
	return s.ID + ":outcome"
}

// AppliedOutcome is the outcome to record when the flag events of the due change (or occurrence)
// are found already appended, at flag version flagVersion (a crash or a race between the two
// appends): applied, without deciding again.
func (s *ScheduledChange) AppliedOutcome(flagVersion int64, now time.Time) []Event {
	if s.Recurrence != nil {
		return []Event{s.occurred(flagVersion, now)}
	}
	return []Event{&ScheduleApplied{Environment: s.Environment, At: now.UTC(), FlagVersion: flagVersion}}
}

// occurred is the outcome of the due occurrence of a recurring change, applied at now: the next
// occurrence is the first after now, so occurrences missed while no scheduler ran are not made
// up for (the latest one is applied, once).
func (s *ScheduledChange) occurred(flagVersion int64, now time.Time) *ScheduleOccurred {
	return &ScheduleOccurred{Environment: s.Environment, Occurrence: s.At.UTC(), At: now.UTC(), FlagVersion: flagVersion,
		Next: s.Recurrence.Next(now, s.location()).UTC()}
}

// location is the schedule's time zone (UTC when none, or when it cannot be loaded any more).
func (s *ScheduledChange) location() *time.Location {
	if s.TimeZone == "" {
		return time.UTC
	}
	loc, err := LoadTimeZone(s.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// NextRuns lists up to n coming runs of a pending change, in its time zone: its due time, and
// for a recurring change the occurrences after it. Nothing for a change no longer pending.
func (s *ScheduledChange) NextRuns(n int) []time.Time {
	if s == nil || s.Status != ScheduleStatusPending || n <= 0 || s.At.IsZero() {
		return []time.Time{}
	}
	loc := s.location()
	if s.Recurrence == nil {
		return []time.Time{s.At.In(loc)}
	}
	return s.Recurrence.Occurrences(s.At, loc, n)
}

// Due reports whether the pending change is due at now.
func (s *ScheduledChange) Due(now time.Time) bool {
	return s != nil && s.Status == ScheduleStatusPending && !now.Before(s.At)
}

// Resolve decides a due change against current, the flag as it is now, and cat, the project's
// catalog (it must list the environments; a missing environment fails the change). It returns
// apply, the flag events to append to the flag stream (with command id ApplyCommandID(); possibly
// none), and outcome, the schedule event to append after them: ScheduleApplied or
// ScheduleFailed{Reason}. The caller appends apply first, then outcome.
//
// Errors (nothing to append): ENotFound for a missing change, EConflict when it is not pending or
// not due yet at now, EInternal when current is another flag. Everything else is an outcome:
//   - the flag no longer exists or is archived, or the environment is gone: failed;
//   - the flag already is in the state the change produces: applied, no flag events (this also
//     makes a retry after the flag events were appended but the outcome was not idempotent);
//   - targeting: the environment's current targeting differs from Before: failed "targeting of
//     <flag> in <env> changed since the change was scheduled (<the parts that changed>)";
//   - default: the current default serve differs from Before: failed likewise, naming both serves;
//   - toggle: applied, even when the flag already is in that state (no flag events then);
//   - the flag's own command refuses the change (e.g. a variation no longer exists): failed with
//     its message and field.
func (s *ScheduledChange) Resolve(current *Flag, cat *Catalog, now time.Time) (apply, outcome []Event, err error) {
	if err := s.pending(); err != nil {
		return nil, nil, err
	}
	if now.Before(s.At) {
		return nil, nil, Errorf(EConflict, "scheduled change %q is not due until %s", s.ID, s.At.Format(time.RFC3339))
	}
	at := now.UTC()
	failed := func(format string, args ...any) ([]Event, []Event, error) {
		return nil, []Event{&ScheduleFailed{Environment: s.Environment, At: at, Reason: fmt.Sprintf(format, args...)}}, nil
	}
	if current == nil || current.Key == "" {
		return failed("flag %q no longer exists", s.Flag)
	}
	if current.Key != s.Flag {
		return nil, nil, Errorf(EInternal, "loaded flag %q to resolve a change of flag %q", current.Key, s.Flag)
	}
	if current.Archived {
		return failed("flag %q is archived", s.Flag)
	}
	if !cat.HasEnvironment(s.Environment) {
		return failed("environment %q no longer exists", s.Environment)
	}
	cur := current.targeting(s.Environment)
	var evs []Event
	var cmdErr error
	switch s.Kind {
	case ChangeToggle:
		evs, cmdErr = current.Toggle(s.Environment, s.On, cat)
	case ChangeTargeting:
		if s.Targeting == nil || s.Before.Targeting == nil {
			return failed("the scheduled change has no targeting")
		}
		if reflect.DeepEqual(cur, normalizeTargeting(*s.Targeting)) {
			break
		}
		if before := normalizeTargeting(*s.Before.Targeting); !reflect.DeepEqual(cur, before) {
			return failed("targeting of %q in %q changed since the change was scheduled (%s)",
				s.Flag, s.Environment, targetingDiff(before, cur))
		}
		evs, cmdErr = current.UpdateTargeting(s.Environment, *s.Targeting, cat)
	case ChangeDefault:
		if s.Default == nil || s.Before.Default == nil {
			return failed("the scheduled change has no default serve")
		}
		if sameServe(cur.Default, *s.Default) {
			break
		}
		if !sameServe(cur.Default, *s.Before.Default) {
			return failed("default of %q in %q changed since the change was scheduled (was %s, now %s)",
				s.Flag, s.Environment, describeServe(*s.Before.Default), describeServe(cur.Default))
		}
		t := cur
		t.Default = cloneServe(*s.Default)
		evs, cmdErr = current.UpdateTargeting(s.Environment, t, cat)
	default:
		return failed("unknown kind of change %q", s.Kind)
	}
	if cmdErr != nil {
		return failed("%s", describeError(cmdErr))
	}
	if s.Recurrence != nil {
		return evs, []Event{s.occurred(current.Version+int64(len(evs)), now)}, nil
	}
	return evs, []Event{&ScheduleApplied{Environment: s.Environment, At: at, FlagVersion: current.Version + int64(len(evs))}}, nil
}

// describeError renders a command's error for a failure reason: its message and field.
func describeError(err error) string {
	var b strings.Builder
	b.WriteString(ErrorMessage(err))
	if de := (*Error)(nil); errors.As(err, &de) && de.Field != "" {
		fmt.Fprintf(&b, " (field %s)", de.Field)
	}
	return b.String()
}

// targetingDiff names the parts of a targeting that differ between a and b.
func targetingDiff(a, b Targeting) string {
	var parts []string
	add := func(name string, differ bool) {
		if differ {
			parts = append(parts, name)
		}
	}
	add("on", a.On != b.On)
	add("off variation", a.OffVariation != b.OffVariation)
	add("prerequisites", !reflect.DeepEqual(a.Prerequisites, b.Prerequisites))
	add("individual targets", !reflect.DeepEqual(a.Targets, b.Targets))
	add("rules", !reflect.DeepEqual(a.Rules, b.Rules))
	add("default", !sameServe(a.Default, b.Default))
	if len(parts) == 0 {
		return "no visible difference"
	}
	return strings.Join(parts, ", ")
}

// sameServe reports whether two serves serve the same, ignoring nil versus empty lists.
func sameServe(a, b Serve) bool {
	return reflect.DeepEqual(cloneServe(a), cloneServe(b))
}

// describeServe renders a serve for a message: variation "red", or split red 25%, blue 75%.
func describeServe(s Serve) string {
	if s.Split == nil {
		return fmt.Sprintf("variation %q", s.Variation)
	}
	var b strings.Builder
	b.WriteString("split ")
	for i, w := range s.Split.Variations {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s%%", w.Variation, strconv.FormatFloat(float64(w.Weight)*100/BucketCount, 'f', -1, 64))
	}
	return b.String()
}

func (s *ScheduledChange) pending() *Error {
	if s == nil || s.ID == "" {
		return Errorf(ENotFound, "scheduled change not found")
	}
	if s.Status != ScheduleStatusPending {
		return Errorf(EConflict, "scheduled change %q is %s, no longer pending", s.ID, s.Status)
	}
	return nil
}

// Apply changes the in-memory state by one event of the schedule stream and bumps Version. Events
// of other aggregates are ignored.
func (s *ScheduledChange) Apply(e Event) { s.apply(e) }

func (s *ScheduledChange) apply(e Event) bool {
	switch e := e.(type) {
	case *ScheduleCreated:
		s.Project, s.ID, s.Flag, s.Environment = e.Project, e.ID, e.Flag, e.Environment
		s.setSpec(e.ChangeSpec, e.Before)
		s.Status = ScheduleStatusPending
	case *ScheduleEdited:
		s.setSpec(e.ChangeSpec, e.Before)
	case *ScheduleCancelled:
		s.Status = ScheduleStatusCancelled
	case *ScheduleApplied:
		s.Status, s.ResolvedAt = ScheduleStatusApplied, e.At
	case *ScheduleFailed:
		s.Status, s.ResolvedAt, s.FailureReason = ScheduleStatusFailed, e.At, e.Reason
	case *ScheduleOccurred:
		s.At, s.LastRunAt = e.Next, e.At
		s.Runs++
	default:
		return false
	}
	s.Version++
	return true
}

// setSpec stores deep copies, so the state never aliases events.
func (s *ScheduledChange) setSpec(spec ChangeSpec, before ChangeBefore) {
	s.ChangeSpec = ChangeSpec{At: spec.At, TimeZone: spec.TimeZone, Kind: spec.Kind, On: spec.On}
	if spec.Recurrence != nil {
		r := Recurrence{Weekdays: slices.Clone(spec.Recurrence.Weekdays), Time: spec.Recurrence.Time}
		s.Recurrence = &r
	}
	s.Before = ChangeBefore{}
	if spec.Targeting != nil {
		t := normalizeTargeting(*spec.Targeting)
		s.Targeting = &t
	}
	if spec.Default != nil {
		d := cloneServe(*spec.Default)
		s.Default = &d
	}
	if before.Targeting != nil {
		t := normalizeTargeting(*before.Targeting)
		s.Before.Targeting = &t
	}
	if before.Default != nil {
		d := cloneServe(*before.Default)
		s.Before.Default = &d
	}
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record.
func (s *ScheduledChange) ApplyRecorded(r RecordedEvent) error {
	e, err := r.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(scheduleAggregate, r, s.ID != "", isType[*ScheduleCreated](e)); err != nil {
		return err
	}
	if !s.apply(e) {
		return unexpectedEvent(scheduleAggregate, r)
	}
	s.Version = r.Version
	s.UpdatedAt = r.OccurredAt
	if _, ok := e.(*ScheduleCreated); ok {
		s.CreatedAt = r.OccurredAt
	}
	return nil
}

// FoldScheduledChange rebuilds a scheduled change from its stream. It returns (nil, nil) for an
// empty stream.
func FoldScheduledChange(events []RecordedEvent) (*ScheduledChange, error) {
	if len(events) == 0 {
		return nil, nil
	}
	s := &ScheduledChange{}
	for _, r := range events {
		if err := s.ApplyRecorded(r); err != nil {
			return nil, err
		}
	}
	return s, nil
}
