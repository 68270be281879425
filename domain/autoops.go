package domain

import (
	"fmt"
	"math"
	"reflect"
	"time"
)

const (
	// MaxAutoOpsMinSample bounds a rule's minimum sample (exposed users per arm).
	MaxAutoOpsMinSample = 1_000_000_000
	autoOpsAggregate    = "autoops"
)

// AutoOpsAction is what a triggered auto-ops rule asks for.
type AutoOpsAction string

const (
	AutoOpsTurnOff         AutoOpsAction = "turn_off"         // toggle the flag off in the environment
	AutoOpsRollbackRollout AutoOpsAction = "rollback_rollout" // send the active rollout back to 0% (Rollout.RollBack)
	AutoOpsPauseRollout    AutoOpsAction = "pause_rollout"    // pause the active rollout (Rollout.Pause)
)

// AutoOpsComparison is how the metric is compared with the threshold.
type AutoOpsComparison string

const (
	AutoOpsGreaterThan AutoOpsComparison = "gt" // fire when the metric is above the threshold
	AutoOpsLessThan    AutoOpsComparison = "lt" // fire when the metric is below the threshold
)

// MeasureRate is the one measure so far: the goal per exposed user of the arm, i.e. converted
// users per exposed user for a conversion goal, events per exposed user for a count goal, value per
// exposed user for a value goal. The stats engine computes it; the rule only compares it.
const MeasureRate = "rate"

// AutoOpsMetric is what a rule watches: the rate of Goal among the users exposed to Variation, or,
// when Control is set, that rate minus the control's (treatment − control).
type AutoOpsMetric struct {
	Goal      string `json:"goal"`
	Measure   string `json:"measure"`
	Variation string `json:"variation"`
	Control   string `json:"control,omitempty"`
}

// AutoOpsDefinition is everything about an auto-ops rule that Update replaces.
type AutoOpsDefinition struct {
	Name       string            `json:"name"`
	Metric     AutoOpsMetric     `json:"metric"`
	Comparison AutoOpsComparison `json:"comparison"`
	Threshold  float64           `json:"threshold"`
	// MinSample is the minimum number of exposed users in each arm (the variation, and the control
	// if any) before the rule may fire.
	MinSample int64 `json:"min_sample"`
	// MinProbability is the statistical guard: the rule fires only when the probability, from the
	// stats engine, that the treatment is worse than the control (without a control: that the
	// metric really is beyond the threshold) is above it. 0 < MinProbability < 1, e.g. 0.95.
	MinProbability float64       `json:"min_probability"`
	Action         AutoOpsAction `json:"action"`
}

// NewAutoOpsRule is the input that creates an auto-ops rule.
type NewAutoOpsRule struct {
	Project     string `json:"project"`
	ID          string `json:"id"`
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	AutoOpsDefinition
	Enabled bool `json:"enabled"`
}

