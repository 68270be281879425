package domain

import (
	"fmt"
	"reflect"
)

// Segment limits.
const (
	MaxSegmentClauses = 50    // clauses of one segment
	MaxSegmentKeys    = 10000 // user keys in included, and in excluded
	segmentAggregate  = "segment"
)

// SegmentDefinition is everything about a segment that SegmentUpdated replaces.
type SegmentDefinition struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags"`
	Match       string   `json:"match"` // all or any; empty means all
	Clauses     []Clause `json:"clauses"`
	Included    []string `json:"included"`
	Excluded    []string `json:"excluded"`
}

// NewSegment is the input that creates a segment.
type NewSegment struct {
	Project string `json:"project"`
	Key     string `json:"key"`
	SegmentDefinition
}

// CreateSegment creates a segment. A key already in cat is EConflict.
func CreateSegment(in NewSegment, cat *Catalog) ([]Event, error) {
	if !ValidKey(in.Project) {
		return nil, Invalid("project", "invalid project key %q", truncate(in.Project, 120))
	}
	if !ValidKey(in.Key) {
		return nil, Invalid("key", "invalid segment key %q: letters, digits, '.', '_' and '-', at most 100 characters, starting with a letter or digit", truncate(in.Key, 120))
	}
	if _, taken := cat.Segment(in.Key); taken {
		return nil, &Error{Code: EConflict, Field: "key", Message: fmt.Sprintf("segment %q already exists", in.Key)}
	}
	d, err := ValidateSegmentDefinition(in.Key, in.SegmentDefinition, cat)
	if err != nil {
		return nil, err
	}
	return []Event{&SegmentCreated{Project: in.Project, Key: in.Key, Name: d.Name, Description: d.Description,
		Tags: d.Tags, Match: d.Match, Clauses: d.Clauses, Included: d.Included, Excluded: d.Excluded}}, nil
}

// ValidateSegmentDefinition checks the definition of segment key and returns it normalized: match
// defaulted to all, tags and user keys deduplicated and sorted, empty lists instead of nil ones.
// Clauses follow ValidateClause; in_segment clauses must not name the segment itself nor a segment
// that leads back to it. Field paths are relative to the definition ("clauses[0].values[1]").
func ValidateSegmentDefinition(key string, d SegmentDefinition, cat *Catalog) (SegmentDefinition, error) {
	out, err := validateSegmentDefinition(key, d, cat)
	if err != nil {
		return SegmentDefinition{}, err
	}
	return out, nil
}

func validateSegmentDefinition(key string, d SegmentDefinition, cat *Catalog) (SegmentDefinition, *Error) {
	out := SegmentDefinition{Name: d.Name, Description: d.Description, Match: d.Match}
	if err := validName("name", d.Name); err != nil {
		return out, err
	}
	if err := validDescription("description", d.Description); err != nil {
		return out, err
	}
	tags, err := normalizeTags("tags", d.Tags)
	if err != nil {
		return out, err
	}
	out.Tags = tags
	switch out.Match {
	case "":
		out.Match = MatchAll
	case MatchAll, MatchAny:
	default:
		return out, Invalid("match", "match must be %q or %q, not %q", MatchAll, MatchAny, truncate(d.Match, 40))
	}
	if len(d.Clauses) > MaxSegmentClauses {
		return out, Invalid("clauses", "at most %d clauses per segment, got %d", MaxSegmentClauses, len(d.Clauses))
	}
	for i, c := range d.Clauses {
		field := fmt.Sprintf("clauses[%d]", i)
		if c.Operator == OpInSegment {
			// Checked before ValidateClause, which would report the segment as unknown on creation.
			for j, v := range c.Values {
				if v == key {
					return out, Invalid(fmt.Sprintf("%s.values[%d]", field, j), "a segment cannot contain itself")
				}
			}
		}
		if err := validateClause(c, cat); err != nil {
			return out, err.WithField(field)
		}
	}
	out.Clauses = cloneClauses(d.Clauses)
	refs := ClauseSegments(out.Clauses)
	for i, c := range out.Clauses {
		if c.Operator != OpInSegment {
			continue
		}
		for j, v := range c.Values {
			if s := v.(string); cat.segmentPath(s, key, key, refs) {
				return out, Invalid(fmt.Sprintf("clauses[%d].values[%d]", i, j),
					"segment %q would create a cycle: it contains %q", s, key)
			}
		}
	}
	if out.Included, err = normalizeUserKeys("included", d.Included); err != nil {
		return out, err
	}
	if out.Excluded, err = normalizeUserKeys("excluded", d.Excluded); err != nil {
		return out, err
	}
	return out, nil
}

// normalizeUserKeys checks a list of user keys and returns it deduplicated and sorted, never nil.
func normalizeUserKeys(field string, keys []string) ([]string, *Error) {
	set := make(map[string]bool, len(keys))
	for i, k := range keys {
		if msg := validUserKey(k); msg != "" {
			return nil, Invalid(fmt.Sprintf("%s[%d]", field, i), "%s", msg)
		}
		set[k] = true
	}
	if len(set) > MaxSegmentKeys {
		return nil, Invalid(field, "at most %d user keys, got %d", MaxSegmentKeys, len(set))
	}
	return sortedKeys(set), nil
}

