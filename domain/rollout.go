package domain

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Rollout limits.
const (
	MaxRolloutSteps = 100
	// MinRolloutPercent is one bucket: a step must move at least one bucket of users.
	MinRolloutPercent = 100.0 / BucketCount
	rolloutAggregate  = "rollout"
)

// RolloutStatus is where a progressive rollout is: scheduled (no step applied yet) -> running ->
// completed after its last step; paused from scheduled or running and back; aborted from any
// status but completed.
type RolloutStatus string

const (
	RolloutStatusScheduled RolloutStatus = "scheduled"
	RolloutStatusRunning   RolloutStatus = "running"
	RolloutStatusPaused    RolloutStatus = "paused"
	RolloutStatusCompleted RolloutStatus = "completed"
	RolloutStatusAborted   RolloutStatus = "aborted"
)

// RolloutStep serves the rolled-out variation to Percent of the users from At on.
type RolloutStep struct {
	At      time.Time `json:"at"`
	Percent float64   `json:"percent"`
}

// StandardRolloutPercents are the steps of the usual plan: 1%, 5%, 25%, 50%, 100%.
func StandardRolloutPercents() []float64 { return []float64{1, 5, 25, 50, 100} }

// RolloutTemplate builds a plan from start, one step every interval, with the given percents, e.g.
// RolloutTemplate(start, time.Hour, StandardRolloutPercents()...) for an hourly rollout. It does not
// validate: CreateRollout does (see ValidateRolloutSteps).
func RolloutTemplate(start time.Time, every time.Duration, percents ...float64) []RolloutStep {
	out := make([]RolloutStep, len(percents))
	at := start
	for i, p := range percents {
		out[i] = RolloutStep{At: at, Percent: p}
		at = at.Add(every)
	}
	return out
}

// RolloutWeight converts a percent of users into bucket units: round(percent × BucketCount / 100),
// halves away from zero (12.3455% is 12346 buckets of 100000), clamped to 0..BucketCount. The
// other variation receives BucketCount minus that, so a split always adds up to BucketCount.
func RolloutWeight(percent float64) int {
	switch {
	case math.IsNaN(percent) || percent <= 0:
		return 0
	case percent >= 100:
		return BucketCount
	}
	return int(math.Round(percent * BucketCount / 100))
}

// ValidateRolloutSteps checks a plan: 1 to MaxRolloutSteps steps; times set, the first not before
// now, each strictly after the previous one; percents finite, 0 < p <= 100, and strictly
// increasing in bucket units (see RolloutWeight), so every step moves at least one bucket of users.
func ValidateRolloutSteps(steps []RolloutStep, now time.Time) error {
	if _, err := validateRolloutSteps(steps, now); err != nil {
		return err
	}
	return nil
}

func validateRolloutSteps(steps []RolloutStep, now time.Time) ([]RolloutStep, *Error) {
	switch n := len(steps); {
	case n == 0:
		return nil, Invalid("steps", "a rollout needs at least 1 step")
	case n > MaxRolloutSteps:
		return nil, Invalid("steps", "at most %d steps, got %d", MaxRolloutSteps, n)
	}
	out := make([]RolloutStep, len(steps))
	prevWeight := 0
	for i, s := range steps {
		field := fmt.Sprintf("steps[%d]", i)
		switch {
		case s.At.IsZero():
			return nil, Invalid(field+".at", "the step's time is required")
		case i == 0 && s.At.Before(now):
			return nil, Invalid(field+".at", "the first step is in the past (%s)", s.At.UTC().Format(time.RFC3339))
		case i > 0 && !s.At.After(steps[i-1].At):
			return nil, Invalid(field+".at", "each step must come after the previous one (steps[%d])", i-1)
		}
		if math.IsNaN(s.Percent) || math.IsInf(s.Percent, 0) || s.Percent <= 0 || s.Percent > 100 {
			return nil, Invalid(field+".percent", "percent must be more than 0 and at most 100, got %v", s.Percent)
		}
		w := RolloutWeight(s.Percent)
		switch {
		case w < 1:
			return nil, Invalid(field+".percent", "%v%% is less than one bucket (%v%%)", s.Percent, MinRolloutPercent)
		case w <= prevWeight:
			return nil, Invalid(field+".percent", "each step must serve more users than the previous one (steps[%d]: %v%%)", i-1, steps[i-1].Percent)
		}
		prevWeight = w
		out[i] = RolloutStep{At: s.At.UTC(), Percent: s.Percent}
	}
	return out, nil
}

