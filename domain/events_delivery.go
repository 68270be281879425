package domain

import "time"

// Events of the progressive-delivery aggregates: scheduled changes, progressive rollouts, auto-ops
// rules and webhook triggers. Each event's JSON is stored forever: add fields, never rename them.
// None of these aggregates changes a flag by itself: their commands return the flag's own events
// (built by the flag's commands) next to their own, and the caller appends both.

// Schedule stream: schedule/<project>/<id>.
type ScheduleCreated struct {
	Project     string `json:"project"`
	ID          string `json:"id"`
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	ChangeSpec
	// Before is the flag's state in the environment when the change was scheduled, for conflict
	// detection when it is due.
	Before ChangeBefore `json:"before"`
}

// ScheduleEdited replaces the time and payload of a pending change, and the state captured with it.
type ScheduleEdited struct {
	ChangeSpec
	Before ChangeBefore `json:"before"`
}

type ScheduleCancelled struct{}

// ScheduleApplied records that the change was made: the flag events were appended (or none were
// needed) and the flag reached FlagVersion.
type ScheduleApplied struct {
	// Environment is the environment the change was made in (the aggregate's), so the audit log
	// files the event under it. Events recorded before it existed lack it: the audit projection
	// takes it from the aggregate then.
	Environment string    `json:"environment,omitempty"`
	At          time.Time `json:"at"`
	FlagVersion int64     `json:"flag_version"`
}

// ScheduleFailed records that the change could not be made when due, and why.
type ScheduleFailed struct {
	Environment string    `json:"environment,omitempty"` // see ScheduleApplied.Environment
	At          time.Time `json:"at"`
	Reason      string    `json:"reason"`
}

// ScheduleOccurred records that one occurrence of a recurring change was made (the flag events
// were appended with its ApplyCommandID, or none were needed) and when the next one is due. The
// change stays pending until it is cancelled or fails.
type ScheduleOccurred struct {
	Environment string    `json:"environment,omitempty"`
	Occurrence  time.Time `json:"occurrence"` // the due time this was the occurrence of
	At          time.Time `json:"at"`         // when it was made
	FlagVersion int64     `json:"flag_version"`
	Next        time.Time `json:"next"`
}

// Rollout stream: rollout/<project>/<id>.
type RolloutCreated struct {
	Project     string        `json:"project"`
	ID          string        `json:"id"`
	Flag        string        `json:"flag"`
	Environment string        `json:"environment"`
	Variation   string        `json:"variation"`
	Other       string        `json:"other"`
	BucketBy    string        `json:"bucket_by,omitempty"`
	Steps       []RolloutStep `json:"steps"`
	// Start is the environment's default serve when the rollout was created; Abort restores it.
	Start Serve `json:"start"`
	// Guards gate the steps after the first one applied (see RolloutGuard); OnGuardFailure is
	// what a failing guard does.
	Guards         []RolloutGuard `json:"guards,omitempty"`
	OnGuardFailure GuardAction    `json:"on_guard_failure,omitempty"`
}

// RolloutStepSkipped records a step that never applies: it was missed (its successor was already
// due when the rollout caught up), or, with AlreadyServed, the flag already served at least its
// share when the rollout was created.
type RolloutStepSkipped struct {
	Environment   string  `json:"environment,omitempty"` // see ScheduleApplied.Environment
	Index         int     `json:"index"`
	Percent       float64 `json:"percent"`
	AlreadyServed bool    `json:"already_served,omitempty"`
}

// RolloutStepApplied records a step whose split was written to the flag's default serve.
type RolloutStepApplied struct {
	Environment string  `json:"environment,omitempty"` // see ScheduleApplied.Environment
	Index       int     `json:"index"`
	Percent     float64 `json:"percent"`
	Weight      int     `json:"weight"` // the variation's share in bucket units (of BucketCount)
	// Guards is the evidence of a guarded step: every guard was healthy when it applied.
	Guards []GuardEvidence `json:"guards,omitempty"`
}