// Definition returns the segment's current definition.
func (s *Segment) Definition() SegmentDefinition {
	return SegmentDefinition{Name: s.Name, Description: s.Description, Tags: s.Tags, Match: s.Match,
		Clauses: s.Clauses, Included: s.Included, Excluded: s.Excluded}
}

// Update replaces the segment's definition (see ValidateSegmentDefinition).
func (s *Segment) Update(d SegmentDefinition, cat *Catalog) ([]Event, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	out, err := validateSegmentDefinition(s.Key, d, cat)
	if err != nil {
		return nil, err
	}
	if reflect.DeepEqual(out, normalizeDefinition(s.Definition())) {
		return nil, nil
	}
	return []Event{&SegmentUpdated{Name: out.Name, Description: out.Description, Tags: out.Tags,
		Match: out.Match, Clauses: out.Clauses, Included: out.Included, Excluded: out.Excluded}}, nil
}

// normalizeDefinition gives a stored definition the shape validation returns (non-nil lists), so
// the two compare equal when they mean the same.
func normalizeDefinition(d SegmentDefinition) SegmentDefinition {
	d.Tags = append([]string{}, d.Tags...)
	d.Clauses = cloneClauses(d.Clauses)
	d.Included = append([]string{}, d.Included...)
	d.Excluded = append([]string{}, d.Excluded...)
	return d
}

// Archive archives the segment. It is refused (EConflict, Details["flags"] and
// Details["segments"]) while a live flag's rules or a live segment's clauses name it.
func (s *Segment) Archive(cat *Catalog) ([]Event, error) {
	if err := s.exists(); err != nil {
		return nil, err
	}
	if s.Archived {
		return nil, Errorf(EConflict, "segment %q is already archived", s.Key)
	}
	flags, segs := cat.FlagsUsingSegment(s.Key), cat.SegmentsUsingSegment(s.Key)
	if len(flags)+len(segs) > 0 {
		var msg string
		switch {
		case len(segs) == 0:
			msg = fmt.Sprintf("segment %q is used by flags %s", s.Key, quoteList(flags))
		case len(flags) == 0:
			msg = fmt.Sprintf("segment %q is used by segments %s", s.Key, quoteList(segs))
		default:
			msg = fmt.Sprintf("segment %q is used by flags %s and segments %s", s.Key, quoteList(flags), quoteList(segs))
		}
		return nil, &Error{Code: EConflict, Message: msg,
			Details: map[string]any{"flags": nonNil(flags), "segments": nonNil(segs)}}
	}
	return []Event{&SegmentArchived{}}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Restore brings an archived segment back.
func (s *Segment) Restore() ([]Event, error) {
	if err := s.exists(); err != nil {
		return nil, err
	}
	if !s.Archived {
		return nil, Errorf(EConflict, "segment %q is not archived", s.Key)
	}
	return []Event{&SegmentRestored{}}, nil
}

func (s *Segment) live() *Error {
	if err := s.exists(); err != nil {
		return err
	}
	if s.Archived {
		return Errorf(EConflict, "segment %q is archived", s.Key)
	}
	return nil
}

func (s *Segment) exists() *Error {
	if s == nil || s.Key == "" {
		return Errorf(ENotFound, "segment not found")
	}
	return nil
}

// Apply changes the in-memory state by one event of the segment stream and bumps Version. Events
// of other aggregates are ignored.
func (s *Segment) Apply(e Event) { s.apply(e) }

func (s *Segment) apply(e Event) bool {
	switch e := e.(type) {
	case *SegmentCreated:
		s.Project, s.Key = e.Project, e.Key
		s.setDefinition(SegmentDefinition{Name: e.Name, Description: e.Description, Tags: e.Tags,
			Match: e.Match, Clauses: e.Clauses, Included: e.Included, Excluded: e.Excluded})
	case *SegmentUpdated:
		s.setDefinition(SegmentDefinition{Name: e.Name, Description: e.Description, Tags: e.Tags,
			Match: e.Match, Clauses: e.Clauses, Included: e.Included, Excluded: e.Excluded})
	case *SegmentArchived:
		s.Archived = true
	case *SegmentRestored:
		s.Archived = false
	default:
		return false
	}
	s.Version++
	return true
}

func (s *Segment) setDefinition(d SegmentDefinition) {
	d = normalizeDefinition(d)
	if d.Match == "" {
		d.Match = MatchAll
	}
	s.Name, s.Description, s.Tags, s.Match = d.Name, d.Description, d.Tags, d.Match
	s.Clauses, s.Included, s.Excluded = d.Clauses, d.Included, d.Excluded
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record.
func (s *Segment) ApplyRecorded(r RecordedEvent) error {
	e, err := r.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(segmentAggregate, r, s.Key != "", isType[*SegmentCreated](e)); err != nil {
		return err
	}
	if !s.apply(e) {
		return unexpectedEvent(segmentAggregate, r)
	}
	s.Version = r.Version
	s.UpdatedAt = r.OccurredAt
	if _, ok := e.(*SegmentCreated); ok {
		s.CreatedAt = r.OccurredAt
	}
	return nil
}
