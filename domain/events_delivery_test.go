package domain_test

import (
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// TestExperimentationAndDeliveryEvents: every event of goals, experiments, scheduled changes,
// rollouts, auto-ops rules and triggers is registered and survives the event store's JSON round
// trip unchanged.
func TestExperimentationAndDeliveryEvents(t *testing.T) {
	before := domain.Serve{Variation: "red"}
	events := []domain.Event{
		revenueCreated(), &domain.GoalUpdated{Name: "R", Direction: domain.GoalDecrease}, &domain.GoalArchived{}, &domain.GoalRestored{},
		checkoutCreated(), &domain.ExperimentUpdated{ExperimentDefinition: checkoutRecorded()},
		&domain.ExperimentStarted{At: at(1)}, &domain.ExperimentStopped{At: at(2)},
		&domain.ExperimentConcluded{Variation: "blue", Reason: "won"}, &domain.ExperimentArchived{},
		&domain.ExperimentAnalysisChanged{Analysis: domain.ExperimentAnalysis{Engine: domain.EngineFrequentist, Alpha: 0.01,
			Goals: []domain.GoalAnalysis{{Goal: "revenue", Quantile: 0.9, Prior: &domain.GoalPrior{Mean: 0.01, SD: 0.1}}}}},
		targetingCreated(), defaultCreated(),
		&domain.ScheduleEdited{ChangeSpec: defaultSpec(newSplit()), Before: domain.ChangeBefore{Default: &before}},
		&domain.ScheduleCancelled{}, &domain.ScheduleApplied{Environment: "production", At: at(3), FlagVersion: 7}, &domain.ScheduleFailed{Environment: "production", At: at(3), Reason: "r"},
		rolloutCreated(), &domain.RolloutStepSkipped{Environment: "production", Index: 1, Percent: 5}, stepApplied(2), &domain.RolloutCompleted{Environment: "production"},
		&domain.RolloutPaused{Environment: "production", At: at(4), Reason: "r"}, &domain.RolloutResumed{Environment: "production", At: at(5), Shift: 90 * time.Second},
		&domain.RolloutRolledBack{Environment: "production", At: at(6), Reason: "r"}, &domain.RolloutAborted{Environment: "production", At: at(7), RestoreFailure: "f"},
		ruleCreated(true), &domain.AutoOpsRuleUpdated{AutoOpsDefinition: errorsRule()}, &domain.AutoOpsRuleEnabled{},
		&domain.AutoOpsRuleDisabled{}, &domain.AutoOpsRuleDeleted{},
		triggered(domain.AutoOpsEvidence{At: at(8), Value: 0.25, Control: &domain.AutoOpsArm{Exposed: 3, Rate: 0.5}, Fired: true, Decision: "fired"}),
		killSwitch(), &domain.TriggerSecretRotated{SecretHash: secretHash("x")}, &domain.TriggerEnabled{}, &domain.TriggerDisabled{},
		&domain.TriggerDeleted{}, &domain.TriggerFired{Environment: "production", At: at(9), RemoteAddr: "203.0.113.7", Changed: true},
	}
	registered := domain.EventTypes()
	for _, e := range events {
		typ := e.EventType()
		if i := sort.SearchStrings(registered, typ); i == len(registered) || registered[i] != typ {
			t.Errorf("%s is not registered", typ)
			continue
		}
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("encode %s: %v", typ, err)
		}
		back, err := domain.DecodeEvent(typ, data)
		if err != nil {
			t.Fatalf("decode %s: %v", typ, err)
		}
		if got, want := eventsJSON(t, []domain.Event{back}), eventsJSON(t, []domain.Event{e}); got != want {
			t.Errorf("round trip of %s\n got %s\nwant %s", typ, got, want)
		}
	}
	if len(events) != 37 {
		t.Fatalf("%d events listed, every new type must be", len(events))
	}
}

func TestExperimentationAndDeliveryStreams(t *testing.T) {
	for id, kind := range map[string]string{
		domain.GoalStream(project, "signup"):       "goal",
		domain.ExperimentStream(project, "exp-1"):  "experiment",
		domain.ScheduleStream(project, "s1"):       "schedule",
		domain.RolloutStream(project, "r1"):        "rollout",
		domain.AutoOpsStream(project, "ops1"):      "autoops",
		domain.TriggerStream(project, "tr1"):       "trigger",
		domain.ExperimentStream("p", "e") + "/sub": "experiment",
	} {
		if got := domain.StreamKind(id); got != kind {
			t.Errorf("StreamKind(%q) = %q, want %q", id, got, kind)
		}
	}
	if got := domain.RolloutStream("acme", "r1"); got != "rollout/acme/r1" {
		t.Errorf("rollout stream %q", got)
	}
	if got := domain.GoalStream("acme", "signup"); got != "goal/acme/signup" {
		t.Errorf("goal stream %q", got)
	}
}
