package domain

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Guarded rollouts: a rollout may carry guards, metrics of the rolled-out variation compared with
// the variation serving the rest (the control). Once the rollout serves the variation to some
// users, each later step advances only when its time has come AND every guard is healthy with
// enough sample; otherwise the step waits (RolloutStepWaiting says why). A guard that fails fires
// (GuardFired, with its evidence) and the rollout rolls back or pauses, as OnGuardFailure says.

// MaxRolloutGuards bounds the guards of one rollout (each is measured on every pass while a step
// waits).
const MaxRolloutGuards = 10

// GuardAction is what a rollout does when one of its guards fails.
type GuardAction string

const (
	GuardRollBack GuardAction = "rollback" // back to 0% (Rollout.RollBack), then paused
	GuardPause    GuardAction = "pause"    // paused where it is (Rollout.Pause)
)

// GuardStatus is a guard's verdict on one measurement.
type GuardStatus string

const (
	GuardHealthy GuardStatus = "healthy" // enough sample, and the metric is on the good side of the threshold
	GuardWaiting GuardStatus = "waiting" // not enough sample, or the metric looks bad without enough certainty
	GuardFailing GuardStatus = "failing" // the metric is on the bad side with the required certainty
)

// RolloutGuard is one metric a rollout's steps wait on: the rate of Goal per exposed user of the
// rolled-out variation minus the control's (the rollout's Other), compared with Threshold
// ("gt": the difference must not go above it, "lt": must not go below it).
type RolloutGuard struct {
	Name       string            `json:"name"`
	Goal       string            `json:"goal"`
	Comparison AutoOpsComparison `json:"comparison"`
	Threshold  float64           `json:"threshold"`
	// MinSample is the exposed users each arm needs before the guard judges at all.
	MinSample int64 `json:"min_sample"`
	// MinProbability is the certainty the guard fails with: the posterior probability that the
	// difference is beyond the threshold's bad side (the chance that the variation is worse than
	// the control, as in the experiment analysis) must be above it; with Sequential, the
	// one-sided confidence level of the confidence sequence. 0 < MinProbability < 1, e.g. 0.95.
	MinProbability float64 `json:"min_probability"`
	// Sequential judges on an always-valid confidence sequence of the difference (see
	// stats.SequentialHalfWidth) instead of the Bayesian probability: the guard is looked at on
	// every pass, and a fixed-horizon test looked at that often would fail healthy rollouts by
	// chance. The guard fails when the whole sequence interval is on the bad side of the threshold.
	Sequential bool `json:"sequential,omitempty"`
}

// GuardMetrics is what the scheduler measured for one guard: each arm's exposed users and rate,
// the probability that the variation is worse in the guard's sense, and (for a sequential guard)
// the confidence sequence of the difference at level 1 − 2(1 − MinProbability).
type GuardMetrics struct {
	Treatment   AutoOpsArm  `json:"treatment"`
	Control     AutoOpsArm  `json:"control"`
	Probability float64     `json:"probability"`
	Interval    *[2]float64 `json:"interval,omitempty"`
}

// GuardEvidence is one guard's verdict with its inputs, kept in the rollout's history.
type GuardEvidence struct {
	Guard string `json:"guard"`
	GuardMetrics
	// Value is the observed difference, treatment − control.
	Value          float64           `json:"value"`
	Comparison     AutoOpsComparison `json:"comparison"`
	Threshold      float64           `json:"threshold"`
	MinSample      int64             `json:"min_sample"`
	MinProbability float64           `json:"min_probability"`
	Sequential     bool              `json:"sequential,omitempty"`
	Status         GuardStatus       `json:"status"`
	Decision       string            `json:"decision"`
}

