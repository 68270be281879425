package domain

// Events of every aggregate. Each event's JSON is stored forever: add fields, never rename them.
// Events that replace a whole part of the state (targeting of one environment, a segment's
// definition) carry the full new value, so the audit log can show before/after without replaying
// partial patches.

// Project stream: project/<project>.
type ProjectCreated struct {
	Key         string `json:"key"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

type ProjectUpdated struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

type EnvironmentCreated struct {
	Key       string `json:"key"`
	Name      string `json:"name"`
	Color     string `json:"color,omitempty"`
	ClientKey string `json:"client_key"`
	ServerKey string `json:"server_key"`
}

type EnvironmentUpdated struct {
	Key   string `json:"key"`
	Name  string `json:"name"`
	Color string `json:"color,omitempty"`
	// ServerExposures is the new setting; absent (events written before it existed) keeps it.
	ServerExposures *bool `json:"server_exposures,omitempty"`
}

// SDKKeyRotated replaces one key of an environment; the previous key stops working at once.
type SDKKeyRotated struct {
	Environment string `json:"environment"`
	Kind        string `json:"kind"` // client or server
	Key         string `json:"key"`
	PreviousKey string `json:"previous_key"`
}

// Token stream: token/<id>.
type TokenIssued struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Hash    string `json:"hash"`
	Scope   string `json:"scope"`
	Project string `json:"project,omitempty"`
	// Environments narrows an edge token (scope edge) to these environments of Project.
	Environments []string `json:"environments,omitempty"`
}

type TokenRevoked struct {
	ID string `json:"id"`
}

// Flag stream: flag/<project>/<flag>.
type FlagCreated struct {
	Project      string                `json:"project"`
	Key          string                `json:"key"`
	Name         string                `json:"name"`
	Description  string                `json:"description,omitempty"`
	Tags         []string              `json:"tags"`
	Type         FlagType              `json:"type"`
	Variations   []Variation           `json:"variations"`
	Salt         string                `json:"salt"`
	ClientSide   bool                  `json:"client_side"`
	Defaults     FlagDefaults          `json:"defaults"`
	Environments map[string]*Targeting `json:"environments"`
}

// FlagUpdated changes a flag's descriptive settings.
type FlagUpdated struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Tags        []string     `json:"tags"`
	ClientSide  bool         `json:"client_side"`
	Defaults    FlagDefaults `json:"defaults"`
}

// FlagVariationsUpdated replaces the variations (values, names; adding and removing unused ones).
type FlagVariationsUpdated struct {
	Variations []Variation `json:"variations"`
}

// FlagTargetingUpdated replaces the whole targeting of one environment.
type FlagTargetingUpdated struct {
	Environment string    `json:"environment"`
	Targeting   Targeting `json:"targeting"`
}

// FlagToggled turns a flag on or off in one environment (the kill switch).
type FlagToggled struct {
	Environment string `json:"environment"`
	On          bool   `json:"on"`
}

type FlagArchived struct{}
type FlagRestored struct{}

// Segment stream: segment/<project>/<segment>.
type SegmentCreated struct {
	Project     string   `json:"project"`
	Key         string   `json:"key"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags"`
	Match       string   `json:"match"`
	Clauses     []Clause `json:"clauses"`
	Included    []string `json:"included"`
	Excluded    []string `json:"excluded"`
}

// SegmentUpdated replaces the segment's whole definition.
type SegmentUpdated struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags"`
	Match       string   `json:"match"`
	Clauses     []Clause `json:"clauses"`
	Included    []string `json:"included"`
	Excluded    []string `json:"excluded"`
}

type SegmentArchived struct{}
type SegmentRestored struct{}

func (*ProjectCreated) EventType() string        { return "ProjectCreated" }
func (*ProjectUpdated) EventType() string        { return "ProjectUpdated" }
func (*EnvironmentCreated) EventType() string    { return "EnvironmentCreated" }
func (*EnvironmentUpdated) EventType() string    { return "EnvironmentUpdated" }
func (*SDKKeyRotated) EventType() string         { return "SDKKeyRotated" }
func (*TokenIssued) EventType() string           { return "TokenIssued" }
func (*TokenRevoked) EventType() string          { return "TokenRevoked" }
func (*FlagCreated) EventType() string           { return "FlagCreated" }
func (*FlagUpdated) EventType() string           { return "FlagUpdated" }
func (*FlagVariationsUpdated) EventType() string { return "FlagVariationsUpdated" }
func (*FlagTargetingUpdated) EventType() string  { return "FlagTargetingUpdated" }
func (*FlagToggled) EventType() string           { return "FlagToggled" }
func (*FlagArchived) EventType() string          { return "FlagArchived" }
func (*FlagRestored) EventType() string          { return "FlagRestored" }
func (*SegmentCreated) EventType() string        { return "SegmentCreated" }
func (*SegmentUpdated) EventType() string        { return "SegmentUpdated" }
func (*SegmentArchived) EventType() string       { return "SegmentArchived" }
func (*SegmentRestored) EventType() string       { return "SegmentRestored" }

func init() {
	register(
		func() Event { return new(ProjectCreated) },
		func() Event { return new(ProjectUpdated) },
		func() Event { return new(EnvironmentCreated) },
		func() Event { return new(EnvironmentUpdated) },
		func() Event { return new(SDKKeyRotated) },
		func() Event { return new(TokenIssued) },
		func() Event { return new(TokenRevoked) },
		func() Event { return new(FlagCreated) },
		func() Event { return new(FlagUpdated) },
		func() Event { return new(FlagVariationsUpdated) },
		func() Event { return new(FlagTargetingUpdated) },
		func() Event { return new(FlagToggled) },
		func() Event { return new(FlagArchived) },
		func() Event { return new(FlagRestored) },
		func() Event { return new(SegmentCreated) },
		func() Event { return new(SegmentUpdated) },
		func() Event { return new(SegmentArchived) },
		func() Event { return new(SegmentRestored) },
	)
}
