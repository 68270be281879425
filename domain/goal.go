package domain

import (
	"fmt"
	"math"
	"time"
)

const goalAggregate = "goal"

// GoalKind says what a goal measures per exposed user, and so which statistical model analyses it.
type GoalKind string

const (
	// GoalConversion: did the user reach the goal at least once (a rate of users).
	GoalConversion GoalKind = "conversion"
	// GoalCount: how many times the user reached it (events per user).
	GoalCount GoalKind = "count"
	// GoalValue: the total value the user's goal events carried, e.g. revenue (value per user).
	GoalValue GoalKind = "value"
)

// GoalDirection says which way of the metric is good.
type GoalDirection string

const (
	GoalIncrease GoalDirection = "increase" // more is better: sign-ups, revenue
	GoalDecrease GoalDirection = "decrease" // less is better: errors, latency, churn
)

// ValidGoalKind reports whether k is conversion, count or value.
func ValidGoalKind(k GoalKind) bool {
	return k == GoalConversion || k == GoalCount || k == GoalValue
}

// Goal is something users do that experiments measure, shared by the environments of a project.
type Goal struct {
	Project     string        `json:"project"`
	Key         string        `json:"key"`
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Kind        GoalKind      `json:"kind"`
	Direction   GoalDirection `json:"direction"`
	// ValueCap caps each user's total of a value goal before analysis, so one whale cannot decide
	// an experiment; 0 is no cap. Only value goals have one.
	ValueCap  float64   `json:"value_cap,omitempty"`
	Archived  bool      `json:"archived"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewGoal is the input that creates a goal.
type NewGoal struct {
	Project     string   `json:"project"`
	Key         string   `json:"key"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Kind        GoalKind `json:"kind"`
	// Direction defaults to increase.
	Direction GoalDirection `json:"direction,omitempty"`
	ValueCap  float64       `json:"value_cap,omitempty"`
}

// GoalSettings are the settings of a goal that Goal.Update replaces as a whole. An empty direction
// keeps the current one; a zero value cap removes the cap.
type GoalSettings struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Direction   GoalDirection `json:"direction,omitempty"`
	ValueCap    float64       `json:"value_cap,omitempty"`
}

// CreateGoal creates a goal. The key's uniqueness is the event store's: the goal's stream is
// appended at expected version 0, which conflicts when the key is taken.
func CreateGoal(in NewGoal) ([]Event, error) {
	if !ValidKey(in.Project) {
		return nil, Invalid("project", "invalid project key %q", truncate(in.Project, 120))
	}
	if !ValidKey(in.Key) {
		return nil, Invalid("key", "invalid goal key %q: letters, digits, '.', '_' and '-', at most 100 characters, starting with a letter or digit", truncate(in.Key, 120))
	}
	if err := validName("name", in.Name); err != nil {
		return nil, err
	}
	if err := validDescription("description", in.Description); err != nil {
		return nil, err
	}
	if !ValidGoalKind(in.Kind) {
		return nil, Invalid("kind", "goal kind must be conversion, count or value, not %q", truncate(string(in.Kind), 40))
	}
	dir := in.Direction
	if dir == "" {
		dir = GoalIncrease
	}
	if err := validGoalSettings(in.Kind, dir, in.ValueCap); err != nil {
		return nil, err
	}
	return []Event{&GoalCreated{Project: in.Project, Key: in.Key, Name: in.Name, Description: in.Description,
		Kind: in.Kind, Direction: dir, ValueCap: in.ValueCap}}, nil
}

func validGoalSettings(kind GoalKind, dir GoalDirection, valueCap float64) *Error {
	if dir != GoalIncrease && dir != GoalDecrease {
		return Invalid("direction", "goal direction must be increase or decrease, not %q", truncate(string(dir), 40))
	}
	switch {
	case math.IsNaN(valueCap) || math.IsInf(valueCap, 0) || valueCap < 0:
		return Invalid("value_cap", "value cap must be a positive finite number, or 0 for none")
	case valueCap != 0 && kind != GoalValue:
		return Invalid("value_cap", "only value goals have a value cap, this is a %s goal", kind)
	}
	return nil
}