type RolloutCompleted struct {
	Environment string `json:"environment,omitempty"` // see ScheduleApplied.Environment
}

// RolloutPaused stops the plan until RolloutResumed.
type RolloutPaused struct {
	Environment string    `json:"environment,omitempty"` // see ScheduleApplied.Environment
	At          time.Time `json:"at"`
	Reason      string    `json:"reason,omitempty"`
}

// RolloutResumed restarts the plan; every step not yet applied moves Shift later (the time spent
// paused).
type RolloutResumed struct {
	Environment string        `json:"environment,omitempty"` // see ScheduleApplied.Environment
	At          time.Time     `json:"at"`
	Shift       time.Duration `json:"shift_ns"`
}

// RolloutRolledBack records that the rolled-out variation was set back to 0% (by auto-ops or a
// person); it is followed by RolloutPaused unless the rollout was paused already.
type RolloutRolledBack struct {
	Environment string    `json:"environment,omitempty"` // see ScheduleApplied.Environment
	At          time.Time `json:"at"`
	Reason      string    `json:"reason,omitempty"`
}

// RolloutAborted ends the rollout. Restored says whether the starting default serve was written
// back to the flag with it; RestoreFailure says why not when it could not be.
type RolloutAborted struct {
	Environment    string    `json:"environment,omitempty"` // see ScheduleApplied.Environment
	At             time.Time `json:"at"`
	Reason         string    `json:"reason,omitempty"`
	Restored       bool      `json:"restored"`
	RestoreFailure string    `json:"restore_failure,omitempty"`
}

// Auto-ops stream: autoops/<project>/<id>.
type AutoOpsRuleCreated struct {
	Project     string `json:"project"`
	ID          string `json:"id"`
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	AutoOpsDefinition
	Enabled bool `json:"enabled"`
}

// AutoOpsRuleUpdated replaces the rule's definition and re-arms a triggered rule.
type AutoOpsRuleUpdated struct {
	AutoOpsDefinition
}

// AutoOpsRuleEnabled enables the rule and re-arms it if it had triggered.
type AutoOpsRuleEnabled struct{}
type AutoOpsRuleDisabled struct{}
type AutoOpsRuleDeleted struct{}

// AutoOpsRuleTriggered records that the rule fired, on what evidence, and the action it asked for.
type AutoOpsRuleTriggered struct {
	Environment string          `json:"environment,omitempty"` // see ScheduleApplied.Environment
	Evidence    AutoOpsEvidence `json:"evidence"`
	Action      AutoOpsAction   `json:"action"`
}

// Trigger stream: trigger/<project>/<id>.
type TriggerCreated struct {
	Project     string        `json:"project"`
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Flag        string        `json:"flag"`
	Environment string        `json:"environment"`
	Action      TriggerAction `json:"action"`
	SecretHash  string        `json:"secret_hash"` // lowercase hex SHA-256 of the secret
}

// TriggerSecretRotated replaces the secret; the previous one stops working at once.
type TriggerSecretRotated struct {
	SecretHash string `json:"secret_hash"`
}

type TriggerEnabled struct{}
type TriggerDisabled struct{}
type TriggerDeleted struct{}

// TriggerFired records a use of the trigger. Changed says whether the flag was toggled by it (a
// trigger fired at a flag already in the wanted state changes nothing but is still recorded).
type TriggerFired struct {
	Environment string    `json:"environment,omitempty"` // see ScheduleApplied.Environment
	At          time.Time `json:"at"`
	RemoteAddr  string    `json:"remote_addr,omitempty"`
	Changed     bool      `json:"changed"`
}

