package domain

import "time"

// Events of guarded rollouts (see rollout_guard.go) on the rollout stream. GuardFired and
// RolloutStepWaiting carry the environment so the audit of an environment lists them, and are the
// notifications outgoing webhooks and metrics pick up.

// GuardFired records that a guard of a rollout failed at step Step, with the evidence of every
// guard, and the action the rollout takes (rollback or pause), which follows as RolloutRolledBack
// and RolloutPaused, or RolloutPaused.
type GuardFired struct {
	At          time.Time       `json:"at"`
	Project     string          `json:"project"`
	Rollout     string          `json:"rollout"`
	Flag        string          `json:"flag"`
	Environment string          `json:"environment"`
	Step        int             `json:"step"`
	Guard       string          `json:"guard"`
	Action      GuardAction     `json:"action"`
	Evidence    []GuardEvidence `json:"evidence"`
}

// RolloutStepWaiting records that step Step is due but waits on its guards, and why; recorded
// when the reason changes, not on every pass.
type RolloutStepWaiting struct {
	At          time.Time       `json:"at"`
	Environment string          `json:"environment"`
	Step        int             `json:"step"`
	Reason      string          `json:"reason"`
	Evidence    []GuardEvidence `json:"evidence"`
}

func (*GuardFired) EventType() string         { return "GuardFired" }
func (*RolloutStepWaiting) EventType() string { return "RolloutStepWaiting" }

func init() {
	register(
		func() Event { return new(GuardFired) },
		func() Event { return new(RolloutStepWaiting) },
	)
}