// NewRollout is the input that creates a progressive rollout.
type NewRollout struct {
	Project     string `json:"project"`
	ID          string `json:"id"`
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	// Variation is rolled out; Other receives the rest. For a boolean flag they default to the
	// variations valued true and false (Other to the variation that is not Variation); for other
	// flags both are required.
	Variation string `json:"variation,omitempty"`
	Other     string `json:"other,omitempty"`
	// BucketBy is the context attribute users are bucketed by; empty is the targeting key.
	BucketBy string        `json:"bucket_by,omitempty"`
	Steps    []RolloutStep `json:"steps"`
	// Guards gate the steps (see RolloutGuard); validate their goals with ValidateRolloutGuards
	// first. OnGuardFailure defaults to rollback.
	Guards         []RolloutGuard `json:"guards,omitempty"`
	OnGuardFailure GuardAction    `json:"on_guard_failure,omitempty"`
}

// Rollout is a plan that moves the default serve of one flag in one environment step by step from
// Other to Variation. The rollout owns that default serve while it runs: it never changes the
// flag's rules, targets or on/off state.
type Rollout struct {
	Project     string        `json:"project"`
	ID          string        `json:"id"`
	Flag        string        `json:"flag"`
	Environment string        `json:"environment"`
	Variation   string        `json:"variation"`
	Other       string        `json:"other"`
	BucketBy    string        `json:"bucket_by,omitempty"`
	Steps       []RolloutStep `json:"steps"`
	// Start is the default serve when the rollout was created; Abort restores it.
	Start  Serve         `json:"start"`
	Status RolloutStatus `json:"status"`
	// Next is the index of the next step to apply (len(Steps) once completed); the steps before it
	// were applied, or skipped when listed in Skipped.
	Next    int   `json:"next"`
	Skipped []int `json:"skipped"`
	// AlreadyServed lists the skipped steps that were at or below the share the default already
	// served when the rollout was created (see CreateRollout).
	AlreadyServed []int `json:"already_served,omitempty"`
	// Percent is the share of Variation the rollout serves now: that of the last step applied, 0
	// before the first step and after a rollback.
	Percent    float64 `json:"percent"`
	RolledBack bool    `json:"rolled_back"`
	// Expected is the default serve the rollout last wrote (Start before the first step). A step
	// finding another default refuses to overwrite it (see ApplyStep). Nil right after Resume:
	// resuming is the decision to go on from whatever the default is.
	Expected *Serve    `json:"expected,omitempty"`
	PausedAt time.Time `json:"paused_at,omitzero"`
	Reason   string    `json:"reason,omitempty"` // of the last pause, rollback or abort
	// Guards gate the steps once the variation is served (see Guarded); Waiting says why a due
	// step waits on them; PendingGuard is a fired guard whose action (OnGuardFailure) is not
	// recorded yet; LastGuardFired is the last firing, with its evidence.
	Guards         []RolloutGuard `json:"guards,omitempty"`
	OnGuardFailure GuardAction    `json:"on_guard_failure,omitempty"`
	Waiting        *RolloutWait   `json:"waiting,omitempty"`
	PendingGuard   *GuardFired    `json:"pending_guard,omitempty"`
	LastGuardFired *GuardFired    `json:"last_guard_fired,omitempty"`
	Version        int64          `json:"version"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
}

// CreateRollout creates a rollout of current (the flag named by in.Flag, as it is now) in
// in.Environment, capturing the environment's default serve as Start. active lists the ids of the
// other rollouts of this flag and environment that are not completed or aborted (the caller knows
// them); any is EConflict (Details["rollouts"]): two plans would fight over one default serve.
// experiments lists the experiments running on the flag in the environment; any is EConflict at
// flag (Details["experiments"]): the experiment serves the default the rollout would move, and a
// rollout's auto-ops could turn the flag off under it.
// Errors as for ScheduleChange, plus EInvalid at variation, other, bucket_by and steps[i].
func CreateRollout(in NewRollout, current *Flag, cat *Catalog, active, experiments []string, now time.Time) ([]Event, error) {
	if !ValidKey(in.Project) {
		return nil, Invalid("project", "invalid project key %q", truncate(in.Project, 120))
	}
	if !ValidKey(in.ID) {
		return nil, Invalid("id", "invalid rollout id %q", truncate(in.ID, 120))
	}
	if err := changeTarget(in.Flag, in.Environment, current, cat); err != nil {
		return nil, err
	}
	var others []string
	for _, id := range active {
		if id != in.ID {
			others = append(others, id)
		}
	}
	if len(others) > 0 {
		return nil, &Error{Code: EConflict,
			Message: fmt.Sprintf("flag %q is already being rolled out in environment %q (rollouts %s)", in.Flag, in.Environment, quoteList(others)),
			Details: map[string]any{"rollouts": others}}
	}
	if len(experiments) > 0 {
		return nil, &Error{Code: EConflict, Field: "flag",
			Message: fmt.Sprintf("experiment %s is running on flag %q in environment %q and serves its default: stop it (or conclude it) before rolling the flag out",
				quoteList(experiments), in.Flag, in.Environment),
			Details: map[string]any{"experiments": experiments}}
	}
	v, other := in.Variation, in.Other
	if current.Type == FlagBoolean && len(current.Variations) == 2 {
		if v == "" {
			v = defaultVariation(FlagBoolean, current.Variations, true)
		}
		if other == "" {
			for _, x := range current.Variations {
				if x.Key != v {
					other = x.Key
					break
				}
			}
		}
	}
	switch {
	case v == "":
		return nil, Invalid("variation", "the variation to roll out is required")
	case current.Variation(v) == nil:
		return nil, Invalid("variation", "flag %q has no variation %q", in.Flag, truncate(v, 120))
	case other == "":
		return nil, Invalid("other", "the variation serving the rest is required")
	case current.Variation(other) == nil:
		return nil, Invalid("other", "flag %q has no variation %q", in.Flag, truncate(other, 120))
	case other == v:
		return nil, Invalid("other", "the variation serving the rest must differ from the one rolled out")
	}
	if in.BucketBy != "" {
		if msg := validAttribute(in.BucketBy); msg != "" {
			return nil, Invalid("bucket_by", "%s", msg)
		}
	}
	steps, err := validateRolloutSteps(in.Steps, now)
	if err != nil {
		return nil, err
	}
	guards, onFailure, gerr := validateGuards(in.Guards, in.OnGuardFailure)
	if gerr != nil {
		return nil, gerr
	}
	start := cloneServe(current.targeting(in.Environment).Default)
	events := []Event{&RolloutCreated{Project: in.Project, ID: in.ID, Flag: in.Flag, Environment: in.Environment,
		Variation: v, Other: other, BucketBy: in.BucketBy, Steps: steps, Start: start, Guards: guards, OnGuardFailure: onFailure}}
	// A rollout never takes users away from the variation it rolls out: steps at or below the
	// share the default already serves are skipped now (a flag at 10% given the standard plan goes
	// on at 25%, not back to 1%), and the rollout's plan says why.
	served := ServedWeight(start, v)
	if !current.targeting(in.Environment).On {
		served = 0 // an off flag serves its off variation: nobody gets the default yet
	}
	for i, s := range steps {
		if RolloutWeight(s.Percent) > served {
			break
		}
		if i == len(steps)-1 {
			return nil, Invalid("steps", "flag %q already serves %s%% of users %q in environment %q: every step is at or below that, so the rollout would change nothing",
				in.Flag, formatPercent(served), v, in.Environment)
		}
		events = append(events, &RolloutStepSkipped{Environment: in.Environment, Index: i, Percent: s.Percent, AlreadyServed: true})
	}
	return events, nil
}

// ServedWeight is the share, in bucket units, that a default serve gives variation: BucketCount
// when it serves it to everybody, its weight in a split, 0 otherwise.
func ServedWeight(s Serve, variation string) int {
	if s.Split == nil {
		if s.Variation == variation {
			return BucketCount
		}
		return 0
	}
	w := 0
	for _, x := range s.Split.Variations {
		if x.Variation == variation {
			w += x.Weight
		}
	}
	return w
}

// formatPercent prints a weight as a percent without trailing zeros (1000 -> "1", 12345 -> "12.345").
func formatPercent(weight int) string {
	return strconv.FormatFloat(float64(weight)*100/BucketCount, 'f', -1, 64)
}

// ServeAt returns the default serve the rollout writes for weight buckets of Variation: Variation
// itself at BucketCount, Other itself at 0, and otherwise the split [Variation weight, Other
// BucketCount-weight] in that order, so users keep their variation as the weight grows (the first
// buckets stay with Variation).
func (r *Rollout) ServeAt(weight int) Serve {
	switch {
	case weight >= BucketCount:
		return Serve{Variation: r.Variation}
	case weight <= 0:
		return Serve{Variation: r.Other}
	}
	return Serve{Split: &Split{BucketBy: r.BucketBy, Variations: []WeightedVariation{
		{Variation: r.Variation, Weight: weight}, {Variation: r.Other, Weight: BucketCount - weight}}}}
}

// Active reports whether the rollout still has a say over the flag: scheduled, running or paused.
func (r *Rollout) Active() bool {
	return r != nil && r.ID != "" && (r.Status == RolloutStatusScheduled || r.Status == RolloutStatusRunning ||
		r.Status == RolloutStatusPaused)
}

// Due returns the step to apply at now: the latest step whose time has come among those not yet
// applied, if the rollout is scheduled or running. When the service was down across several
// steps, only the latest due one applies; ApplyStep records the ones before it as skipped, so the
// rollout never repeats a step and never goes backwards.
func (r *Rollout) Due(now time.Time) (stepIndex int, ok bool) {
	if r == nil || (r.Status != RolloutStatusScheduled && r.Status != RolloutStatusRunning) {
		return -1, false
	}
	stepIndex = -1
	for i := r.Next; i < len(r.Steps) && !r.Steps[i].At.After(now); i++ {
		stepIndex = i
	}
	return stepIndex, stepIndex >= 0
}

// ApplyStep applies step i (as returned by Due) to current, the flag as it is now, with cat the
// project's catalog. It returns the flag events that write the step's split as the environment's
// default serve (ServeAt(RolloutWeight(percent)); none if the default is that already) and the
// rollout events: RolloutStepSkipped for each step before i not yet applied, RolloutStepApplied,
// and RolloutCompleted after the last step. The caller appends the flag events (with command id
// StepCommandID(i), so a step is written at most once), then the rollout events.
//
// Errors (nothing to append): ENotFound for a missing rollout or flag, or an environment gone;
// EConflict when the rollout is paused, completed or aborted, when step i was already applied or
// skipped, when the flag is archived, or when the default serve is not what the rollout last wrote
// (someone changed it by hand: Details["expected"], Details["found"]); EInvalid at index for a step
// that does not exist; the flag's own validation errors (a variation was removed). The scheduler
// should pause the rollout with the error's message as the reason.
func (r *Rollout) ApplyStep(i int, current *Flag, cat *Catalog) (flagEvents, rolloutEvents []Event, err error) {
	if err := r.exists(); err != nil {
		return nil, nil, err
	}
	if r.Status != RolloutStatusScheduled && r.Status != RolloutStatusRunning {
		return nil, nil, Errorf(EConflict, "rollout %q is %s", r.ID, r.Status)
	}
	switch {
	case i < 0 || i >= len(r.Steps):
		return nil, nil, Invalid("index", "rollout %q has no step %d (it has %d)", r.ID, i, len(r.Steps))
	case i < r.Next:
		return nil, nil, Errorf(EConflict, "step %d of rollout %q was already applied or skipped: steps never repeat or go backwards", i, r.ID)
	case r.PendingGuard != nil:
		return nil, nil, Errorf(EConflict, "rollout %q: guard %q fired and its action is pending", r.ID, r.PendingGuard.Guard)
	}
	cur, ferr := r.flagTargeting(current, cat)
	if ferr != nil {
		return nil, nil, ferr
	}
	if r.Expected != nil && !sameServe(cur.Default, *r.Expected) {
		return nil, nil, &Error{Code: EConflict,
			Message: fmt.Sprintf("default of %q in %q changed outside the rollout (expected %s, found %s): resume the rollout to overwrite it, or abort it",
				r.Flag, r.Environment, describeServe(*r.Expected), describeServe(cur.Default)),
			Details: map[string]any{"expected": describeServe(*r.Expected), "found": describeServe(cur.Default)}}
	}
	step := r.Steps[i]
	w := RolloutWeight(step.Percent)
	t := cur
	t.Default = r.ServeAt(w)
	flagEvents, err = current.UpdateTargeting(r.Environment, t, cat)
	if err != nil {
		return nil, nil, err
	}
	for j := r.Next; j < i; j++ {
		rolloutEvents = append(rolloutEvents, &RolloutStepSkipped{Environment: r.Environment, Index: j, Percent: r.Steps[j].Percent})
	}
	rolloutEvents = append(rolloutEvents, &RolloutStepApplied{Environment: r.Environment, Index: i, Percent: step.Percent, Weight: w})
	if i == len(r.Steps)-1 {
		rolloutEvents = append(rolloutEvents, &RolloutCompleted{Environment: r.Environment})
	}
	return flagEvents, rolloutEvents, nil
}

// StepCommandID is the command id under which the caller appends the flag events of step i, so
// that a retried or concurrent scheduler can never apply a step twice.
func (r *Rollout) StepCommandID(i int) string { return fmt.Sprintf("%s:step:%d", r.ID, i) }

// flagTargeting checks that current is the rollout's live flag with its environment and returns
// the environment's targeting.
func (r *Rollout) flagTargeting(current *Flag, cat *Catalog) (Targeting, error) {
	if current == nil || current.Key == "" {
		return Targeting{}, Errorf(ENotFound, "flag %q not found", r.Flag)
	}
	if current.Key != r.Flag {
		return Targeting{}, Errorf(EInternal, "loaded flag %q for rollout %q of flag %q", current.Key, r.ID, r.Flag)
	}
	if err := current.live(); err != nil {
		return Targeting{}, err
	}
	if err := current.hasEnvironment(r.Environment, cat); err != nil {
		return Targeting{}, err
	}
	return current.targeting(r.Environment), nil
}

// Pause stops a scheduled or running rollout at now; reason is optional (auto-ops gives one).
func (r *Rollout) Pause(reason string, now time.Time) ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	if r.Status != RolloutStatusScheduled && r.Status != RolloutStatusRunning {
		return nil, Errorf(EConflict, "rollout %q is %s: only a scheduled or running rollout can be paused", r.ID, r.Status)
	}
	if err := validReason("reason", reason, false); err != nil {
		return nil, err
	}
	return []Event{&RolloutPaused{Environment: r.Environment, At: now.UTC(), Reason: reason}}, nil
}

// Resume restarts a paused rollout at now. Every step not yet applied moves later by the time
// spent paused (RolloutResumed.Shift = now - PausedAt), so the plan keeps its rhythm: a step that
// was due one hour after the pause is due one hour after the resume, and a step that was overdue
// when paused is due at once. Resuming also accepts the flag's default serve as it is now (see
// Rollout.Expected): the next step overwrites it.
func (r *Rollout) Resume(now time.Time) ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	if r.Status != RolloutStatusPaused {
		return nil, Errorf(EConflict, "rollout %q is %s: only a paused rollout can resume", r.ID, r.Status)
	}
	shift := now.Sub(r.PausedAt)
	if shift < 0 {
		shift = 0
	}
	return []Event{&RolloutResumed{Environment: r.Environment, At: now.UTC(), Shift: shift}}, nil
}

// RollBack sends the rollout back to 0%: the flag's default serve becomes Other (ServeAt(0)) and
// the rollout pauses (RolloutRolledBack, then RolloutPaused unless it was paused). This is what
// auto-ops does when a metric goes bad. It writes the flag even when the default was changed by
// hand: it is a safety action. The steps already applied stay applied: after Resume, the rollout
// stays at 0% until its next step is due, which then applies its own percent.
//
// A rollout that has applied no step serves nothing yet: it is only paused (no flag events), and
// a paused one, or one already rolled back and paused, is a no-op. Completed and aborted rollouts
// are EConflict; flag problems are errors as for ApplyStep.
func (r *Rollout) RollBack(reason string, current *Flag, cat *Catalog, now time.Time) (flagEvents, rolloutEvents []Event, err error) {
	if err := r.exists(); err != nil {
		return nil, nil, err
	}
	if !r.Active() {
		return nil, nil, Errorf(EConflict, "rollout %q is %s", r.ID, r.Status)
	}
	if err := validReason("reason", reason, false); err != nil {
		return nil, nil, err
	}
	at := now.UTC()
	paused := r.Status == RolloutStatusPaused
	if r.Next == 0 {
		if paused {
			return nil, nil, nil
		}
		return nil, []Event{&RolloutPaused{Environment: r.Environment, At: at, Reason: reason}}, nil
	}
	cur, ferr := r.flagTargeting(current, cat)
	if ferr != nil {
		return nil, nil, ferr
	}
	t := cur
	t.Default = r.ServeAt(0)
	flagEvents, err = current.UpdateTargeting(r.Environment, t, cat)
	if err != nil {
		return nil, nil, err
	}
	if paused && r.RolledBack && len(flagEvents) == 0 {
		return nil, nil, nil
	}
	rolloutEvents = []Event{&RolloutRolledBack{Environment: r.Environment, At: at, Reason: reason}}
	if !paused {
		rolloutEvents = append(rolloutEvents, &RolloutPaused{Environment: r.Environment, At: at, Reason: reason})
	}
	return flagEvents, rolloutEvents, nil
}

// Abort ends a scheduled, running or paused rollout at now. If the rollout has applied a step,
// the flag events write the starting default serve (Start) back into the environment's targeting,
// whatever the default is now: aborting means "put it back as it was". When that is impossible
// (the flag was archived or lost the environment, or Start names a variation that no longer
// exists) the rollout is aborted anyway, without flag events, and RolloutAborted says why in
// RestoreFailure. Completed and aborted rollouts are EConflict.
func (r *Rollout) Abort(reason string, current *Flag, cat *Catalog, now time.Time) (flagEvents, rolloutEvents []Event, err error) {
	if err := r.exists(); err != nil {
		return nil, nil, err
	}
	if !r.Active() {
		return nil, nil, Errorf(EConflict, "rollout %q is %s", r.ID, r.Status)
	}
	if err := validReason("reason", reason, false); err != nil {
		return nil, nil, err
	}
	ev := &RolloutAborted{Environment: r.Environment, At: now.UTC(), Reason: reason}
	if r.Next > 0 {
		cur, ferr := r.flagTargeting(current, cat)
		if ferr == nil {
			t := cur
			t.Default = cloneServe(r.Start)
			flagEvents, ferr = current.UpdateTargeting(r.Environment, t, cat)
		}
		switch {
		case ErrorCode(ferr) == EInternal:
			return nil, nil, ferr
		case ferr != nil:
			ev.RestoreFailure = "the starting default could not be restored: " + describeError(ferr)
		default:
			ev.Restored = true
		}
	}
	return flagEvents, []Event{ev}, nil
}

func (r *Rollout) exists() *Error {
	if r == nil || r.ID == "" {
		return Errorf(ENotFound, "rollout not found")
	}
	return nil
}

// Apply changes the in-memory state by one event of the rollout stream and bumps Version. Events
// of other aggregates are ignored.
func (r *Rollout) Apply(e Event) { r.apply(e) }

func (r *Rollout) apply(e Event) bool {
	switch e := e.(type) {
	case *RolloutCreated:
		r.Project, r.ID, r.Flag, r.Environment = e.Project, e.ID, e.Flag, e.Environment
		r.Variation, r.Other, r.BucketBy = e.Variation, e.Other, e.BucketBy
		r.Steps = append([]RolloutStep{}, e.Steps...)
		r.Start = cloneServe(e.Start)
		start := cloneServe(e.Start)
		r.Expected = &start
		r.Status, r.Next, r.Skipped = RolloutStatusScheduled, 0, []int{}
		r.Guards, r.OnGuardFailure = append([]RolloutGuard(nil), e.Guards...), e.OnGuardFailure
	case *RolloutStepWaiting:
		r.Waiting = &RolloutWait{Step: e.Step, Since: e.At, Reason: e.Reason, Evidence: e.Evidence}
	case *GuardFired:
		r.PendingGuard, r.LastGuardFired, r.Waiting = e, e, nil
	case *RolloutStepSkipped:
		r.Skipped = append(r.Skipped, e.Index)
		if e.AlreadyServed {
			r.AlreadyServed = append(r.AlreadyServed, e.Index)
		}
		r.Next = e.Index + 1
	case *RolloutStepApplied:
		r.Next, r.Percent, r.RolledBack, r.Waiting = e.Index+1, e.Percent, false, nil
		s := r.ServeAt(e.Weight)
		r.Expected = &s
		r.Status = RolloutStatusRunning
	case *RolloutCompleted:
		r.Status = RolloutStatusCompleted
	case *RolloutPaused:
		r.Status, r.PausedAt, r.Reason = RolloutStatusPaused, e.At, e.Reason
		r.PendingGuard, r.Waiting = nil, nil
	case *RolloutResumed:
		for i := r.Next; i < len(r.Steps); i++ {
			r.Steps[i].At = r.Steps[i].At.Add(e.Shift)
		}
		r.Status = RolloutStatusScheduled
		if r.Next > 0 {
			r.Status = RolloutStatusRunning
		}
		r.PausedAt, r.Expected = time.Time{}, nil
	case *RolloutRolledBack:
		r.Percent, r.RolledBack, r.Reason, r.Waiting = 0, true, e.Reason, nil
		s := r.ServeAt(0)
		r.Expected = &s
	case *RolloutAborted:
		r.Status, r.Reason, r.PendingGuard, r.Waiting = RolloutStatusAborted, e.Reason, nil, nil
	default:
		return false
	}
	r.Version++
	return true
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record.
func (r *Rollout) ApplyRecorded(rec RecordedEvent) error {
	e, err := rec.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(rolloutAggregate, rec, r.ID != "", isType[*RolloutCreated](e)); err != nil {
		return err
	}
	if !r.apply(e) {
		return unexpectedEvent(rolloutAggregate, rec)
	}
	r.Version = rec.Version
	r.UpdatedAt = rec.OccurredAt
	if _, ok := e.(*RolloutCreated); ok {
		r.CreatedAt = rec.OccurredAt
	}
	return nil
}

// FoldRollout rebuilds a rollout from its stream. It returns (nil, nil) for an empty stream.
func FoldRollout(events []RecordedEvent) (*Rollout, error) {
	if len(events) == 0 {
		return nil, nil
	}
	r := &Rollout{}
	for _, rec := range events {
		if err := r.ApplyRecorded(rec); err != nil {
			return nil, err
		}
	}
	return r, nil
}