// AutoOpsRule watches a metric of one flag in one environment and acts when it goes bad.
type AutoOpsRule struct {
	Project     string `json:"project"`
	ID          string `json:"id"`
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	AutoOpsDefinition
	Enabled bool `json:"enabled"`
	// Triggered is set when the rule fires; it stays set, and the rule quiet, until Update or
	// Enable re-arms it.
	Triggered   bool             `json:"triggered"`
	TriggeredAt time.Time        `json:"triggered_at,omitzero"`
	Evidence    *AutoOpsEvidence `json:"evidence,omitempty"` // of the last firing
	Deleted     bool             `json:"deleted"`
	Version     int64            `json:"version"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
}

// AutoOpsArm is the data of one arm: users exposed, and the metric's rate among them.
type AutoOpsArm struct {
	Exposed int64   `json:"exposed"`
	Rate    float64 `json:"rate"`
}

// AutoOpsMetrics is what the experiment service measured for a rule: the rule's variation
// (Treatment), its control if the metric has one, and the probability that the treatment is worse
// (see AutoOpsDefinition.MinProbability).
type AutoOpsMetrics struct {
	Treatment   AutoOpsArm `json:"treatment"`
	Control     AutoOpsArm `json:"control"`
	Probability float64    `json:"probability"`
}

// AutoOpsEvidence is why a rule fired (or did not): the inputs, the thresholds and the decision.
type AutoOpsEvidence struct {
	At        time.Time   `json:"at"`
	Value     float64     `json:"value"` // the metric compared with the threshold
	Treatment AutoOpsArm  `json:"treatment"`
	Control   *AutoOpsArm `json:"control,omitempty"` // nil when the metric has no control
	// Probability is the stats engine's probability that the treatment is worse.
	Probability    float64           `json:"probability"`
	Comparison     AutoOpsComparison `json:"comparison"`
	Threshold      float64           `json:"threshold"`
	MinProbability float64           `json:"min_probability"`
	MinSample      int64             `json:"min_sample"`
	// Fired is the decision; Decision explains it in words ("quiet: sample too small ...",
	// "fired: ...").
	Fired    bool   `json:"fired"`
	Decision string `json:"decision"`
}

// CreateAutoOpsRule creates a rule (enabled or not, as in.Enabled says). See
// ValidateAutoOpsDefinition for the rules; the flag and environment must exist in cat, the flag not
// archived (EInvalid at flag and environment).
func CreateAutoOpsRule(in NewAutoOpsRule, cat *ExperimentCatalog) ([]Event, error) {
	if !ValidKey(in.Project) {
		return nil, Invalid("project", "invalid project key %q", truncate(in.Project, 120))
	}
	if !ValidKey(in.ID) {
		return nil, Invalid("id", "invalid auto-ops rule id %q", truncate(in.ID, 120))
	}
	fi, err := refFlag("flag", in.Flag, cat.flags())
	if err != nil {
		return nil, err
	}
	if err := refEnvironment("environment", in.Environment, cat.flags()); err != nil {
		return nil, err
	}
	d, err := validateAutoOpsDefinition(in.AutoOpsDefinition, in.Flag, fi, cat)
	if err != nil {
		return nil, err
	}
	return []Event{&AutoOpsRuleCreated{Project: in.Project, ID: in.ID, Flag: in.Flag, Environment: in.Environment,
		AutoOpsDefinition: d, Enabled: in.Enabled}}, nil
}

// ValidateAutoOpsDefinition checks a rule's definition for flag, with cat, and returns it
// normalized (measure defaulted to rate). Rules: a name; the goal exists and is not archived; the
// measure is rate; the variation, and the control if set, are variations of the flag and differ;
// the comparison is gt or lt; the threshold is finite; 1 <= min_sample <= MaxAutoOpsMinSample;
// 0 < min_probability < 1; the action is turn_off, rollback_rollout or pause_rollout.
func ValidateAutoOpsDefinition(d AutoOpsDefinition, flag string, cat *ExperimentCatalog) (AutoOpsDefinition, error) {
	fi, err := refFlag("flag", flag, cat.flags())
	if err != nil {
		return AutoOpsDefinition{}, err
	}
	out, err := validateAutoOpsDefinition(d, flag, fi, cat)
	if err != nil {
		return AutoOpsDefinition{}, err
	}
	return out, nil
}

func validateAutoOpsDefinition(d AutoOpsDefinition, flag string, fi FlagInfo, cat *ExperimentCatalog) (AutoOpsDefinition, *Error) {
	out := d
	if err := validName("name", d.Name); err != nil {
		return out, err
	}
	if d.Metric.Goal == "" {
		return out, Invalid("metric.goal", "the metric's goal is required")
	}
	if err := refGoal("metric.goal", d.Metric.Goal, cat, map[string]string{}); err != nil {
		return out, err
	}
	switch d.Metric.Measure {
	case "":
		out.Metric.Measure = MeasureRate
	case MeasureRate:
	default:
		return out, Invalid("metric.measure", "measure must be %q, not %q", MeasureRate, truncate(d.Metric.Measure, 40))
	}
	if !fi.HasVariation(d.Metric.Variation) {
		return out, Invalid("metric.variation", "flag %q has no variation %q", flag, truncate(d.Metric.Variation, 120))
	}
	if d.Metric.Control != "" {
		if !fi.HasVariation(d.Metric.Control) {
			return out, Invalid("metric.control", "flag %q has no variation %q", flag, truncate(d.Metric.Control, 120))
		}
		if d.Metric.Control == d.Metric.Variation {
			return out, Invalid("metric.control", "the control must differ from the variation")
		}
	}
	if d.Comparison != AutoOpsGreaterThan && d.Comparison != AutoOpsLessThan {
		return out, Invalid("comparison", "comparison must be %q or %q, not %q", AutoOpsGreaterThan, AutoOpsLessThan, truncate(string(d.Comparison), 40))
	}
	if math.IsNaN(d.Threshold) || math.IsInf(d.Threshold, 0) {
		return out, Invalid("threshold", "threshold must be a finite number")
	}
	if d.MinSample < 1 || d.MinSample > MaxAutoOpsMinSample {
		return out, Invalid("min_sample", "minimum sample must be between 1 and %d exposed users, got %d", MaxAutoOpsMinSample, d.MinSample)
	}
	if !(d.MinProbability > 0 && d.MinProbability < 1) {
		return out, Invalid("min_probability", "minimum probability must be more than 0 and less than 1, got %v", d.MinProbability)
	}
	switch d.Action {
	case AutoOpsTurnOff, AutoOpsRollbackRollout, AutoOpsPauseRollout:
	default:
		return out, Invalid("action", "action must be turn_off, rollback_rollout or pause_rollout, not %q", truncate(string(d.Action), 40))
	}
	return out, nil
}

// Update replaces the rule's definition. It re-arms a triggered rule, so an update of a triggered
// rule records an event even when the definition is unchanged; otherwise an unchanged definition
// is a no-op.
func (r *AutoOpsRule) Update(d AutoOpsDefinition, cat *ExperimentCatalog) ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	fi, ok := cat.flags().Flag(r.Flag)
	if !ok {
		return nil, Errorf(EConflict, "flag %q of the rule no longer exists", r.Flag)
	}
	out, err := validateAutoOpsDefinition(d, r.Flag, fi, cat)
	if err != nil {
		return nil, err
	}
	if !r.Triggered && reflect.DeepEqual(out, r.AutoOpsDefinition) {
		return nil, nil
	}
	return []Event{&AutoOpsRuleUpdated{AutoOpsDefinition: out}}, nil
}

// Enable enables the rule and re-arms it if it triggered; an enabled, armed rule is a no-op.
func (r *AutoOpsRule) Enable() ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	if r.Enabled && !r.Triggered {
		return nil, nil
	}
	return []Event{&AutoOpsRuleEnabled{}}, nil
}

// Disable disables the rule; a disabled rule is a no-op.
func (r *AutoOpsRule) Disable() ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	if !r.Enabled {
		return nil, nil
	}
	return []Event{&AutoOpsRuleDisabled{}}, nil
}

// Delete deletes the rule; a deleted rule is not found by any command.
func (r *AutoOpsRule) Delete() ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	return []Event{&AutoOpsRuleDeleted{}}, nil
}

// Armed reports whether the rule may fire: it exists, is enabled and has not triggered.
func (r *AutoOpsRule) Armed() bool {
	return r != nil && r.ID != "" && !r.Deleted && r.Enabled && !r.Triggered
}

// Decide is the rule's pure decision on metrics m measured at now. It fires only when the rule is
// armed (see Armed: it never fires while disabled, nor again once triggered), both arms reached
// MinSample exposed users (only the treatment for a metric without control), the metric is on the
// bad side of the threshold (strictly) and the guard holds (m.Probability > MinProbability).
// Non-finite inputs never fire. The evidence is always filled in, with the decision in words, so
// that quiet decisions can be logged too; when it fires, pass it to Fire.
func (r *AutoOpsRule) Decide(m AutoOpsMetrics, now time.Time) (fire bool, evidence AutoOpsEvidence) {
	ev := AutoOpsEvidence{At: now.UTC(), Treatment: m.Treatment, Probability: m.Probability}
	if r == nil || r.ID == "" {
		ev.Decision = "quiet: no rule"
		return false, quietEvidence(ev)
	}
	ev.Comparison, ev.Threshold, ev.MinProbability, ev.MinSample = r.Comparison, r.Threshold, r.MinProbability, r.MinSample
	ev.Value = m.Treatment.Rate
	hasControl := r.Metric.Control != ""
	if hasControl {
		c := m.Control
		ev.Control = &c
		ev.Value = m.Treatment.Rate - m.Control.Rate
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	crossed := (r.Comparison == AutoOpsGreaterThan && ev.Value > r.Threshold) ||
		(r.Comparison == AutoOpsLessThan && ev.Value < r.Threshold)
	switch {
	case r.Deleted:
		ev.Decision = "quiet: the rule is deleted"
	case !r.Enabled:
		ev.Decision = "quiet: the rule is disabled"
	case r.Triggered:
		ev.Decision = "quiet: the rule already triggered; update or enable it to re-arm it"
	case m.Treatment.Exposed < r.MinSample || (hasControl && m.Control.Exposed < r.MinSample):
		ev.Decision = fmt.Sprintf("quiet: sample too small (%s, need %d exposed users per arm)", sampleSizes(m, hasControl), r.MinSample)
	case !finite(m.Treatment.Rate) || (hasControl && !finite(m.Control.Rate)) || !finite(ev.Value) ||
		math.IsNaN(m.Probability) || m.Probability < 0 || m.Probability > 1:
		ev.Decision = "quiet: the metrics are not finite numbers or the probability is not in [0, 1]"
	case !crossed:
		ev.Decision = fmt.Sprintf("quiet: metric %v is not %s threshold %v", ev.Value, comparisonWords(r.Comparison), r.Threshold)
	case !(m.Probability > r.MinProbability):
		ev.Decision = fmt.Sprintf("quiet: metric %v is %s threshold %v but the probability that it is worse, %v, is not above %v",
			ev.Value, comparisonWords(r.Comparison), r.Threshold, m.Probability, r.MinProbability)
	default:
		ev.Fired = true
		ev.Decision = fmt.Sprintf("fired: metric %v is %s threshold %v with probability %v above %v (%s)",
			ev.Value, comparisonWords(r.Comparison), r.Threshold, m.Probability, r.MinProbability, sampleSizes(m, hasControl))
		return true, ev
	}
	return false, quietEvidence(ev)
}

// quietEvidence keeps the evidence of a quiet decision encodable as JSON (the rate of 0 exposed
// users is NaN): non-finite numbers are recorded as 0, and the decision says why it stayed quiet.
func quietEvidence(ev AutoOpsEvidence) AutoOpsEvidence {
	for _, x := range []*float64{&ev.Value, &ev.Treatment.Rate, &ev.Probability} {
		if math.IsNaN(*x) || math.IsInf(*x, 0) {
			*x = 0
		}
	}
	if ev.Control != nil && (math.IsNaN(ev.Control.Rate) || math.IsInf(ev.Control.Rate, 0)) {
		ev.Control.Rate = 0
	}
	return ev
}

func comparisonWords(c AutoOpsComparison) string {
	if c == AutoOpsLessThan {
		return "below"
	}
	return "above"
}

func sampleSizes(m AutoOpsMetrics, hasControl bool) string {
	if hasControl {
		return fmt.Sprintf("%d exposed to the variation, %d to the control", m.Treatment.Exposed, m.Control.Exposed)
	}
	return fmt.Sprintf("%d exposed to the variation", m.Treatment.Exposed)
}

// Fire records that the rule triggered on evidence (from a Decide that fired) and asks for its
// action. The evidence is decided again against the rule as it is (from its inputs: the arms, the
// probability and the time) and must come out the same, so a Triggered event is always justified
// by the rule's definition at that version: quiet evidence, evidence the rule would not fire on,
// or evidence decided by another version of the rule is EInvalid at "evidence"; a rule that is not
// armed is EConflict. The caller then performs the action with ordinary commands attributed to the system
// actor (Flag.Toggle off, Rollout.RollBack or Rollout.Pause of the active rollout of the flag and
// environment).
func (r *AutoOpsRule) Fire(evidence AutoOpsEvidence) ([]Event, error) {
	if err := r.exists(); err != nil {
		return nil, err
	}
	if !r.Armed() {
		what := "disabled"
		if r.Triggered {
			what = "already triggered"
		}
		return nil, Errorf(EConflict, "auto-ops rule %q is %s", r.ID, what)
	}
	m := AutoOpsMetrics{Treatment: evidence.Treatment, Probability: evidence.Probability}
	if evidence.Control != nil {
		m.Control = *evidence.Control
	}
	fire, ev := r.Decide(m, evidence.At)
	switch {
	case !evidence.Fired:
		return nil, Invalid("evidence", "the evidence is of a quiet decision (%s)", truncate(evidence.Decision, 200))
	case !fire:
		return nil, Invalid("evidence", "the rule does not fire on this evidence (%s)", ev.Decision)
	case !reflect.DeepEqual(ev, withUTC(evidence)):
		return nil, Invalid("evidence", "the evidence was not decided by this version of the rule")
	}
	return []Event{&AutoOpsRuleTriggered{Environment: r.Environment, Evidence: ev, Action: r.Action}}, nil
}

func withUTC(ev AutoOpsEvidence) AutoOpsEvidence {
	ev.At = ev.At.UTC()
	return ev
}

func (r *AutoOpsRule) exists() *Error {
	if r == nil || r.ID == "" || r.Deleted {
		return Errorf(ENotFound, "auto-ops rule not found")
	}
	return nil
}

// Apply changes the in-memory state by one event of the auto-ops stream and bumps Version. Events
// of other aggregates are ignored.
func (r *AutoOpsRule) Apply(e Event) { r.apply(e) }

func (r *AutoOpsRule) apply(e Event) bool {
	switch e := e.(type) {
	case *AutoOpsRuleCreated:
		r.Project, r.ID, r.Flag, r.Environment = e.Project, e.ID, e.Flag, e.Environment
		r.AutoOpsDefinition, r.Enabled = e.AutoOpsDefinition, e.Enabled
	case *AutoOpsRuleUpdated:
		r.AutoOpsDefinition, r.Triggered = e.AutoOpsDefinition, false
	case *AutoOpsRuleEnabled:
		r.Enabled, r.Triggered = true, false
	case *AutoOpsRuleDisabled:
		r.Enabled = false
	case *AutoOpsRuleDeleted:
		r.Deleted = true
	case *AutoOpsRuleTriggered:
		ev := e.Evidence
		if ev.Control != nil {
			c := *ev.Control
			ev.Control = &c
		}
		r.Triggered, r.TriggeredAt, r.Evidence = true, ev.At, &ev
	default:
		return false
	}
	r.Version++
	return true
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record.
func (r *AutoOpsRule) ApplyRecorded(rec RecordedEvent) error {
	e, err := rec.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(autoOpsAggregate, rec, r.ID != "", isType[*AutoOpsRuleCreated](e)); err != nil {
		return err
	}
	if !r.apply(e) {
		return unexpectedEvent(autoOpsAggregate, rec)
	}
	r.Version = rec.Version
	r.UpdatedAt = rec.OccurredAt
	if _, ok := e.(*AutoOpsRuleCreated); ok {
		r.CreatedAt = rec.OccurredAt
	}
	return nil
}

// FoldAutoOpsRule rebuilds an auto-ops rule from its stream. It returns (nil, nil) for an empty
// stream.
func FoldAutoOpsRule(events []RecordedEvent) (*AutoOpsRule, error) {
	if len(events) == 0 {
		return nil, nil
	}
	r := &AutoOpsRule{}
	for _, rec := range events {
		if err := r.ApplyRecorded(rec); err != nil {
			return nil, err
		}
	}
	return r, nil
}