// Judge is the guard's pure verdict on m: waiting until both arms reached MinSample and the
// inputs are finite; failing when the difference is on the bad side of the threshold (strictly)
// with the required certainty; waiting when it is on the bad side without it (advancing on a
// metric that looks bad is what guards exist to prevent); healthy otherwise.
func (g RolloutGuard) Judge(m GuardMetrics) GuardEvidence {
	ev := GuardEvidence{Guard: g.Name, GuardMetrics: m, Comparison: g.Comparison, Threshold: g.Threshold,
		MinSample: g.MinSample, MinProbability: g.MinProbability, Sequential: g.Sequential}
	ev.Value = m.Treatment.Rate - m.Control.Rate
	finite := func(xs ...float64) bool {
		for _, x := range xs {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return false
			}
		}
		return true
	}
	bad := func(x float64) bool {
		if g.Comparison == AutoOpsLessThan {
			return x < g.Threshold
		}
		return x > g.Threshold
	}
	sample := fmt.Sprintf("%d exposed to the variation, %d to the control", m.Treatment.Exposed, m.Control.Exposed)
	switch {
	case m.Treatment.Exposed < g.MinSample || m.Control.Exposed < g.MinSample:
		ev.Status = GuardWaiting
		ev.Decision = fmt.Sprintf("guard %q waits for sample: %s, needs %d per arm", g.Name, sample, g.MinSample)
	case !finite(m.Treatment.Rate, m.Control.Rate, ev.Value, m.Probability) || m.Probability < 0 || m.Probability > 1 ||
		(g.Sequential && (m.Interval == nil || !finite(m.Interval[0], m.Interval[1]))):
		ev.Status = GuardWaiting
		ev.Decision = fmt.Sprintf("guard %q waits: the statistics could not be computed (%s)", g.Name, sample)
	case !bad(ev.Value):
		ev.Status = GuardHealthy
		ev.Decision = fmt.Sprintf("guard %q healthy: difference %v is not %s threshold %v (%s)", g.Name, ev.Value,
			comparisonWords(g.Comparison), g.Threshold, sample)
	case g.Sequential && ((g.Comparison == AutoOpsLessThan && m.Interval[1] < g.Threshold) ||
		(g.Comparison != AutoOpsLessThan && m.Interval[0] > g.Threshold)):
		ev.Status = GuardFailing
		ev.Decision = fmt.Sprintf("guard %q failed: the confidence sequence [%v, %v] of the difference is %s threshold %v at %v (%s)",
			g.Name, m.Interval[0], m.Interval[1], comparisonWords(g.Comparison), g.Threshold, g.MinProbability, sample)
	case !g.Sequential && m.Probability > g.MinProbability:
		ev.Status = GuardFailing
		ev.Decision = fmt.Sprintf("guard %q failed: difference %v is %s threshold %v with probability %v above %v (%s)",
			g.Name, ev.Value, comparisonWords(g.Comparison), g.Threshold, m.Probability, g.MinProbability, sample)
	default:
		ev.Status = GuardWaiting
		ev.Decision = fmt.Sprintf("guard %q waits: difference %v is %s threshold %v but not with the required certainty %v (%s)",
			g.Name, ev.Value, comparisonWords(g.Comparison), g.Threshold, g.MinProbability, sample)
	}
	if ev.Status != GuardFailing {
		ev = finiteEvidence(ev)
	}
	return ev
}

// finiteEvidence keeps evidence encodable as JSON (the rate of 0 exposed users is NaN).
func finiteEvidence(ev GuardEvidence) GuardEvidence {
	for _, x := range []*float64{&ev.Value, &ev.Treatment.Rate, &ev.Control.Rate, &ev.Probability} {
		if math.IsNaN(*x) || math.IsInf(*x, 0) {
			*x = 0
		}
	}
	if ev.Interval != nil {
		in := *ev.Interval
		for i := range in {
			if math.IsNaN(in[i]) || math.IsInf(in[i], 0) {
				in[i] = 0
			}
		}
		ev.Interval = &in
	}
	return ev
}

// ValidateRolloutGuards checks a rollout's guards against the project's goals and returns them
// normalized, with the failure action (rollback when empty and there are guards). Rules: at most
// MaxRolloutGuards; each has a name unique in the rollout, a goal that exists and is not archived,
// comparison gt or lt, a finite threshold, 1 <= min_sample <= MaxAutoOpsMinSample and
// 0 < min_probability < 1; the action is rollback or pause. Errors are EInvalid at
// guards[i].<field> and on_guard_failure.
func ValidateRolloutGuards(guards []RolloutGuard, onFailure GuardAction, cat *ExperimentCatalog) ([]RolloutGuard, GuardAction, error) {
	out, action, err := validateGuards(guards, onFailure)
	if err != nil {
		return nil, "", err
	}
	for i, g := range out {
		if err := refGoal(fmt.Sprintf("guards[%d].goal", i), g.Goal, cat, map[string]string{}); err != nil {
			return nil, "", err
		}
	}
	return out, action, nil
}

// validateGuards checks everything about guards but the goals' existence (CreateRollout has only
// the flag catalog; the application checks goals with ValidateRolloutGuards first).
func validateGuards(guards []RolloutGuard, onFailure GuardAction) ([]RolloutGuard, GuardAction, *Error) {
	if len(guards) == 0 {
		if onFailure != "" {
			return nil, "", Invalid("on_guard_failure", "on_guard_failure needs guards")
		}
		return nil, "", nil
	}
	if len(guards) > MaxRolloutGuards {
		return nil, "", Invalid("guards", "at most %d guards, got %d", MaxRolloutGuards, len(guards))
	}
	switch onFailure {
	case "":
		onFailure = GuardRollBack
	case GuardRollBack, GuardPause:
	default:
		return nil, "", Invalid("on_guard_failure", "on_guard_failure must be %q or %q, not %q", GuardRollBack, GuardPause, truncate(string(onFailure), 40))
	}
	out := make([]RolloutGuard, len(guards))
	names := map[string]int{}
	for i, g := range guards {
		field := fmt.Sprintf("guards[%d]", i)
		g.Name = strings.TrimSpace(g.Name)
		if g.Name == "" {
			g.Name = g.Goal
		}
		if err := validName(field+".name", g.Name); err != nil {
			return nil, "", err
		}
		if j, dup := names[g.Name]; dup {
			return nil, "", Invalid(field+".name", "guard name %q is already used by guards[%d]", g.Name, j)
		}
		names[g.Name] = i
		if !ValidKey(g.Goal) {
			return nil, "", Invalid(field+".goal", "invalid goal key %q", truncate(g.Goal, 120))
		}
		if g.Comparison != AutoOpsGreaterThan && g.Comparison != AutoOpsLessThan {
			return nil, "", Invalid(field+".comparison", "comparison must be %q or %q, not %q", AutoOpsGreaterThan, AutoOpsLessThan, truncate(string(g.Comparison), 40))
		}
		if math.IsNaN(g.Threshold) || math.IsInf(g.Threshold, 0) {
			return nil, "", Invalid(field+".threshold", "threshold must be a finite number")
		}
		if g.MinSample < 1 || g.MinSample > MaxAutoOpsMinSample {
			return nil, "", Invalid(field+".min_sample", "minimum sample must be between 1 and %d exposed users per arm, got %d", MaxAutoOpsMinSample, g.MinSample)
		}
		if !(g.MinProbability > 0 && g.MinProbability < 1) {
			return nil, "", Invalid(field+".min_probability", "minimum probability must be more than 0 and less than 1, got %v", g.MinProbability)
		}
		out[i] = g
	}
	return out, onFailure, nil
}

