package domain

import (
	"fmt"
	"strings"
	"time"
)

// Release pipelines: a pipeline is a named template of stages (an environment, a change there: a
// toggle on or a guarded rollout, and a gate before it: a wait or a manual approval); a release
// puts one flag through a pipeline, stage by stage. The release is the event-sourced aggregate
// whose state (stage, status, evidence) the scheduler advances and people pause, resume, skip,
// approve and abort. Every stage event carries its environment, so the audit of an environment
// shows the stages that ran in it.

const (
	// MaxPipelineStages bounds a pipeline.
	MaxPipelineStages = 20
	pipelineAggregate = "pipeline"
	releaseAggregate  = "release"
)

// StageAction is the change a stage makes in its environment.
type StageAction string

const (
	StageToggleOn StageAction = "toggle_on" // turn the flag on (serving its default)
	StageRollout  StageAction = "rollout"   // a progressive (guarded) rollout of the variation
)

// StageRolloutPlan is a stage's rollout template: Percents (default 1, 5, 25, 50, 100) one step
// every Every from the stage's start, with the guards (see RolloutGuard).
type StageRolloutPlan struct {
	Every          string         `json:"every"` // a Go duration ("30m") or whole days ("1d")
	Percents       []float64      `json:"percents,omitempty"`
	Guards         []RolloutGuard `json:"guards,omitempty"`
	OnGuardFailure GuardAction    `json:"on_guard_failure,omitempty"`
}

// PipelineStage is one stage of a pipeline.
type PipelineStage struct {
	Environment string            `json:"environment"`
	Action      StageAction       `json:"action"`
	Rollout     *StageRolloutPlan `json:"rollout,omitempty"` // with action rollout
	// The gate before the stage starts (after the previous stage ended): Wait (a duration, as
	// Every) and/or a manual Approval (after the wait).
	Wait     string `json:"wait,omitempty"`
	Approval bool   `json:"approval,omitempty"`
}

