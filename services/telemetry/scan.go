package telemetry

import (
	"encoding/json"
	"strings"
)

// scanEvents decodes a valid JSON body of the usual shape, {"events": [{...}, ...]}, without
// reflection: the ingest hot path. It gives up (ok false) on anything outside the subset it
// handles the way encoding/json does (object keys or string fields with escapes or non-ASCII
// bytes, an "events" key given twice), and Parse then decodes with encoding/json. Keys match
// fields case-insensitively and the last of repeated keys wins, as with encoding/json.
// body must be valid JSON (json.Valid).
func scanEvents(body []byte) (events []*wireEvent, found, ok bool) {
	s := scanner{b: body}
	s.space()
	if !s.eat('{') {
		return nil, false, false
	}
	for first := true; ; first = false {
		s.space()
		if s.eat('}') {
			return events, found, true
		}
		if !first && (!s.eat(',') || !s.spaceThen()) {
			return nil, false, false
		}
		key, kok := s.plainString()
		if !kok || !s.colon() {
			return nil, false, false
		}
		if !strings.EqualFold(key, "events") {
			if !s.skipValue() {
				return nil, false, false
			}
			continue
		}
		if found {
			return nil, false, false
		}
		found = true
		if s.literal("null") {
			continue
		}
		if !s.eat('[') {
			return nil, false, false // not an array: encoding/json reports the type error
		}
		events = []*wireEvent{}
		for i := 0; ; i++ {
			s.space()
			if s.eat(']') {
				break
			}
			if i > 0 && (!s.eat(',') || !s.spaceThen()) {
				return nil, false, false
			}
			if s.literal("null") {
				events = append(events, nil)
				continue
			}
			ev, eok := s.event()
			if !eok {
				return nil, false, false
			}
			events = append(events, ev)
		}
	}
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// spaceThen skips white space and reports whether input remains.
func (s *scanner) spaceThen() bool { s.space(); return s.i < len(s.b) }

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) colon() bool {
	s.space()
	if !s.eat(':') {
		return false
	}
	s.space()
	return true
}

func (s *scanner) literal(l string) bool {
	if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		return true
	}
	return false
}

// plainString reads a string of printable ASCII without escapes.
func (s *scanner) plainString() (string, bool) {
	if !s.eat('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := string(s.b[start:s.i])
			s.i++
			return v, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return "", false
		}
		s.i++
	}
	return "", false
}

// skipValue skips one value (of valid JSON) and stops right after it.
func (s *scanner) skipValue() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				return true
			}
		}
		return false
	default: // a number, true, false or null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return true
			}
			s.i++
		}
	}
	return s.i <= len(s.b)
}

// skipString skips a string, escapes included.
func (s *scanner) skipString() {
	s.i++
	for s.i < len(s.b) && s.b[s.i] != '"' {
		if s.b[s.i] == '\\' {
			s.i++
		}
		s.i++
	}
	s.i++
}

// rawValue skips one value and returns it.
func (s *scanner) rawValue() (json.RawMessage, bool) {
	start := s.i
	if !s.skipValue() || s.i > len(s.b) {
		return nil, false
	}
	return json.RawMessage(s.b[start:s.i]), true
}

// event reads one event object.
func (s *scanner) event() (*wireEvent, bool) {
	if !s.eat('{') {
		return nil, false
	}
	w := &wireEvent{}
	for first := true; ; first = false {
		s.space()
		if s.eat('}') {
			return w, true
		}
		if !first && (!s.eat(',') || !s.spaceThen()) {
			return nil, false
		}
		key, ok := s.plainString()
		if !ok || !s.colon() {
			return nil, false
		}
		var dst **string
		switch {
		case strings.EqualFold(key, "kind"):
			dst = &w.Kind
		case strings.EqualFold(key, "event_id"):
			dst = &w.EventID
		case strings.EqualFold(key, "occurred_at"):
			dst = &w.OccurredAt
		case strings.EqualFold(key, "flag_key"):
			dst = &w.FlagKey
		case strings.EqualFold(key, "variation_key"):
			dst = &w.VariationKey
		case strings.EqualFold(key, "reason"):
			dst = &w.Reason
		case strings.EqualFold(key, "experiment_key"):
			dst = &w.ExperimentKey
		case strings.EqualFold(key, "goal_key"):
			dst = &w.GoalKey
		case strings.EqualFold(key, "user_key"):
			dst = &w.UserKey
		case strings.EqualFold(key, "attributes"):
			if w.Attributes, ok = s.rawValue(); !ok { // null stays "null", as with encoding/json
				return nil, false
			}
			continue
		case strings.EqualFold(key, "value"):
			if w.Value, ok = s.rawValue(); !ok {
				return nil, false
			}
			continue
		default:
			if !s.skipValue() {
				return nil, false
			}
			continue
		}
		if s.literal("null") {
			*dst = nil
			continue
		}
		v, ok := s.plainString()
		if !ok {
			return nil, false // not a plain string: encoding/json decides (type error, escapes)
		}
		*dst = &v
	}
}