func (*ScheduleCreated) EventType() string      { return "ScheduleCreated" }
func (*ScheduleEdited) EventType() string       { return "ScheduleEdited" }
func (*ScheduleCancelled) EventType() string    { return "ScheduleCancelled" }
func (*ScheduleApplied) EventType() string      { return "ScheduleApplied" }
func (*ScheduleFailed) EventType() string       { return "ScheduleFailed" }
func (*ScheduleOccurred) EventType() string     { return "ScheduleOccurred" }
func (*RolloutCreated) EventType() string       { return "RolloutCreated" }
func (*RolloutStepSkipped) EventType() string   { return "RolloutStepSkipped" }
func (*RolloutStepApplied) EventType() string   { return "RolloutStepApplied" }
func (*RolloutCompleted) EventType() string     { return "RolloutCompleted" }
func (*RolloutPaused) EventType() string        { return "RolloutPaused" }
func (*RolloutResumed) EventType() string       { return "RolloutResumed" }
func (*RolloutRolledBack) EventType() string    { return "RolloutRolledBack" }
func (*RolloutAborted) EventType() string       { return "RolloutAborted" }
func (*AutoOpsRuleCreated) EventType() string   { return "AutoOpsRuleCreated" }
func (*AutoOpsRuleUpdated) EventType() string   { return "AutoOpsRuleUpdated" }
func (*AutoOpsRuleEnabled) EventType() string   { return "AutoOpsRuleEnabled" }
func (*AutoOpsRuleDisabled) EventType() string  { return "AutoOpsRuleDisabled" }
func (*AutoOpsRuleDeleted) EventType() string   { return "AutoOpsRuleDeleted" }
func (*AutoOpsRuleTriggered) EventType() string { return "AutoOpsRuleTriggered" }
func (*TriggerCreated) EventType() string       { return "TriggerCreated" }
func (*TriggerSecretRotated) EventType() string { return "TriggerSecretRotated" }
func (*TriggerEnabled) EventType() string       { return "TriggerEnabled" }
func (*TriggerDisabled) EventType() string      { return "TriggerDisabled" }
func (*TriggerDeleted) EventType() string       { return "TriggerDeleted" }
func (*TriggerFired) EventType() string         { return "TriggerFired" }

func init() {
	register(
		func() Event { return new(ScheduleCreated) },
		func() Event { return new(ScheduleEdited) },
		func() Event { return new(ScheduleCancelled) },
		func() Event { return new(ScheduleApplied) },
		func() Event { return new(ScheduleFailed) },
		func() Event { return new(ScheduleOccurred) },
		func() Event { return new(RolloutCreated) },
		func() Event { return new(RolloutStepSkipped) },
		func() Event { return new(RolloutStepApplied) },
		func() Event { return new(RolloutCompleted) },
		func() Event { return new(RolloutPaused) },
		func() Event { return new(RolloutResumed) },
		func() Event { return new(RolloutRolledBack) },
		func() Event { return new(RolloutAborted) },
		func() Event { return new(AutoOpsRuleCreated) },
		func() Event { return new(AutoOpsRuleUpdated) },
		func() Event { return new(AutoOpsRuleEnabled) },
		func() Event { return new(AutoOpsRuleDisabled) },
		func() Event { return new(AutoOpsRuleDeleted) },
		func() Event { return new(AutoOpsRuleTriggered) },
		func() Event { return new(TriggerCreated) },
		func() Event { return new(TriggerSecretRotated) },
		func() Event { return new(TriggerEnabled) },
		func() Event { return new(TriggerDisabled) },
		func() Event { return new(TriggerDeleted) },
		func() Event { return new(TriggerFired) },
	)
}

// Stream ids of the progressive-delivery aggregates (see FlagStream). Their ids are chosen by the
// caller (ValidKey, e.g. a UUID), unique within the project.
func ScheduleStream(project, id string) string { return "schedule/" + project + "/" + id }
func RolloutStream(project, id string) string  { return "rollout/" + project + "/" + id }
func AutoOpsStream(project, id string) string  { return "autoops/" + project + "/" + id }
func TriggerStream(project, id string) string  { return "trigger/" + project + "/" + id }