// ParseInterval reads a duration as the rollout templates take it: a Go duration ("30m", "1h")
// or whole days ("1d", at most 366); EInvalid at field otherwise.
func ParseInterval(field, s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && n > 0 && n <= 366 && fmt.Sprint(n) == days {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, Invalid(field, "must be a positive duration such as \"30m\", \"1h\" or \"1d\", got %q", truncate(s, 40))
}

// ValidatePipelineStages checks stages against the project's catalog: 1 to MaxPipelineStages;
// each environment exists; the action is toggle_on or rollout (with a plan: every, percents in
// range and increasing, guards as ValidateRolloutGuards); a wait parses. Errors are EInvalid at
// stages[i].<field>.
func ValidatePipelineStages(stages []PipelineStage, cat *ExperimentCatalog) ([]PipelineStage, error) {
	switch n := len(stages); {
	case n == 0:
		return nil, Invalid("stages", "a pipeline needs at least 1 stage")
	case n > MaxPipelineStages:
		return nil, Invalid("stages", "at most %d stages, got %d", MaxPipelineStages, n)
	}
	out := make([]PipelineStage, len(stages))
	for i, s := range stages {
		field := fmt.Sprintf("stages[%d]", i)
		if err := refEnvironment(field+".environment", s.Environment, cat.flags()); err != nil {
			return nil, err
		}
		if s.Wait != "" {
			if _, err := ParseInterval(field+".wait", s.Wait); err != nil {
				return nil, err
			}
		}
		switch s.Action {
		case StageToggleOn:
			if s.Rollout != nil {
				return nil, Invalid(field+".rollout", "a toggle_on stage has no rollout")
			}
		case StageRollout:
			if s.Rollout == nil {
				return nil, Invalid(field+".rollout", "a rollout stage needs its rollout {every, percents, guards}")
			}
			p := *s.Rollout
			every, err := ParseInterval(field+".rollout.every", p.Every)
			if err != nil {
				return nil, err
			}
			if len(p.Percents) == 0 {
				p.Percents = StandardRolloutPercents()
			}
			probe := RolloutTemplate(time.Unix(0, 0), every, p.Percents...)
			if err := ValidateRolloutSteps(probe, time.Unix(0, 0)); err != nil {
				if e, ok := err.(*Error); ok {
					return nil, Invalid(field+".rollout.percents", "%s", e.Message)
				}
				return nil, err
			}
			g, action, err := ValidateRolloutGuards(p.Guards, p.OnGuardFailure, cat)
			if err != nil {
				if e, ok := err.(*Error); ok {
					return nil, e.WithField(field + ".rollout")
				}
				return nil, err
			}
			p.Guards, p.OnGuardFailure = g, action
			s.Rollout = &p
		default:
			return nil, Invalid(field+".action", "action must be %q or %q, not %q", StageToggleOn, StageRollout, truncate(string(s.Action), 40))
		}
		out[i] = s
	}
	return out, nil
}

// Pipeline is a named template of stages.
type Pipeline struct {
	Project   string          `json:"project"`
	Key       string          `json:"key"`
	Name      string          `json:"name"`
	Stages    []PipelineStage `json:"stages"`
	Version   int64           `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// CreatePipeline creates a pipeline; stages were checked by ValidatePipelineStages.
func CreatePipeline(project, key, name string, stages []PipelineStage) ([]Event, error) {
	if !ValidKey(project) {
		return nil, Invalid("project", "invalid project key %q", truncate(project, 120))
	}
	if !ValidKey(key) {
		return nil, Invalid("key", "invalid pipeline key %q", truncate(key, 120))
	}
	if err := validName("name", name); err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, Invalid("stages", "a pipeline needs at least 1 stage")
	}
	return []Event{&PipelineCreated{Project: project, Key: key, Name: name, Stages: stages}}, nil
}

// ApplyRecorded folds one stored event of the pipeline stream.
func (p *Pipeline) ApplyRecorded(rec RecordedEvent) error {
	e, err := rec.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(pipelineAggregate, rec, p.Key != "", isType[*PipelineCreated](e)); err != nil {
		return err
	}
	switch e := e.(type) {
	case *PipelineCreated:
		p.Project, p.Key, p.Name, p.Stages = e.Project, e.Key, e.Name, e.Stages
		p.CreatedAt = rec.OccurredAt
	default:
		return unexpectedEvent(pipelineAggregate, rec)
	}
	p.Version, p.UpdatedAt = rec.Version, rec.OccurredAt
	return nil
}

// ReleaseStatus is where a release is: running (a stage is gated, in progress or about to
// start), paused (by a person, or because its stage's rollout paused), completed, failed (its
// stage's rollout was aborted) or aborted.
type ReleaseStatus string

const (
	ReleaseRunning   ReleaseStatus = "running"
	ReleasePausedSt  ReleaseStatus = "paused"
	ReleaseCompleted ReleaseStatus = "completed"
	ReleaseFailed    ReleaseStatus = "failed"
	ReleaseAbortedSt ReleaseStatus = "aborted"
)

// StageStatus is where one stage of a release is.
type StageStatus string

const (
	StagePending          StageStatus = "pending"
	StageWaiting          StageStatus = "waiting" // its wait runs until WaitUntil
	StageAwaitingApproval StageStatus = "awaiting_approval"
	StageRunning          StageStatus = "running" // its rollout runs
	StageCompleted        StageStatus = "completed"
	StageSkipped          StageStatus = "skipped"
	StageFailed           StageStatus = "failed"
	StageAborted          StageStatus = "aborted"
)

// StageState is one stage of a release as it stands, with its evidence.
type StageState struct {
	Environment string      `json:"environment"`
	Status      StageStatus `json:"status"`
	WaitUntil   time.Time   `json:"wait_until,omitzero"`
	Approved    bool        `json:"approved,omitempty"`
	Rollout     string      `json:"rollout,omitempty"` // the rollout the stage runs
	StartedAt   time.Time   `json:"started_at,omitzero"`
	EndedAt     time.Time   `json:"ended_at,omitzero"`
	// Outcome tells how the stage ended or why it waits (the rollout's reason, a skip's reason).
	Outcome string `json:"outcome,omitempty"`
}

// Release is one flag put through a pipeline.
type Release struct {
	Project  string          `json:"project"`
	ID       string          `json:"id"`
	Pipeline string          `json:"pipeline"`
	Flag     string          `json:"flag"`
	Stages   []PipelineStage `json:"stages"` // the pipeline's stages when the release started
	Status   ReleaseStatus   `json:"status"`
	// Stage is the index of the current stage (len(Stages) once completed).
	Stage       int          `json:"stage"`
	StageStates []StageState `json:"stage_states"`
	Reason      string       `json:"reason,omitempty"` // of the last pause, failure or abort
	Version     int64        `json:"version"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

// StartRelease puts flag (as it is now) through pipeline p: the flag must be live.
func StartRelease(project, id string, p *Pipeline, flag *Flag) ([]Event, error) {
	if !ValidKey(id) {
		return nil, Invalid("id", "invalid release id %q", truncate(id, 120))
	}
	if p == nil || p.Key == "" {
		return nil, Invalid("pipeline", "unknown pipeline")
	}
	if flag == nil || flag.Key == "" {
		return nil, Invalid("flag", "unknown flag")
	}
	if err := flag.live(); err != nil {
		return nil, err
	}
	return []Event{&ReleaseStarted{Project: project, ID: id, Pipeline: p.Key, Flag: flag.Key, Stages: p.Stages}}, nil
}

// StageRolloutID is the id of the rollout stage k of the release runs (fixed, so starting the
// stage twice creates it once).
func (r *Release) StageRolloutID(k int) string { return fmt.Sprintf("%s.stage-%d", r.ID, k) }

// StageCommandID is the command id of the change stage k makes to the flag (a toggle).
func (r *Release) StageCommandID(k int) string { return fmt.Sprintf("release:%s:stage:%d", r.ID, k) }

// StageStart is the change a stage makes when it starts, which the caller performs (a toggle
// with StageCommandID, or creating the rollout StageRolloutID) before recording the events.
type StageStart struct {
	Stage       int
	Environment string
	Action      StageAction
	RolloutID   string
	Rollout     *StageRolloutPlan
}

// Advance decides the next move of a running release at now. rollout is the current stage's
// rollout when it runs one (nil otherwise). It returns the change to make first, if any, and the
// release events to record after it (none when nothing is to be done yet).
func (r *Release) Advance(now time.Time, rollout *Rollout) (*StageStart, []Event, error) {
	if err := r.exists(); err != nil {
		return nil, nil, err
	}
	if r.Status != ReleaseRunning || r.Stage >= len(r.Stages) {
		return nil, nil, nil
	}
	k := r.Stage
	st, stage := r.StageStates[k], r.Stages[k]
	at := now.UTC()
	switch st.Status {
	case StagePending, StageWaiting, StageAwaitingApproval:
		if stage.Wait != "" {
			wait, err := ParseInterval("wait", stage.Wait)
			if err != nil {
				return nil, nil, err
			}
			if st.WaitUntil.IsZero() {
				return nil, []Event{&ReleaseStageWaiting{At: at, Stage: k, Environment: stage.Environment, Until: at.Add(wait)}}, nil
			}
			if now.Before(st.WaitUntil) {
				return nil, nil, nil
			}
		}
		if stage.Approval && !st.Approved {
			if st.Status == StageAwaitingApproval {
				return nil, nil, nil
			}
			return nil, []Event{&PipelineAwaitingApproval{At: at, Project: r.Project, Release: r.ID, Pipeline: r.Pipeline,
				Flag: r.Flag, Stage: k, Environment: stage.Environment}}, nil
		}
		start := &StageStart{Stage: k, Environment: stage.Environment, Action: stage.Action, Rollout: stage.Rollout}
		events := []Event{&ReleaseStageStarted{At: at, Stage: k, Environment: stage.Environment}}
		if stage.Action == StageRollout {
			start.RolloutID = r.StageRolloutID(k)
			events[0].(*ReleaseStageStarted).Rollout = start.RolloutID
		} else {
			events = append(events, r.stageEnded(k, &ReleaseStageCompleted{At: at, Stage: k, Environment: stage.Environment,
				Outcome: "flag turned on"})...)
		}
		return start, events, nil
	case StageRunning:
		if rollout == nil || rollout.ID != st.Rollout {
			return nil, nil, Errorf(EInternal, "release %q stage %d runs rollout %q", r.ID, k, st.Rollout)
		}
		switch rollout.Status {
		case RolloutStatusCompleted:
			return nil, r.stageEnded(k, &ReleaseStageCompleted{At: at, Stage: k, Environment: stage.Environment,
				Outcome: fmt.Sprintf("rollout %s completed at %v%%", rollout.ID, rollout.Percent)}), nil
		case RolloutStatusAborted:
			return nil, []Event{&ReleaseStageFailed{At: at, Stage: k, Environment: stage.Environment,
				Reason: truncate("rollout "+rollout.ID+" was aborted: "+rollout.Reason, 1000)}}, nil
		case RolloutStatusPaused:
			return nil, []Event{&ReleasePaused{At: at, Stage: k, Environment: stage.Environment,
				Reason: truncate("rollout "+rollout.ID+" paused: "+rollout.Reason, 1000)}}, nil
		}
	}
	return nil, nil, nil
}

// stageEnded is the end of stage k (completed or skipped), followed by ReleaseFinished after
// the last stage.
func (r *Release) stageEnded(k int, end Event) []Event {
	out := []Event{end}
	if k == len(r.Stages)-1 {
		out = append(out, &ReleaseFinished{At: stageAt(end), Environment: r.Stages[k].Environment})
	}
	return out
}

func stageAt(e Event) time.Time {
	switch e := e.(type) {
	case *ReleaseStageCompleted:
		return e.At
	case *ReleaseStageSkipped:
		return e.At
	}
	return time.Time{}
}

// Approve approves the current stage's gate (it must have one, and not be approved yet).
func (r *Release) Approve(stage int, now time.Time) ([]Event, error) {
	if err := r.current(stage); err != nil {
		return nil, err
	}
	st := r.StageStates[stage]
	switch {
	case !r.Stages[stage].Approval:
		return nil, Errorf(EConflict, "stage %d (%s) of release %q has no approval gate", stage, st.Environment, r.ID)
	case st.Approved:
		return nil, Errorf(EConflict, "stage %d (%s) of release %q is already approved", stage, st.Environment, r.ID)
	case st.Status != StagePending && st.Status != StageWaiting && st.Status != StageAwaitingApproval:
		return nil, Errorf(EConflict, "stage %d (%s) of release %q is %s", stage, st.Environment, r.ID, st.Status)
	}
	return []Event{&ReleaseStageApproved{At: now.UTC(), Stage: stage, Environment: st.Environment}}, nil
}

// Pause pauses a running release at its current stage (the caller pauses the stage's rollout).
func (r *Release) Pause(reason string, now time.Time) ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	if r.Status != ReleaseRunning {
		return nil, Errorf(EConflict, "release %q is %s: only a running release can be paused", r.ID, r.Status)
	}
	if err := validReason("reason", reason, false); err != nil {
		return nil, err
	}
	return []Event{&ReleasePaused{At: now.UTC(), Stage: r.Stage, Environment: r.Stages[r.Stage].Environment, Reason: reason}}, nil
}

// Resume resumes a paused release (the caller resumes the stage's rollout if it is paused).
func (r *Release) Resume(now time.Time) ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	if r.Status != ReleasePausedSt {
		return nil, Errorf(EConflict, "release %q is %s: only a paused release can resume", r.ID, r.Status)
	}
	return []Event{&ReleaseResumed{At: now.UTC(), Stage: r.Stage, Environment: r.Stages[r.Stage].Environment}}, nil
}

