package domain

import (
	"crypto/subtle"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// MaxRemoteAddrLength bounds the remote address a TriggerFired records (longer ones are cut).
	MaxRemoteAddrLength = 100
	triggerAggregate    = "trigger"
)

// TriggerAction is what a webhook trigger does to its flag in its environment.
type TriggerAction string

const (
	TriggerOn  TriggerAction = "on"  // turn the flag on
	TriggerOff TriggerAction = "off" // turn the flag off (the kill switch an alerting system calls)
)

// NewTrigger is the input that creates a webhook trigger. The secret is generated outside the
// domain, shown once, and only its hash reaches the domain.
type NewTrigger struct {
	Project     string        `json:"project"`
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Flag        string        `json:"flag"`
	Environment string        `json:"environment"`
	Action      TriggerAction `json:"action"`
	SecretHash  string        `json:"secret_hash"` // lowercase hex SHA-256 of the secret
}

// Trigger is a webhook that turns one flag on or off in one environment when called with its
// secret. Triggers are created enabled.
type Trigger struct {
	Project     string        `json:"project"`
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Flag        string        `json:"flag"`
	Environment string        `json:"environment"`
	Action      TriggerAction `json:"action"`
	SecretHash  string        `json:"secret_hash"`
	Enabled     bool          `json:"enabled"`
	Deleted     bool          `json:"deleted"`
	LastFiredAt time.Time     `json:"last_fired_at,omitzero"`
	Fired       int64         `json:"fired"` // how many times it was used
	Version     int64         `json:"version"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
}

// CreateTrigger creates an enabled trigger. The flag and environment must exist in cat, the flag
// not archived (EInvalid at flag and environment).
func CreateTrigger(in NewTrigger, cat *Catalog) ([]Event, error) {
	if !ValidKey(in.Project) {
		return nil, Invalid("project", "invalid project key %q", truncate(in.Project, 120))
	}
	if !ValidKey(in.ID) {
		return nil, Invalid("id", "invalid trigger id %q", truncate(in.ID, 120))
	}
	if err := validName("name", in.Name); err != nil {
		return nil, err
	}
	if _, err := refFlag("flag", in.Flag, cat); err != nil {
		return nil, err
	}
	if err := refEnvironment("environment", in.Environment, cat); err != nil {
		return nil, err
	}
	if in.Action != TriggerOn && in.Action != TriggerOff {
		return nil, Invalid("action", "action must be %q or %q, not %q", TriggerOn, TriggerOff, truncate(string(in.Action), 40))
	}
	if !validSHA256Hex(in.SecretHash) {
		return nil, Invalid("secret_hash", "secret hash must be a lowercase hex SHA-256 (64 characters)")
	}
	return []Event{&TriggerCreated{Project: in.Project, ID: in.ID, Name: in.Name, Flag: in.Flag,
		Environment: in.Environment, Action: in.Action, SecretHash: in.SecretHash}}, nil
}

// Verify reports whether secretHash (the lowercase hex SHA-256 of the secret presented) is the
// trigger's, in constant time. A missing or deleted trigger verifies nothing. Enablement is not
// checked here (see Fire), so a caller can tell a wrong secret from a disabled trigger only after
// the secret is right.
func (t *Trigger) Verify(secretHash string) bool {
	if t == nil || t.ID == "" || t.Deleted || t.SecretHash == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(secretHash), []byte(t.SecretHash)) == 1
}

// RotateSecret replaces the secret's hash; the previous secret stops working at once. The same
// hash is a no-op.
func (t *Trigger) RotateSecret(newHash string) ([]Event, error) {
	if err := t.exists(); err != nil {
		return nil, err
	}
	if !validSHA256Hex(newHash) {
		return nil, Invalid("secret_hash", "secret hash must be a lowercase hex SHA-256 (64 characters)")
	}
	if newHash == t.SecretHash {
		return nil, nil
	}
	return []Event{&TriggerSecretRotated{SecretHash: newHash}}, nil
}

// Enable enables the trigger; an enabled trigger is a no-op.
func (t *Trigger) Enable() ([]Event, error) {
	if err := t.exists(); err != nil {
		return nil, err
	}
	if t.Enabled {
		return nil, nil
	}
	return []Event{&TriggerEnabled{}}, nil
}

// Disable disables the trigger: calls are refused until it is enabled again. A disabled trigger is
// a no-op.
func (t *Trigger) Disable() ([]Event, error) {
	if err := t.exists(); err != nil {
		return nil, err
	}
	if !t.Enabled {
		return nil, nil
	}
	return []Event{&TriggerDisabled{}}, nil
}

// Delete deletes the trigger; a deleted trigger is not found by any command and verifies nothing.
func (t *Trigger) Delete() ([]Event, error) {
	if err := t.exists(); err != nil {
		return nil, err
	}
	return []Event{&TriggerDeleted{}}, nil
}

// Fire handles a call of the trigger at now: secretHash is the hash of the secret presented,
// remoteAddr the caller's address (recorded, cut to MaxRemoteAddrLength characters), current the
// flag as it is now and cat the project's catalog. It returns the flag events (FlagToggled, or
// none when the flag already is in that state) and TriggerFired; the caller appends both.
//
// Errors: ENotFound for a missing or deleted trigger; EUnauthorized for a wrong secret (checked
// before anything else is revealed); EConflict for a disabled trigger; ENotFound when the flag is
// missing; the flag's own errors (EConflict for an archived flag, ENotFound for an environment
// gone).
func (t *Trigger) Fire(secretHash, remoteAddr string, current *Flag, cat *Catalog, now time.Time) (flagEvents, triggerEvents []Event, err error) {
	if err := t.exists(); err != nil {
		return nil, nil, err
	}
	if !t.Verify(secretHash) {
		return nil, nil, Errorf(EUnauthorized, "invalid trigger secret")
	}
	if !t.Enabled {
		return nil, nil, Errorf(EConflict, "trigger %q is disabled", t.ID)
	}
	if current == nil || current.Key == "" {
		return nil, nil, Errorf(ENotFound, "flag %q not found", t.Flag)
	}
	if current.Key != t.Flag {
		return nil, nil, Errorf(EInternal, "loaded flag %q for trigger %q of flag %q", current.Key, t.ID, t.Flag)
	}
	flagEvents, err = current.Toggle(t.Environment, t.Action == TriggerOn, cat)
	if err != nil {
		return nil, nil, err
	}
	return flagEvents, []Event{&TriggerFired{Environment: t.Environment, At: now.UTC(), RemoteAddr: cleanRemoteAddr(remoteAddr),
		Changed: len(flagEvents) > 0}}, nil
}

// cleanRemoteAddr makes an address from the network safe to record: valid UTF-8, bounded.
func cleanRemoteAddr(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if utf8.RuneCountInString(s) <= MaxRemoteAddrLength {
		return s
	}
	return string([]rune(s)[:MaxRemoteAddrLength])
}

func (t *Trigger) exists() *Error {
	if t == nil || t.ID == "" || t.Deleted {
		return Errorf(ENotFound, "trigger not found")
	}
	return nil
}

// Apply changes the in-memory state by one event of the trigger stream and bumps Version. Events
// of other aggregates are ignored.
func (t *Trigger) Apply(e Event) { t.apply(e) }

func (t *Trigger) apply(e Event) bool {
	switch e := e.(type) {
	case *TriggerCreated:
		t.Project, t.ID, t.Name, t.Flag, t.Environment = e.Project, e.ID, e.Name, e.Flag, e.Environment
		t.Action, t.SecretHash, t.Enabled = e.Action, e.SecretHash, true
	case *TriggerSecretRotated:
		t.SecretHash = e.SecretHash
	case *TriggerEnabled:
		t.Enabled = true
	case *TriggerDisabled:
		t.Enabled = false
	case *TriggerDeleted:
		t.Deleted = true
	case *TriggerFired:
		t.LastFiredAt = e.At
		t.Fired++
	default:
		return false
	}
	t.Version++
	return true
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record.
func (t *Trigger) ApplyRecorded(r RecordedEvent) error {
	e, err := r.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(triggerAggregate, r, t.ID != "", isType[*TriggerCreated](e)); err != nil {
		return err
	}
	if !t.apply(e) {
		return unexpectedEvent(triggerAggregate, r)
	}
	t.Version = r.Version
	t.UpdatedAt = r.OccurredAt
	if _, ok := e.(*TriggerCreated); ok {
		t.CreatedAt = r.OccurredAt
	}
	return nil
}

// FoldTrigger rebuilds a trigger from its stream. It returns (nil, nil) for an empty stream.
func FoldTrigger(events []RecordedEvent) (*Trigger, error) {
	if len(events) == 0 {
		return nil, nil
	}
	t := &Trigger{}
	for _, r := range events {
		if err := t.ApplyRecorded(r); err != nil {
			return nil, err
		}
	}
	return t, nil
}