// Update replaces the goal's settings. The kind cannot change: results already computed for it
// would change meaning.
func (g *Goal) Update(s GoalSettings) ([]Event, error) {
	if err := g.live(); err != nil {
		return nil, err
	}
	if err := validName("name", s.Name); err != nil {
		return nil, err
	}
	if err := validDescription("description", s.Description); err != nil {
		return nil, err
	}
	dir := s.Direction
	if dir == "" {
		dir = g.Direction
	}
	if err := validGoalSettings(g.Kind, dir, s.ValueCap); err != nil {
		return nil, err
	}
	if s.Name == g.Name && s.Description == g.Description && dir == g.Direction && s.ValueCap == g.ValueCap {
		return nil, nil
	}
	return []Event{&GoalUpdated{Name: s.Name, Description: s.Description, Direction: dir, ValueCap: s.ValueCap}}, nil
}

// Archive archives the goal. It is refused (EConflict, Details["experiments"]) while a live
// experiment (draft, running or stopped, not archived) measures it, and for an archived goal.
func (g *Goal) Archive(cat *ExperimentCatalog) ([]Event, error) {
	if err := g.exists(); err != nil {
		return nil, err
	}
	if g.Archived {
		return nil, Errorf(EConflict, "goal %q is already archived", g.Key)
	}
	if users := cat.ExperimentsUsingGoal(g.Key); len(users) > 0 {
		return nil, &Error{Code: EConflict,
			Message: fmt.Sprintf("goal %q is measured by experiments %s", g.Key, quoteList(users)),
			Details: map[string]any{"experiments": users}}
	}
	return []Event{&GoalArchived{}}, nil
}

// Restore brings an archived goal back.
func (g *Goal) Restore() ([]Event, error) {
	if err := g.exists(); err != nil {
		return nil, err
	}
	if !g.Archived {
		return nil, Errorf(EConflict, "goal %q is not archived", g.Key)
	}
	return []Event{&GoalRestored{}}, nil
}

func (g *Goal) live() *Error {
	if err := g.exists(); err != nil {
		return err
	}
	if g.Archived {
		return Errorf(EConflict, "goal %q is archived", g.Key)
	}
	return nil
}

func (g *Goal) exists() *Error {
	if g == nil || g.Key == "" {
		return Errorf(ENotFound, "goal not found")
	}
	return nil
}

// Apply changes the in-memory state by one event of the goal stream and bumps Version. Events of
// other aggregates are ignored.
func (g *Goal) Apply(e Event) { g.apply(e) }

func (g *Goal) apply(e Event) bool {
	switch e := e.(type) {
	case *GoalCreated:
		g.Project, g.Key, g.Name, g.Description = e.Project, e.Key, e.Name, e.Description
		g.Kind, g.Direction, g.ValueCap = e.Kind, e.Direction, e.ValueCap
	case *GoalUpdated:
		g.Name, g.Description, g.Direction, g.ValueCap = e.Name, e.Description, e.Direction, e.ValueCap
	case *GoalArchived:
		g.Archived = true
	case *GoalRestored:
		g.Archived = false
	default:
		return false
	}
	g.Version++
	return true
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record.
func (g *Goal) ApplyRecorded(r RecordedEvent) error {
	e, err := r.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(goalAggregate, r, g.Key != "", isType[*GoalCreated](e)); err != nil {
		return err
	}
	if !g.apply(e) {
		return unexpectedEvent(goalAggregate, r)
	}
	g.Version = r.Version
	g.UpdatedAt = r.OccurredAt
	if _, ok := e.(*GoalCreated); ok {
		g.CreatedAt = r.OccurredAt
	}
	return nil
}

// FoldGoal rebuilds a goal from its stream. It returns (nil, nil) for an empty stream.
func FoldGoal(events []RecordedEvent) (*Goal, error) {
	if len(events) == 0 {
		return nil, nil
	}
	g := &Goal{}
	for _, r := range events {
		if err := g.ApplyRecorded(r); err != nil {
			return nil, err
		}
	}
	return g, nil
}
