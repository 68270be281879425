// Package webhooks is the outgoing webhooks of a project: subscriptions (URL, secret, event
// kinds, payload format), an outbox in PostgreSQL filled from the event log by a projection the
// projector runs (one delivery per subscription and event, inserted exactly once), and a worker
// that delivers each one at least once, signed with HMAC-SHA256, retried with exponential backoff
// and jitter for up to 24 hours, recording every attempt for the delivery log.
//
// Subscriptions are configuration rows, not events (migration 0140): they say where news of the
// history goes, they are not part of it, so replay and the audit chain never see them.
package webhooks

import "slices"

// Kinds of news a subscription can ask for. A kind groups the event types it is told by.
const (
	KindFlagChanged           = "flag.changed"
	KindChangeRequestOpened   = "change_request.opened"
	KindChangeRequestApproved = "change_request.approved"
	KindChangeRequestRejected = "change_request.rejected"
	KindChangeRequestApplied  = "change_request.applied"
	KindExperimentConcluded   = "experiment.concluded"
	KindAutoOpsFired          = "autoops.fired"
	KindRolloutStepApplied    = "rollout.step_applied"
	// The notifications of guarded releases (issue 20): a guard fired (rollback or pause, with
	// its evidence), a rollout paused (by a person, a guard or a failed step), and a release
	// waiting for a person to approve its next stage.
	KindRolloutGuardFired       = "rollout.guard_fired"
	KindRolloutPaused           = "rollout.paused"
	KindReleaseAwaitingApproval = "release.awaiting_approval"
	// KindTest is the kind of a "send test" delivery; no subscription asks for it.
	KindTest = "test"
)

// kindOfEvent is THE table from event types to kinds: an event type absent here is sent to no
// one. The change request types are those of protected environments (issue 18, part B); they
// are listed by name so their events are delivered as soon as the domain records them.
var kindOfEvent = map[string]string{
	"FlagCreated":              KindFlagChanged,
	"FlagUpdated":              KindFlagChanged,
	"FlagToggled":              KindFlagChanged,
	"FlagTargetingUpdated":     KindFlagChanged,
	"FlagVariationsUpdated":    KindFlagChanged,
	"FlagArchived":             KindFlagChanged,
	"FlagRestored":             KindFlagChanged,
	"ChangeRequestOpened":      KindChangeRequestOpened,
	"ChangeRequestApproved":    KindChangeRequestApproved,
	"ChangeRequestRejected":    KindChangeRequestRejected,
	"ChangeRequestApplied":     KindChangeRequestApplied,
	"ExperimentConcluded":      KindExperimentConcluded,
	"AutoOpsRuleTriggered":     KindAutoOpsFired,
	"RolloutStepApplied":       KindRolloutStepApplied,
	"GuardFired":               KindRolloutGuardFired,
	"RolloutPaused":            KindRolloutPaused,
	"PipelineAwaitingApproval": KindReleaseAwaitingApproval,
}

// KindOf is the kind an event type is delivered as, "" for none.
func KindOf(eventType string) string { return kindOfEvent[eventType] }

// Kinds lists every kind a subscription may ask for, sorted.
func Kinds() []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range kindOfEvent {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
