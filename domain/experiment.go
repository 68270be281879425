package domain

import (
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// Experiment limits.
const (
	MinExperimentVariations = 2
	MaxExperimentGoals      = 20 // secondary goals, and guardrail goals, each
	experimentAggregate     = "experiment"
)

// ExperimentStatus is where an experiment is in its lifecycle:
// draft -> running -> stopped -> concluded, or running -> concluded directly (stopped on the way).
// Archiving is separate (Experiment.Archived): any status but running can be archived.
type ExperimentStatus string

const (
	ExperimentStatusDraft     ExperimentStatus = "draft"
	ExperimentStatusRunning   ExperimentStatus = "running"
	ExperimentStatusStopped   ExperimentStatus = "stopped"
	ExperimentStatusConcluded ExperimentStatus = "concluded"
)

// ExperimentVariation is one variation of the flag in play in an experiment.
type ExperimentVariation struct {
	Variation string `json:"variation"`
	// Control marks the baseline the other variations are compared with; exactly one has it.
	Control bool `json:"control,omitempty"`
	// Weight is the variation's share of the experiment's traffic in bucket units: the weights of
	// an experiment add up to BucketCount. Leave every weight 0 for an equal split (see
	// ValidateExperimentDefinition); recorded definitions always carry the weights.
	Weight int `json:"weight"`
}

// ExperimentDefinition is everything about an experiment that a draft may change.
type ExperimentDefinition struct {
	Name        string                `json:"name"`
	Hypothesis  string                `json:"hypothesis,omitempty"`
	Flag        string                `json:"flag"`
	Environment string                `json:"environment"`
	Variations  []ExperimentVariation `json:"variations"`
	// Allocation is the share of the eligible users (those reaching the flag's default serve in the
	// environment) that enter the experiment, in bucket units: BucketCount is everyone.
	Allocation int `json:"allocation"`
	// Seed is the experiment's own bucketing seed (random, supplied by the caller), so its
	// assignment is independent of the flag's other splits and of earlier experiments on the flag.
	Seed           string   `json:"seed"`
	PrimaryGoal    string   `json:"primary_goal"`
	SecondaryGoals []string `json:"secondary_goals"`
	// GuardrailGoals are metrics that must not get worse (errors, latency) whatever the primary does.
	GuardrailGoals []string `json:"guardrail_goals"`
	// Analysis is how the data is analysed (engine, corrections, CUPED, per-goal windows and
	// priors); the zero value is the Bayesian engine with the defaults.
	Analysis ExperimentAnalysis `json:"analysis,omitzero"`
}

// NewExperiment is the input that creates an experiment (a draft).
type NewExperiment struct {
	Project string `json:"project"`
	Key     string `json:"key"`
	ExperimentDefinition
}

// Experiment is the experiment aggregate.
type Experiment struct {
	Project string `json:"project"`
	Key     string `json:"key"`
	ExperimentDefinition
	Status   ExperimentStatus `json:"status"`
	Archived bool             `json:"archived"`
	// StartedAt and StoppedAt bound the analysis window.
	StartedAt time.Time `json:"started_at,omitzero"`
	StoppedAt time.Time `json:"stopped_at,omitzero"`
	// Conclusion: the variation chosen and why.
	Winner           string    `json:"winner,omitempty"`
	ConclusionReason string    `json:"conclusion_reason,omitempty"`
	ConcludedAt      time.Time `json:"concluded_at,omitzero"`
	Version          int64     `json:"version"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// ExperimentSplit is an experiment's serving configuration: users whose bucket (by Seed) falls
// below Allocation enter the experiment and are split by Variations (weights adding up to
// BucketCount, hashed again within the experiment); the others get the flag's own targeting.
type ExperimentSplit struct {
	Key        string              `json:"key"`
	Seed       string              `json:"seed"`
	Allocation int                 `json:"allocation"`
	Variations []WeightedVariation `json:"variations"`
}

// CreateExperiment creates a draft experiment. A key already in cat is EConflict. The definition
// follows ValidateExperimentDefinition.
func CreateExperiment(in NewExperiment, cat *ExperimentCatalog) ([]Event, error) {
	if !ValidKey(in.Project) {
		return nil, Invalid("project", "invalid project key %q", truncate(in.Project, 120))
	}
	if !ValidKey(in.Key) {
		return nil, Invalid("key", "invalid experiment key %q: letters, digits, '.', '_' and '-', at most 100 characters, starting with a letter or digit", truncate(in.Key, 120))
	}
	if _, taken := cat.Experiment(in.Key); taken {
		return nil, &Error{Code: EConflict, Field: "key", Message: fmt.Sprintf("experiment %q already exists", in.Key)}
	}
	d, err := validateExperimentDefinition(in.ExperimentDefinition, cat)
	if err != nil {
		return nil, err
	}
	return []Event{&ExperimentCreated{Project: in.Project, Key: in.Key, ExperimentDefinition: d}}, nil
}

// ValidateExperimentDefinition checks a definition against cat and returns it normalized: weights
// filled in, empty goal lists instead of nil ones. Field paths are relative to the definition.
//
// Rules: a name; the flag exists and is not archived; the environment exists; 2 to
// MaxSplitVariations distinct variations of the flag, exactly one of them the control; weights all
// 0 (an equal split: BucketCount/n each, the remainder to the first variation) or each at least 1
// and adding up to BucketCount; 0 < allocation <= BucketCount (0 means BucketCount: all eligible
// users); a non-blank seed of at most
// MaxSaltLength characters; a primary goal, and at most MaxExperimentGoals secondary and guardrail
// goals, all existing non-archived goals, none listed twice across the three.
func ValidateExperimentDefinition(d ExperimentDefinition, cat *ExperimentCatalog) (ExperimentDefinition, error) {
	out, err := validateExperimentDefinition(d, cat)
	if err != nil {
		return ExperimentDefinition{}, err
	}
	return out, nil
}

func validateExperimentDefinition(d ExperimentDefinition, cat *ExperimentCatalog) (ExperimentDefinition, *Error) {
	out := ExperimentDefinition{Name: d.Name, Hypothesis: d.Hypothesis, Flag: d.Flag, Environment: d.Environment,
		Allocation: d.Allocation, Seed: d.Seed, PrimaryGoal: d.PrimaryGoal}
	if err := validName("name", d.Name); err != nil {
		return out, err
	}
	switch {
	case !utf8.ValidString(d.Hypothesis):
		return out, Invalid("hypothesis", "hypothesis is not valid UTF-8")
	case utf8.RuneCountInString(d.Hypothesis) > MaxDescriptionLength:
		return out, Invalid("hypothesis", "hypothesis longer than %d characters", MaxDescriptionLength)
	}
	fi, err := refFlag("flag", d.Flag, cat.flags())
	if err != nil {
		return out, err
	}
	if err := refEnvironment("environment", d.Environment, cat.flags()); err != nil {
		return out, err
	}
	if out.Variations, err = validateExperimentVariations(d.Variations, d.Flag, fi); err != nil {
		return out, err
	}
	if d.Allocation == 0 {
		// Not given: every eligible user takes part, as in every experimentation tool users know.
		d.Allocation, out.Allocation = BucketCount, BucketCount
	}
	if d.Allocation < 0 || d.Allocation > BucketCount {
		return out, Invalid("allocation", "allocation must be between 1 and %d (100%% of eligible users), got %d", BucketCount, d.Allocation)
	}
	switch {
	case strings.TrimSpace(d.Seed) == "":
		return out, Invalid("seed", "seed is required")
	case !utf8.ValidString(d.Seed) || utf8.RuneCountInString(d.Seed) > MaxSaltLength:
		return out, Invalid("seed", "seed must be valid UTF-8 of at most %d characters", MaxSaltLength)
	}
	seen := map[string]string{} // goal -> the field that lists it
	if d.PrimaryGoal == "" {
		return out, Invalid("primary_goal", "a primary goal is required")
	}
	if err := refGoal("primary_goal", d.PrimaryGoal, cat, seen); err != nil {
		return out, err
	}
	lists := []struct {
		field string
		goals []string
		dst   *[]string
	}{{"secondary_goals", d.SecondaryGoals, &out.SecondaryGoals}, {"guardrail_goals", d.GuardrailGoals, &out.GuardrailGoals}}
	for _, l := range lists {
		if len(l.goals) > MaxExperimentGoals {
			return out, Invalid(l.field, "at most %d goals, got %d", MaxExperimentGoals, len(l.goals))
		}
		for i, g := range l.goals {
			if err := refGoal(fmt.Sprintf("%s[%d]", l.field, i), g, cat, seen); err != nil {
				return out, err
			}
		}
		*l.dst = append([]string{}, l.goals...)
	}
	goals := append(append([]string{d.PrimaryGoal}, d.SecondaryGoals...), d.GuardrailGoals...)
	if err := validateAnalysis(d.Analysis, goals, goalKind(cat)); err != nil {
		return out, err
	}
	out.Analysis = d.Analysis.clone()
	return out, nil
}

func validateExperimentVariations(vs []ExperimentVariation, flag string, fi FlagInfo) ([]ExperimentVariation, *Error) {
	switch n := len(vs); {
	case n < MinExperimentVariations:
		return nil, Invalid("variations", "an experiment needs at least %d variations, got %d", MinExperimentVariations, n)
	case n > MaxSplitVariations:
		return nil, Invalid("variations", "at most %d variations, got %d", MaxSplitVariations, n)
	}
	out := make([]ExperimentVariation, len(vs))
	seen := map[string]int{}
	control := -1
	weighted := false
	for i, v := range vs {
		field := fmt.Sprintf("variations[%d]", i)
		if !fi.HasVariation(v.Variation) {
			return nil, Invalid(field+".variation", "flag %q has no variation %q", flag, truncate(v.Variation, 120))
		}
		if j, dup := seen[v.Variation]; dup {
			return nil, Invalid(field+".variation", "variation %q is already in the experiment (variations[%d])", v.Variation, j)
		}
		seen[v.Variation] = i
		if v.Control {
			if control >= 0 {
				return nil, Invalid(field+".control", "exactly one control variation: variations[%d] is the control already", control)
			}
			control = i
		}
		if v.Weight != 0 {
			weighted = true
		}
		out[i] = v
	}
	if control < 0 {
		return nil, Invalid("variations", "exactly one variation must be the control, none is")
	}
	if !weighted {
		for i := range out {
			out[i].Weight = BucketCount / len(out)
		}
		out[0].Weight += BucketCount % len(out)
		return out, nil
	}
	sum := 0
	for i, v := range out {
		if v.Weight < 1 || v.Weight > BucketCount {
			return nil, Invalid(fmt.Sprintf("variations[%d].weight", i),
				"weight must be between 1 and %d, got %d (leave every weight 0 for an equal split)", BucketCount, v.Weight)
		}
		sum += v.Weight
	}
	if sum != BucketCount {
		return nil, Invalid("variations", "weights add up to %d, want %d (100%%)", sum, BucketCount)
	}
	return out, nil
}

// refFlag checks a reference to a live flag of the catalog.
func refFlag(field, key string, cat *Catalog) (FlagInfo, *Error) {
	if !ValidKey(key) {
		return FlagInfo{}, Invalid(field, "invalid flag key %q", truncate(key, 120))
	}
	fi, ok := cat.Flag(key)
	if !ok {
		return fi, Invalid(field, "unknown flag %q", key)
	}
	if fi.Archived {
		return fi, Invalid(field, "flag %q is archived", key)
	}
	return fi, nil
}

// refEnvironment checks a reference to an environment of the project.
func refEnvironment(field, env string, cat *Catalog) *Error {
	if !ValidKey(env) {
		return Invalid(field, "invalid environment key %q", truncate(env, 120))
	}
	if !cat.HasEnvironment(env) {
		return Invalid(field, "unknown environment %q", env)
	}
	return nil
}

// refGoal checks a reference to a live goal that seen does not list yet, and records it in seen.
func refGoal(field, key string, cat *ExperimentCatalog, seen map[string]string) *Error {
	if !ValidKey(key) {
		return Invalid(field, "invalid goal key %q", truncate(key, 120))
	}
	gi, ok := cat.Goal(key)
	if !ok {
		return Invalid(field, "unknown goal %q", key)
	}
	if gi.Archived {
		return Invalid(field, "goal %q is archived", key)
	}
	if prev, dup := seen[key]; dup {
		return Invalid(field, "goal %q is already listed (%s)", key, prev)
	}
	seen[key] = field
	return nil
}

// Definition returns the experiment's current definition, normalized as validation returns it.
func (e *Experiment) Definition() ExperimentDefinition {
	d := e.ExperimentDefinition
	d.Variations = append([]ExperimentVariation{}, d.Variations...)
	d.SecondaryGoals = append([]string{}, d.SecondaryGoals...)
	d.GuardrailGoals = append([]string{}, d.GuardrailGoals...)
	d.Analysis = d.Analysis.clone()
	return d
}

// Goals returns every goal the experiment measures: the primary, then the secondary, then the
// guardrail goals.
func (e *Experiment) Goals() []string {
	var out []string
	if e.PrimaryGoal != "" {
		out = append(out, e.PrimaryGoal)
	}
	out = append(out, e.SecondaryGoals...)
	return append(out, e.GuardrailGoals...)
}

// Control returns the control variation's key.
func (e *Experiment) Control() string {
	for _, v := range e.Variations {
		if v.Control {
			return v.Variation
		}
	}
	return ""
}

// Running reports whether the experiment is serving its split.
func (e *Experiment) Running() bool {
	return e != nil && !e.Archived && e.Status == ExperimentStatusRunning
}

// Split returns the experiment's serving configuration. It is meaningful while Running; the
// ruleset compiler serves it in place of the environment's default serve.
func (e *Experiment) Split() ExperimentSplit {
	s := ExperimentSplit{Key: e.Key, Seed: e.Seed, Allocation: e.Allocation,
		Variations: make([]WeightedVariation, len(e.Variations))}
	for i, v := range e.Variations {
		s.Variations[i] = WeightedVariation{Variation: v.Variation, Weight: v.Weight}
	}
	return s
}

// UpdateDraft replaces the definition of a draft (ValidateExperimentDefinition); an empty seed
// keeps the current one. Any other status is EConflict: the data of a started experiment must keep
// meaning what it meant.
func (e *Experiment) UpdateDraft(d ExperimentDefinition, cat *ExperimentCatalog) ([]Event, error) {
	if err := e.live(); err != nil {
		return nil, err
	}
	if e.Status != ExperimentStatusDraft {
		return nil, Errorf(EConflict, "experiment %q is %s: only a draft can be changed", e.Key, e.Status)
	}
	if d.Seed == "" {
		d.Seed = e.Seed
	}
	out, err := validateExperimentDefinition(d, cat)
	if err != nil {
		return nil, err
	}
	if reflect.DeepEqual(out, e.Definition()) {
		return nil, nil
	}
	return []Event{&ExperimentUpdated{ExperimentDefinition: out}}, nil
}

// ChangeAnalysis replaces the analysis settings (engine, alpha, sequential testing, correction,
// CUPED, per-goal conversion windows, priors and quantiles, ratio metrics) of a running or
// stopped experiment; the next analysis uses them, and each stored analysis keeps the settings it
// ran with. Only how the data is read changes, never who saw what, so this is the one change a
// started experiment allows. A draft changes its whole definition (UpdateDraft); a concluded
// experiment keeps the settings its decision was made with (EConflict). Identical settings
// record nothing.
func (e *Experiment) ChangeAnalysis(a ExperimentAnalysis, cat *ExperimentCatalog) ([]Event, error) {
	if err := e.live(); err != nil {
		return nil, err
	}
	switch e.Status {
	case ExperimentStatusRunning, ExperimentStatusStopped:
	case ExperimentStatusDraft:
		return nil, Errorf(EConflict, "experiment %q is a draft: change its definition (analysis included) with an update", e.Key)
	default:
		return nil, Errorf(EConflict, "experiment %q is %s: its analysis settings are those its decision was made with", e.Key, e.Status)
	}
	if err := validateAnalysis(a, e.Goals(), goalKind(cat)); err != nil {
		return nil, err
	}
	out := a.clone()
	if reflect.DeepEqual(out, e.Analysis.clone()) {
		return nil, nil
	}
	return []Event{&ExperimentAnalysisChanged{Analysis: out, Previous: e.Analysis.clone()}}, nil
}

// goalKind looks a goal's kind up in cat.
func goalKind(cat *ExperimentCatalog) func(string) (GoalKind, bool) {
	return func(goal string) (GoalKind, bool) {
		g, ok := cat.Goal(goal)
		return g.Kind, ok
	}
}

// Start starts a draft at now. It is refused (EConflict) for any other status, while another
// experiment runs on the same flag and environment (Details["experiments"]), and when the draft
// is no longer valid against cat (a flag, variation, environment or goal has gone or been
// archived since it was written; the error keeps the field of the definition).
func (e *Experiment) Start(cat *ExperimentCatalog, now time.Time) ([]Event, error) {
	if err := e.live(); err != nil {
		return nil, err
	}
	if e.Status != ExperimentStatusDraft {
		return nil, Errorf(EConflict, "experiment %q is %s: only a draft can start", e.Key, e.Status)
	}
	var others []string
	for _, k := range cat.RunningExperiments(e.Flag, e.Environment) {
		if k != e.Key {
			others = append(others, k)
		}
	}
	if len(others) > 0 {
		return nil, &Error{Code: EConflict,
			Message: fmt.Sprintf("experiment %s is already running on flag %q in environment %q", quoteList(others), e.Flag, e.Environment),
			Details: map[string]any{"experiments": others}}
	}
	// A rollout moves the default serve the experiment takes over, and its auto-ops may turn the
	// flag off under the experiment: one owner of a flag's default at a time.
	if rollouts := cat.ActiveRollouts(e.Flag, e.Environment); len(rollouts) > 0 {
		return nil, &Error{Code: EConflict, Field: "flag",
			Message: fmt.Sprintf("flag %q is being rolled out in environment %q (rollouts %s): let the rollout complete, or abort it, before starting an experiment on it",
				e.Flag, e.Environment, quoteList(rollouts)),
			Details: map[string]any{"rollouts": rollouts}}
	}
	if _, err := validateExperimentDefinition(e.Definition(), cat); err != nil {
		return nil, &Error{Code: EConflict, Field: err.Field, Message: "the draft cannot start: " + err.Message}
	}
	return []Event{&ExperimentStarted{At: now.UTC()}}, nil
}

// Stop stops a running experiment at now.
func (e *Experiment) Stop(now time.Time) ([]Event, error) {
	if err := e.live(); err != nil {
		return nil, err
	}
	if e.Status != ExperimentStatusRunning {
		return nil, Errorf(EConflict, "experiment %q is %s: only a running experiment can stop", e.Key, e.Status)
	}
	return []Event{&ExperimentStopped{At: now.UTC()}}, nil
}

// Conclude records the decision: variation (one of those in play) and a reason. A running
// experiment is stopped at now in the same command (ExperimentStopped, then ExperimentConcluded);
// a draft cannot be concluded.
func (e *Experiment) Conclude(variation, reason string, now time.Time) ([]Event, error) {
	if err := e.live(); err != nil {
		return nil, err
	}
	if e.Status != ExperimentStatusRunning && e.Status != ExperimentStatusStopped {
		return nil, Errorf(EConflict, "experiment %q is %s: only a running or stopped experiment can be concluded", e.Key, e.Status)
	}
	inPlay := false
	for _, v := range e.Variations {
		inPlay = inPlay || v.Variation == variation
	}
	if !inPlay {
		return nil, Invalid("variation", "variation %q is not in the experiment", truncate(variation, 120))
	}
	if err := validReason("reason", reason, true); err != nil {
		return nil, err
	}
	var out []Event
	if e.Status == ExperimentStatusRunning {
		out = append(out, &ExperimentStopped{At: now.UTC()})
	}
	return append(out, &ExperimentConcluded{Variation: variation, Reason: reason}), nil
}

// validReason checks a free-text reason (required or not) of at most MaxDescriptionLength.
func validReason(field, s string, required bool) *Error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return Invalid(field, "a reason is required")
	case !utf8.ValidString(s):
		return Invalid(field, "reason is not valid UTF-8")
	case utf8.RuneCountInString(s) > MaxDescriptionLength:
		return Invalid(field, "reason longer than %d characters", MaxDescriptionLength)
	}
	return nil
}

// Archive archives the experiment; a running one must be stopped (or concluded) first.
func (e *Experiment) Archive() ([]Event, error) {
	if err := e.exists(); err != nil {
		return nil, err
	}
	if e.Archived {
		return nil, Errorf(EConflict, "experiment %q is already archived", e.Key)
	}
	if e.Status == ExperimentStatusRunning {
		return nil, Errorf(EConflict, "experiment %q is running: stop it before archiving it", e.Key)
	}
	return []Event{&ExperimentArchived{}}, nil
}

func (e *Experiment) live() *Error {
	if err := e.exists(); err != nil {
		return err
	}
	if e.Archived {
		return Errorf(EConflict, "experiment %q is archived", e.Key)
	}
	return nil
}

func (e *Experiment) exists() *Error {
	if e == nil || e.Key == "" {
		return Errorf(ENotFound, "experiment not found")
	}
	return nil
}

// Apply changes the in-memory state by one event of the experiment stream and bumps Version.
// Events of other aggregates are ignored.
func (e *Experiment) Apply(ev Event) { e.apply(ev) }

func (e *Experiment) apply(ev Event) bool {
	switch ev := ev.(type) {
	case *ExperimentCreated:
		e.Project, e.Key = ev.Project, ev.Key
		e.setDefinition(ev.ExperimentDefinition)
		e.Status = ExperimentStatusDraft
	case *ExperimentUpdated:
		e.setDefinition(ev.ExperimentDefinition)
	case *ExperimentAnalysisChanged:
		e.Analysis = ev.Analysis.clone()
	case *ExperimentStarted:
		e.Status, e.StartedAt = ExperimentStatusRunning, ev.At
	case *ExperimentStopped:
		e.Status, e.StoppedAt = ExperimentStatusStopped, ev.At
	case *ExperimentConcluded:
		e.Status, e.Winner, e.ConclusionReason = ExperimentStatusConcluded, ev.Variation, ev.Reason
	case *ExperimentArchived:
		e.Archived = true
	default:
		return false
	}
	e.Version++
	return true
}

func (e *Experiment) setDefinition(d ExperimentDefinition) {
	e.ExperimentDefinition = d
	e.ExperimentDefinition = e.Definition() // deep copy, non-nil lists
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record.
func (e *Experiment) ApplyRecorded(r RecordedEvent) error {
	ev, err := r.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(experimentAggregate, r, e.Key != "", isType[*ExperimentCreated](ev)); err != nil {
		return err
	}
	if !e.apply(ev) {
		return unexpectedEvent(experimentAggregate, r)
	}
	e.Version = r.Version
	e.UpdatedAt = r.OccurredAt
	switch ev.(type) {
	case *ExperimentCreated:
		e.CreatedAt = r.OccurredAt
	case *ExperimentConcluded:
		e.ConcludedAt = r.OccurredAt
	}
	return nil
}