// Guarded reports whether step i waits on the guards: the rollout has guards and serves the
// variation to some users now (before the first step, or right after a rollback, nobody is exposed
// to it, so there is nothing to measure).
func (r *Rollout) Guarded() bool { return len(r.Guards) > 0 && r.Percent > 0 }

// GuardStep decides what the due step i does given the guards' evidence (one per guard, in
// order, from Judge at now):
//   - a failing guard: GuardFired (the rollout then waits for the action: see PendingGuardAction);
//   - a waiting guard: RolloutStepWaiting, unless the rollout already waits for the same reason
//     (no event: the stream does not grow on every pass);
//   - all healthy: nothing; the caller applies the step with ApplyStep and records the evidence
//     with it (see StepAppliedWithEvidence).
func (r *Rollout) GuardStep(i int, evidence []GuardEvidence, now time.Time) (ok bool, events []Event, err error) {
	if err := r.exists(); err != nil {
		return false, nil, err
	}
	if r.Status != RolloutStatusScheduled && r.Status != RolloutStatusRunning {
		return false, nil, Errorf(EConflict, "rollout %q is %s", r.ID, r.Status)
	}
	if r.PendingGuard != nil {
		return false, nil, Errorf(EConflict, "rollout %q has a fired guard whose action is pending", r.ID)
	}
	if len(evidence) != len(r.Guards) {
		return false, nil, Errorf(EInternal, "rollout %q has %d guards, got %d measurements", r.ID, len(r.Guards), len(evidence))
	}
	var waiting []string
	for _, ev := range evidence {
		switch ev.Status {
		case GuardFailing:
			return false, []Event{&GuardFired{At: now.UTC(), Project: r.Project, Rollout: r.ID, Flag: r.Flag,
				Environment: r.Environment, Step: i, Guard: ev.Guard, Action: r.OnGuardFailure, Evidence: evidence}}, nil
		case GuardWaiting:
			waiting = append(waiting, ev.Decision)
		}
	}
	if len(waiting) == 0 {
		return true, nil, nil
	}
	reason := truncate(strings.Join(waiting, "; "), 1000)
	if r.Waiting != nil && r.Waiting.Step == i && sameWaitKind(r.Waiting.Evidence, evidence) {
		return false, nil, nil
	}
	return false, []Event{&RolloutStepWaiting{At: now.UTC(), Environment: r.Environment, Step: i, Reason: reason, Evidence: evidence}}, nil
}

// sameWaitKind: the guards wait for the same reasons (status and whether the sample is reached),
// so only a change of reason is recorded, not every new count.
func sameWaitKind(a, b []GuardEvidence) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		sa := a[i].Treatment.Exposed >= a[i].MinSample && a[i].Control.Exposed >= a[i].MinSample
		sb := b[i].Treatment.Exposed >= b[i].MinSample && b[i].Control.Exposed >= b[i].MinSample
		if a[i].Guard != b[i].Guard || a[i].Status != b[i].Status || sa != sb {
			return false
		}
	}
	return true
}

// GuardActionCommandID is the command id of the action a fired guard asks for (the rollback's
// flag append and the rollout's events), per rollout version of the firing, so the action happens
// once however often it is retried.
func (r *Rollout) GuardActionCommandID() string {
	return fmt.Sprintf("%s:rollback:guard:%d", r.ID, r.Version)
}

// RolloutWait is why a due step does not advance.
type RolloutWait struct {
	Step     int             `json:"step"`
	Since    time.Time       `json:"since"`
	Reason   string          `json:"reason"`
	Evidence []GuardEvidence `json:"evidence,omitempty"`
}

// WithGuardEvidence attaches the guards' evidence to the RolloutStepApplied among a step's
// rollout events (from ApplyStep), so the history shows what the step advanced on.
func WithGuardEvidence(events []Event, evidence []GuardEvidence) []Event {
	for _, e := range events {
		if a, ok := e.(*RolloutStepApplied); ok && len(evidence) > 0 {
			a.Guards = evidence
		}
	}
	return events
}