// Skip skips the current stage (which must not run an active rollout: abort that first), going
// on to the next one; rollout is the stage's rollout, if any.
func (r *Release) Skip(stage int, reason string, rollout *Rollout, now time.Time) ([]Event, error) {
	if err := r.current(stage); err != nil {
		return nil, err
	}
	if r.Status != ReleaseRunning && r.Status != ReleasePausedSt {
		return nil, Errorf(EConflict, "release %q is %s", r.ID, r.Status)
	}
	if err := validReason("reason", reason, false); err != nil {
		return nil, err
	}
	if rollout.Active() {
		return nil, Errorf(EConflict, "stage %d of release %q runs rollout %q, which is %s: abort it before skipping the stage", stage, r.ID, rollout.ID, rollout.Status)
	}
	events := r.stageEnded(stage, &ReleaseStageSkipped{At: now.UTC(), Stage: stage, Environment: r.Stages[stage].Environment, Reason: reason})
	if r.Status == ReleasePausedSt {
		events = append([]Event{&ReleaseResumed{At: now.UTC(), Stage: stage, Environment: r.Stages[stage].Environment}}, events...)
	}
	return events, nil
}

// Abort ends the release at its current stage (the caller aborts the stage's rollout first).
func (r *Release) Abort(reason string, now time.Time) ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	if r.Status != ReleaseRunning && r.Status != ReleasePausedSt {
		return nil, Errorf(EConflict, "release %q is %s", r.ID, r.Status)
	}
	if err := validReason("reason", reason, false); err != nil {
		return nil, err
	}
	return []Event{&ReleaseAborted{At: now.UTC(), Stage: r.Stage, Environment: r.Stages[r.Stage].Environment, Reason: reason}}, nil
}

