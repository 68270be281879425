package domain

import (
	"fmt"
	"unicode/utf8"
)

// Project limits.
const (
	MaxEnvironments  = 50  // environments per project
	MaxColorLength   = 32  // characters of an environment's display color
	MaxSDKKeyLength  = 200 // characters of a generated SDK key
	MinSDKKeyLength  = 16  // a generated SDK key shorter than this cannot hold enough randomness
	projectAggregate = "project"
)

// NewEnvironment is the input that creates an environment.
type NewEnvironment struct {
	Key   string `json:"key"`
	Name  string `json:"name"`
	Color string `json:"color,omitempty"`
}

// Commands in this package follow one contract: they validate their input against the current
// state (the receiver, rebuilt from its events) and return the events that record the change,
// without mutating the receiver or saving anything. A command that would change nothing returns
// no events and a nil error; callers treat that as a successful no-op. Errors are *Error:
// EInvalid with Field for bad input, ENotFound when the addressed aggregate or environment does
// not exist, EConflict when the aggregate's state forbids the command (archived, already exists).

// CreateProject creates a project and its initial environments. keygen returns a fresh random SDK
// key of the given kind (ClientSideKey or ServerSideKey), e.g. "client-<random>"; the caller
// supplies the randomness so that the domain stays deterministic under test.
func CreateProject(key, name, description string, envs []NewEnvironment, keygen func(kind string) string) ([]Event, error) {
	if !ValidKey(key) {
		return nil, Invalid("key", "invalid project key %q: letters, digits, '.', '_' and '-', at most 100 characters, starting with a letter or digit", truncate(key, 120))
	}
	if err := validName("name", name); err != nil {
		return nil, err
	}
	if err := validDescription("description", description); err != nil {
		return nil, err
	}
	if len(envs) > MaxEnvironments {
		return nil, Invalid("environments", "at most %d environments, got %d", MaxEnvironments, len(envs))
	}
	events := []Event{&ProjectCreated{Key: key, Name: name, Description: description}}
	// Validate each environment against the project as it would be after the previous ones, so
	// duplicate keys and reused SDK keys are caught exactly as AddEnvironment catches them.
	p := &Project{Key: key, Environments: map[string]*Environment{}}
	for i, env := range envs {
		ev, err := p.newEnvironment(env, keygen)
		if err != nil {
			if err.Code == EInternal {
				return nil, err // a broken key generator, not bad input
			}
			return nil, err.WithField(fmt.Sprintf("environments[%d]", i))
		}
		p.Apply(ev)
		events = append(events, ev)
	}
	return events, nil
}

// UpdateProject changes the project's name and description.
func (p *Project) UpdateProject(name, description string) ([]Event, error) {
	if err := p.exists(); err != nil {
		return nil, err
	}
	if err := validName("name", name); err != nil {
		return nil, err
	}
	if err := validDescription("description", description); err != nil {
		return nil, err
	}
	if name == p.Name && description == p.Description {
		return nil, nil
	}
	return []Event{&ProjectUpdated{Name: name, Description: description}}, nil
}

// AddEnvironment creates an environment with fresh SDK keys from keygen. A taken key is
// EConflict. Flags created before the environment serve their default off variation there, off,
// until their targeting for it is set (see Flag.ConfigFor).
func (p *Project) AddEnvironment(env NewEnvironment, keygen func(kind string) string) ([]Event, error) {
	if err := p.exists(); err != nil {
		return nil, err
	}
	if len(p.Environments) >= MaxEnvironments {
		return nil, Errorf(EInvalid, "a project has at most %d environments", MaxEnvironments)
	}
	ev, err := p.newEnvironment(env, keygen)
	if err != nil {
		return nil, err
	}
	return []Event{ev}, nil
}

func (p *Project) newEnvironment(env NewEnvironment, keygen func(kind string) string) (*EnvironmentCreated, *Error) {
	if !ValidKey(env.Key) {
		return nil, Invalid("key", "invalid environment key %q: letters, digits, '.', '_' and '-', at most 100 characters, starting with a letter or digit", truncate(env.Key, 120))
	}
	if _, taken := p.Environments[env.Key]; taken {
		return nil, &Error{Code: EConflict, Field: "key", Message: fmt.Sprintf("environment %q already exists", env.Key)}
	}
	if err := validName("name", env.Name); err != nil {
		return nil, err
	}
	if err := validColor("color", env.Color); err != nil {
		return nil, err
	}
	client, err := p.generateKey(ClientSideKey, keygen)
	if err != nil {
		return nil, err
	}
	server, err := p.generateKey(ServerSideKey, keygen)
	if err != nil {
		return nil, err
	}
	if client == server {
		return nil, Errorf(EInternal, "key generator returned the same key for client and server")
	}
	return &EnvironmentCreated{Key: env.Key, Name: env.Name, Color: env.Color, ClientKey: client, ServerKey: server}, nil
}

// generateKey asks keygen for a key and checks it is plausible and unused in the project. A bad
// generator is a programming error, hence EInternal.
func (p *Project) generateKey(kind string, keygen func(kind string) string) (string, *Error) {
	if keygen == nil {
		return "", Errorf(EInternal, "no SDK key generator")
	}
	k := keygen(kind)
	if len(k) < MinSDKKeyLength || len(k) > MaxSDKKeyLength || !utf8.ValidString(k) {
		return "", Errorf(EInternal, "SDK key generator returned a %s key of %d bytes, want %d to %d", kind, len(k), MinSDKKeyLength, MaxSDKKeyLength)
	}
	for _, e := range p.Environments {
		if e.ClientKey == k || e.ServerKey == k {
			return "", Errorf(EInternal, "SDK key generator returned a key already in use")
		}
	}
	return k, nil
}

// UpdateEnvironment changes an environment's name and color, keeping its other settings. An
// unknown environment is ENotFound.
func (p *Project) UpdateEnvironment(key, name, color string) ([]Event, error) {
	s := EnvironmentSettings{Name: name, Color: color, ServerExposures: true}
	if env := p.Environments[key]; env != nil {
		s.ServerExposures = env.ServerExposures // kept
	}
	return p.UpdateEnvironmentSettings(key, s)
}

// EnvironmentSettings are the settings of an environment that an update replaces.
type EnvironmentSettings struct {
	Name  string `json:"name"`
	Color string `json:"color,omitempty"`
	// ServerExposures: see Environment.ServerExposures.
	ServerExposures bool `json:"server_exposures"`
}

// UpdateEnvironmentSettings replaces an environment's name, color and exposure logging setting.
func (p *Project) UpdateEnvironmentSettings(key string, s EnvironmentSettings) ([]Event, error) {
	if err := p.exists(); err != nil {
		return nil, err
	}
	env, ok := p.Environments[key]
	if !ok {
		return nil, &Error{Code: ENotFound, Field: "key", Message: fmt.Sprintf("environment %q not found", key)}
	}
	if err := validName("name", s.Name); err != nil {
		return nil, err
	}
	if err := validColor("color", s.Color); err != nil {
		return nil, err
	}
	if env.Name == s.Name && env.Color == s.Color && env.ServerExposures == s.ServerExposures {
		return nil, nil
	}
	ev := &EnvironmentUpdated{Key: key, Name: s.Name, Color: s.Color}
	if env.ServerExposures != s.ServerExposures {
		exposures := s.ServerExposures
		ev.ServerExposures = &exposures
	}
	return []Event{ev}, nil
}

// RotateSDKKey replaces the client or server key of an environment; the previous key stops
// working at once.
func (p *Project) RotateSDKKey(env, kind string, keygen func(kind string) string) ([]Event, error) {
	if err := p.exists(); err != nil {
		return nil, err
	}
	e, ok := p.Environments[env]
	if !ok {
		return nil, &Error{Code: ENotFound, Field: "environment", Message: fmt.Sprintf("environment %q not found", env)}
	}
	var prev string
	switch kind {
	case ClientSideKey:
		prev = e.ClientKey
	case ServerSideKey:
		prev = e.ServerKey
	default:
		return nil, Invalid("kind", "SDK key kind must be %q or %q, not %q", ClientSideKey, ServerSideKey, truncate(kind, 40))
	}
	k, err := p.generateKey(kind, keygen)
	if err != nil {
		return nil, err
	}
	return []Event{&SDKKeyRotated{Environment: env, Kind: kind, Key: k, PreviousKey: prev}}, nil
}