// current checks that stage is the release's current stage.
func (r *Release) current(stage int) error {
	if err := r.exists(); err != nil {
		return err
	}
	if r.Stage >= len(r.Stages) {
		return Errorf(EConflict, "release %q is %s", r.ID, r.Status)
	}
	if stage != r.Stage {
		return Invalid("stage", "stage %d is not the current stage of release %q (%d)", stage, r.ID, r.Stage)
	}
	return nil
}

// CurrentRollout is the rollout of the current stage, if it started one.
func (r *Release) CurrentRollout() string {
	if r == nil || r.Stage >= len(r.StageStates) {
		return ""
	}
	return r.StageStates[r.Stage].Rollout
}

func (r *Release) exists() *Error {
	if r == nil || r.ID == "" {
		return Errorf(ENotFound, "release not found")
	}
	return nil
}

// Active reports whether the release is running or paused.
func (r *Release) Active() bool {
	return r != nil && (r.Status == ReleaseRunning || r.Status == ReleasePausedSt)
}

// ApplyRecorded folds one stored event of the release stream.
func (r *Release) ApplyRecorded(rec RecordedEvent) error {
	e, err := rec.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(releaseAggregate, rec, r.ID != "", isType[*ReleaseStarted](e)); err != nil {
		return err
	}
	st := func(k int) *StageState {
		if k >= 0 && k < len(r.StageStates) {
			return &r.StageStates[k]
		}
		return &StageState{}
	}
	switch e := e.(type) {
	case *ReleaseStarted:
		r.Project, r.ID, r.Pipeline, r.Flag, r.Stages = e.Project, e.ID, e.Pipeline, e.Flag, e.Stages
		r.Status, r.Stage = ReleaseRunning, 0
		r.StageStates = make([]StageState, len(e.Stages))
		for i, s := range e.Stages {
			r.StageStates[i] = StageState{Environment: s.Environment, Status: StagePending}
		}
		r.CreatedAt = rec.OccurredAt
	case *ReleaseStageWaiting:
		s := st(e.Stage)
		s.Status, s.WaitUntil = StageWaiting, e.Until
	case *PipelineAwaitingApproval:
		st(e.Stage).Status = StageAwaitingApproval
	case *ReleaseStageApproved:
		st(e.Stage).Approved = true
	case *ReleaseStageStarted:
		s := st(e.Stage)
		s.Status, s.Rollout, s.StartedAt = StageRunning, e.Rollout, e.At
	case *ReleaseStageCompleted:
		s := st(e.Stage)
		s.Status, s.EndedAt, s.Outcome = StageCompleted, e.At, e.Outcome
		r.Stage = e.Stage + 1
	case *ReleaseStageSkipped:
		s := st(e.Stage)
		s.Status, s.EndedAt, s.Outcome = StageSkipped, e.At, e.Reason
		r.Stage = e.Stage + 1
	case *ReleaseStageFailed:
		s := st(e.Stage)
		s.Status, s.EndedAt, s.Outcome = StageFailed, e.At, e.Reason
		r.Status, r.Reason = ReleaseFailed, e.Reason
	case *ReleasePaused:
		r.Status, r.Reason = ReleasePausedSt, e.Reason
	case *ReleaseResumed:
		r.Status = ReleaseRunning
	case *ReleaseAborted:
		s := st(e.Stage)
		s.Status, s.EndedAt, s.Outcome = StageAborted, e.At, e.Reason
		r.Status, r.Reason = ReleaseAbortedSt, e.Reason
	case *ReleaseFinished:
		r.Status = ReleaseCompleted
	default:
		return unexpectedEvent(releaseAggregate, rec)
	}
	r.Version, r.UpdatedAt = rec.Version, rec.OccurredAt
	return nil
}