// Environment returns the environment with key env, or nil.
func (p *Project) Environment(env string) *Environment {
	if p == nil {
		return nil
	}
	return p.Environments[env]
}

func (p *Project) exists() *Error {
	if p == nil || p.Key == "" {
		return Errorf(ENotFound, "project not found")
	}
	return nil
}

// validColor checks an environment's optional display color. The console decides how to render
// it (a CSS color such as "#2e7d32" is typical); the domain only bounds it.
func validColor(field, c string) *Error {
	switch {
	case !utf8.ValidString(c):
		return Invalid(field, "color is not valid UTF-8")
	case utf8.RuneCountInString(c) > MaxColorLength:
		return Invalid(field, "color longer than %d characters", MaxColorLength)
	}
	return nil
}

// Apply changes the in-memory state by one event of the project stream and bumps Version; it is
// how commands' results are previewed. Events of other aggregates are ignored. Timestamps are
// only set by ApplyRecorded, which knows when the event happened.
func (p *Project) Apply(e Event) { p.apply(e) }

func (p *Project) apply(e Event) bool {
	switch e := e.(type) {
	case *ProjectCreated:
		p.Key, p.Name, p.Description = e.Key, e.Name, e.Description
		if p.Environments == nil {
			p.Environments = map[string]*Environment{}
		}
		if p.EnvironmentOrder == nil {
			p.EnvironmentOrder = []string{}
		}
	case *ProjectUpdated:
		p.Name, p.Description = e.Name, e.Description
	case *EnvironmentCreated:
		if p.Environments == nil {
			p.Environments = map[string]*Environment{}
		}
		if _, ok := p.Environments[e.Key]; !ok {
			p.EnvironmentOrder = append(p.EnvironmentOrder, e.Key)
		}
		p.Environments[e.Key] = &Environment{Key: e.Key, Name: e.Name, Color: e.Color,
			ClientKey: e.ClientKey, ServerKey: e.ServerKey, ServerExposures: true}
	case *EnvironmentUpdated:
		if env := p.Environments[e.Key]; env != nil {
			env.Name, env.Color = e.Name, e.Color
			if e.ServerExposures != nil {
				env.ServerExposures = *e.ServerExposures
			}
		}
	case *EnvironmentProtectionSet:
		if env := p.Environments[e.Environment]; env != nil {
			env.Protection = e.Protection
		}
	case *SDKKeyRotated:
		if env := p.Environments[e.Environment]; env != nil {
			switch e.Kind {
			case ClientSideKey:
				env.ClientKey = e.Key
			case ServerSideKey:
				env.ServerKey = e.Key
			}
		}
	default:
		return false
	}
	p.Version++
	return true
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record. It fails on an undecodable event, on an event of another aggregate, and on a stream
// that does not start with ProjectCreated.
func (p *Project) ApplyRecorded(r RecordedEvent) error {
	e, err := r.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(projectAggregate, r, p.Key != "", isType[*ProjectCreated](e)); err != nil {
		return err
	}
	if !p.apply(e) {
		return unexpectedEvent(projectAggregate, r)
	}
	p.Version = r.Version
	p.UpdatedAt = r.OccurredAt
	switch e := e.(type) {
	case *ProjectCreated:
		p.CreatedAt = r.OccurredAt
	case *EnvironmentCreated:
		p.Environments[e.Key].CreatedAt = r.OccurredAt
	}
	return nil
}

// ---- Fold helpers shared by every aggregate ----

func isType[T Event](e Event) bool {
	_, ok := e.(T)
	return ok
}

// checkOrder enforces that a stream starts with its creation event and has only one.
func checkOrder(aggregate string, r RecordedEvent, created, isCreation bool) error {
	switch {
	case !created && !isCreation:
		return fmt.Errorf("fold %s %s: event %d (%s) before the %s was created", aggregate, r.StreamID, r.Version, r.Type, aggregate)
	case created && isCreation:
		return fmt.Errorf("fold %s %s: event %d (%s) creates the %s a second time", aggregate, r.StreamID, r.Version, r.Type, aggregate)
	}
	return nil
}

func unexpectedEvent(aggregate string, r RecordedEvent) error {
	return fmt.Errorf("fold %s %s: event %d has type %s, which does not belong to a %s", aggregate, r.StreamID, r.Version, r.Type, aggregate)
}
