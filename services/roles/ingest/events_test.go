package ingest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/roles/ingest"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func parse(t *testing.T, body string) ([]ingest.ItemError, int, int) {
	t.Helper()
	b, errs, err := ingest.Parse([]byte(body), "demo", "production", now, ingest.DefaultLimits)
	if err != nil {
		t.Fatalf("Parse(%s): %v", body, err)
	}
	if err := b.Validate(); b.Len() > 0 && err != nil {
		t.Fatalf("the parsed batch does not validate: %v", err)
	}
	return errs, len(b.Evaluations.EventID), len(b.Goals.EventID)
}

func TestParseValidEvents(t *testing.T) {
	id := "0190d7a4-8c1e-7b3a-9f00-2f1c3e4d5a6b"
	body := `{"events": [
	  {"kind": "evaluation", "event_id": "` + id + `", "occurred_at": "2026-03-01T11:59:00.5Z", "flag_key": "new-checkout",
	   "variation_key": "true", "reason": "TARGETING_MATCH", "user_key": "user-1", "attributes": {"country": "DE", "age": 30, "beta": true, "x": null},
	   "experiment_key": "exp-1", "future_field": {"ignored": true}},
	  {"kind": "evaluation", "flag_key": "banner", "user_key": "user-2"},
	  {"kind": "goal", "goal_key": "purchase", "user_key": "user-1", "value": 12.5, "occurred_at": "2026-03-01T13:00:00+01:00"},
	  {"kind": "goal", "goal_key": "signup", "user_key": "user-3"}
	], "sdk": {"name": "go", "version": "1.0"}}`
	b, errs, err := ingest.Parse([]byte(body), "demo", "production", now, ingest.DefaultLimits)
	if err != nil || len(errs) != 0 {
		t.Fatalf("Parse: %v %+v", err, errs)
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	e, g := b.Evaluations, b.Goals
	if len(e.EventID) != 2 || len(g.EventID) != 2 || b.Project != "demo" || b.Environment != "production" {
		t.Fatalf("batch %+v", b)
	}
	if e.EventID[0].String() != id || !e.OccurredAt[0].Equal(time.Date(2026, 3, 1, 11, 59, 0, 5e8, time.UTC)) ||
		e.Flag[0] != "new-checkout" || e.Variation[0] != "true" || e.Reason[0] != "TARGETING_MATCH" ||
		e.User[0] != "user-1" || e.Experiment[0] != "exp-1" || e.Count[0] != 1 {
		t.Fatalf("first evaluation %+v", e)
	}
	var attrs map[string]any
	if err := json.Unmarshal([]byte(e.Attributes[0]), &attrs); err != nil || attrs["country"] != "DE" || len(attrs) != 4 {
		t.Fatalf("attributes %q", e.Attributes[0])
	}
	// Stamped once at the edge: a UUIDv7 and the receive time, to the microsecond.
	if e.EventID[1].Version() != 7 || !e.OccurredAt[1].Equal(now.Truncate(time.Microsecond)) || e.Variation[1] != "" || e.Attributes[1] != "" {
		t.Fatalf("stamped evaluation: id %s (v%d) at %v", e.EventID[1], e.EventID[1].Version(), e.OccurredAt[1])
	}
	if !b.ReceivedAt.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("received at %v", b.ReceivedAt)
	}
	if g.Goal[0] != "purchase" || !g.HasValue[0] || g.Value[0] != 12.5 || !g.OccurredAt[0].Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) ||
		g.HasValue[1] || g.User[1] != "user-3" {
		t.Fatalf("goals %+v", g)
	}
	// Round trip through the stream payload.
	payload, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(payload); err != nil {
		t.Fatal(err)
	}
}

func TestParseRefusesInvalidEventsOneByOne(t *testing.T) {
	long := strings.Repeat("k", 101)
	for _, c := range []struct {
		name, event, code, field string
	}{
		{"not an object", `"hello"`, ingest.CodeInvalid, ""},
		{"no kind", `{"flag_key": "f", "user_key": "u"}`, ingest.CodeRequired, "kind"},
		{"unknown kind", `{"kind": "click", "user_key": "u"}`, ingest.CodeInvalid, "kind"},
		{"kind of another type", `{"kind": 3, "user_key": "u"}`, ingest.CodeInvalid, "kind"},
		{"no user", `{"kind": "evaluation", "flag_key": "f"}`, ingest.CodeRequired, "user_key"},
		{"empty user", `{"kind": "goal", "goal_key": "g", "user_key": ""}`, ingest.CodeRequired, "user_key"},
		{"user with NUL", `{"kind": "goal", "goal_key": "g", "user_key": "a\u0000b"}`, ingest.CodeInvalid, "user_key"},
		{"user too long", `{"kind": "goal", "goal_key": "g", "user_key": "` + strings.Repeat("u", 1001) + `"}`, ingest.CodeTooLong, "user_key"},
		{"no flag", `{"kind": "evaluation", "user_key": "u"}`, ingest.CodeRequired, "flag_key"},
		{"bad flag key", `{"kind": "evaluation", "flag_key": "dark mode", "user_key": "u"}`, ingest.CodeInvalid, "flag_key"},
		{"flag key too long", `{"kind": "evaluation", "flag_key": "` + long + `", "user_key": "u"}`, ingest.CodeTooLong, "flag_key"},
		{"bad variation", `{"kind": "evaluation", "flag_key": "f", "variation_key": "a b", "user_key": "u"}`, ingest.CodeInvalid, "variation_key"},
		{"bad experiment", `{"kind": "evaluation", "flag_key": "f", "experiment_key": "-x", "user_key": "u"}`, ingest.CodeInvalid, "experiment_key"},
		{"reason not ASCII", `{"kind": "evaluation", "flag_key": "f", "reason": "ré", "user_key": "u"}`, ingest.CodeInvalid, "reason"},
		{"reason too long", `{"kind": "evaluation", "flag_key": "f", "reason": "` + strings.Repeat("R", 65) + `", "user_key": "u"}`, ingest.CodeTooLong, "reason"},
		{"attributes not an object", `{"kind": "evaluation", "flag_key": "f", "user_key": "u", "attributes": [1]}`, ingest.CodeInvalid, "attributes"},
		{"nested attribute", `{"kind": "evaluation", "flag_key": "f", "user_key": "u", "attributes": {"a": {"b": 1}}}`, ingest.CodeInvalid, "attributes.a"},
		{"too many attributes", `{"kind": "evaluation", "flag_key": "f", "user_key": "u", "attributes": {` + manyAttributes(33) + `}}`, ingest.CodeTooLong, "attributes"},
		{"attributes too large", `{"kind": "evaluation", "flag_key": "f", "user_key": "u", "attributes": {"a": "` + strings.Repeat("x", 5000) + `"}}`, ingest.CodeTooLong, "attributes"},
		{"attribute with NUL", `{"kind": "evaluation", "flag_key": "f", "user_key": "u", "attributes": {"a": "\u0000"}}`, ingest.CodeInvalid, "attributes"},
		{"goal field on an evaluation", `{"kind": "evaluation", "flag_key": "f", "user_key": "u", "value": 1}`, ingest.CodeInvalid, "value"},
		{"evaluation field on a goal", `{"kind": "goal", "goal_key": "g", "user_key": "u", "flag_key": "f"}`, ingest.CodeInvalid, "flag_key"},
		{"no goal", `{"kind": "goal", "user_key": "u"}`, ingest.CodeRequired, "goal_key"},
		{"value not a number", `{"kind": "goal", "goal_key": "g", "user_key": "u", "value": "12"}`, ingest.CodeInvalid, "value"},
		{"value too large", `{"kind": "goal", "goal_key": "g", "user_key": "u", "value": 1e16}`, ingest.CodeOutOfRange, "value"},
		{"event id not a UUID", `{"kind": "goal", "goal_key": "g", "user_key": "u", "event_id": "abc"}`, ingest.CodeInvalid, "event_id"},
		{"event id without dashes", `{"kind": "goal", "goal_key": "g", "user_key": "u", "event_id": "0190d7a48c1e7b3a9f002f1c3e4d5a6b"}`, ingest.CodeInvalid, "event_id"},
		{"nil event id", `{"kind": "goal", "goal_key": "g", "user_key": "u", "event_id": "00000000-0000-0000-0000-000000000000"}`, ingest.CodeInvalid, "event_id"},
		{"time without zone", `{"kind": "goal", "goal_key": "g", "user_key": "u", "occurred_at": "2026-03-01T11:00:00"}`, ingest.CodeInvalid, "occurred_at"},
		{"time as a number", `{"kind": "goal", "goal_key": "g", "user_key": "u", "occurred_at": 1700000000}`, ingest.CodeInvalid, "occurred_at"},
		{"too old", `{"kind": "goal", "goal_key": "g", "user_key": "u", "occurred_at": "2026-02-27T11:59:59Z"}`, ingest.CodeOutOfRange, "occurred_at"},
		{"in the future", `{"kind": "goal", "goal_key": "g", "user_key": "u", "occurred_at": "2026-03-01T12:06:00Z"}`, ingest.CodeOutOfRange, "occurred_at"},
	} {
		t.Run(c.name, func(t *testing.T) {
			valid := `{"kind": "goal", "goal_key": "g", "user_key": "u"}`
			errs, evals, goals := parse(t, `{"events": [`+valid+`, `+c.event+`, `+valid+`]}`)
			if evals+goals != 2 || len(errs) != 1 {
				t.Fatalf("%d evaluations and %d goals kept, errors %+v", evals, goals, errs)
			}
			e := errs[0]
			if e.Index != 1 || e.Code != c.code || e.Field != c.field || e.Message == "" {
				t.Fatalf("error %+v, want index 1, code %s, field %q", e, c.code, c.field)
			}
		})
	}
}

func manyAttributes(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"a%d": %d`, i, i)
	}
	return strings.Join(parts, ",")
}

func TestParseDuplicateEventIDs(t *testing.T) {
	id := uuid.Must(uuid.NewV7()).String()
	ev := `{"kind": "goal", "goal_key": "g", "user_key": "u", "event_id": "` + id + `"}`
	errs, _, goals := parse(t, `{"events": [`+ev+`, `+ev+`]}`)
	if goals != 1 || len(errs) != 1 || errs[0].Index != 1 || errs[0].Code != ingest.CodeDuplicate {
		t.Fatalf("goals %d, errors %+v", goals, errs)
	}
}

func TestParseRefusesWholeRequests(t *testing.T) {
	limits := ingest.DefaultLimits
	limits.MaxBatch = 3
	ev := `{"kind": "goal", "goal_key": "g", "user_key": "u"}`
	for _, c := range []struct {
		name, body, code, field string
	}{
		{"empty body", ``, domain.EInvalid, ""},
		{"malformed JSON", `{"events": [`, domain.EInvalid, ""},
		{"an array", `[` + ev + `]`, domain.EInvalid, "events"},
		{"no events", `{}`, domain.EInvalid, "events"},
		{"events not an array", `{"events": {}}`, domain.EInvalid, "events"},
		{"empty events", `{"events": []}`, domain.EInvalid, "events"},
		{"too many", `{"events": [` + strings.Repeat(ev+",", 3) + ev + `]}`, domain.ETooLarge, "events"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ingest.Parse([]byte(c.body), "p", "e", now, limits)
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != c.code || de.Field != c.field {
				t.Fatalf("error %v, want code %s field %q", err, c.code, c.field)
			}
		})
	}
}

// Any input is either refused as a whole or split into valid events (that pass the projector's
// own check) and per-item errors with valid indexes; it never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"events": [{"kind": "evaluation", "flag_key": "f", "user_key": "u", "attributes": {"a": 1}}]}`))
	f.Add([]byte(`{"events": [{"kind": "goal", "goal_key": "g", "user_key": "u", "value": -1.5e3, "occurred_at": "2026-03-01T11:00:00Z"}]}`))
	f.Add([]byte(`{"events": [{"kind": "goal", "event_id": "0190d7a4-8c1e-7b3a-9f00-2f1c3e4d5a6b"}, 1, null, []]}`))
	f.Add([]byte(`{"events": null}`))
	f.Add([]byte(`{"events": [{"kind": "goal", "goal_key": 5, "user_key": "u"}, {"kind": "goal", "goal_key": "g", "user_key": "u"}]}`))
	f.Add([]byte(` { "sdk" : {"a": [1, {"b": "}]\""}]}, "EVENTS":[ {"KIND":"evaluation","Flag_Key":"f","user_key":"u\u00e9","attributes":{"x":"a,b}"} ,"x":[[]]}, null, {"kind":"goal","goal_key":"g","user_key":"u","value":null,"attributes":null},{"kind":"goal","goal_key":"g","user_key":"v","value":-1.5e-3} ] } `))
	f.Add([]byte(`{"events": [{"kind": "evaluation", "kind": null, "flag_key": "f", "user_key": "u"}], "events": [{"kind": "goal"}]}`))
	f.Add([]byte(`{"events": [{"kind": "evaluation", "flag_key": "f", "user_key": "u", "reason": "\t"}, {"kind": "evaluation", "flag_key": "f", "user_key": "ü"}]}`))
	// ASCII bodies without escapes, which the one-pass decoder takes: keys in other cases,
	// repeated keys, nulls, unknown fields of every type.
	f.Add([]byte(`{"EVENTS":[{"KIND":"evaluation","Flag_Key":"f","user_key":"u","kind":"goal","kind":"evaluation","attributes":{"x":"a,b}"},"x":[[{}]]},null,{"kind":"goal","goal_key":"g","user_key":"u","value":null,"attributes":null}],"sdk":{"events":1}}`))
	f.Add([]byte(`{"events":[{"kind":"goal","goal_key":"g","user_key":"u","value":-1.5e-3,"event_id":null,"occurred_at":null,"extra":[true,false,null,"\"]"]}],"Events":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, errs, err := ingest.Parse(body, "p", "e", now, ingest.DefaultLimits)
		// The one-pass fast path and the event-by-event path agree (ids stamped at the edge are
		// random: compare the rest).
		sb, serrs, serr := ingest.ParseSlow(body, "p", "e", now, ingest.DefaultLimits)
		if (err == nil) != (serr == nil) || !reflect.DeepEqual(errs, serrs) {
			t.Fatalf("fast and slow paths differ: %v %+v / %v %+v", err, errs, serr, serrs)
		}
		if err == nil {
			if b.Len() != sb.Len() || !reflect.DeepEqual(b.Evaluations.User, sb.Evaluations.User) ||
				!reflect.DeepEqual(b.Goals.Goal, sb.Goals.Goal) || !reflect.DeepEqual(b.Evaluations.Attributes, sb.Evaluations.Attributes) {
				t.Fatalf("fast and slow paths kept different events")
			}
		}
		if err != nil {
			if b != nil || errs != nil {
				t.Fatal("a refused request returned a batch")
			}
			return
		}
		var wb struct{ Events []json.RawMessage }
		if json.Unmarshal(body, &wb) != nil {
			t.Fatalf("accepted a body encoding/json refuses: %q", body)
		}
		if b.Len()+len(errs) != len(wb.Events) {
			t.Fatalf("%d kept + %d refused != %d events", b.Len(), len(errs), len(wb.Events))
		}
		for i, e := range errs {
			if e.Index < 0 || e.Index >= len(wb.Events) || (i > 0 && errs[i-1].Index >= e.Index) || e.Code == "" || e.Message == "" {
				t.Fatalf("bad item error %+v", e)
			}
		}
		if b.Len() > 0 {
			if err := b.Validate(); err != nil {
				t.Fatalf("a parsed batch fails the projector's check: %v", err)
			}
			payload, err := b.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := telemetry.UnmarshalBatch(payload); err != nil {
				t.Fatalf("the stream payload does not decode: %v", err)
			}
		}
	})
}

// The events' key check is the domain's.
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"", "a", "new-checkout", "-a", "a b", "A.b_c-9", strings.Repeat("k", 100), strings.Repeat("k", 101), "é", "a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ingest.ValidKey(s) != domain.ValidKey(s) {
			t.Fatalf("ValidKey(%q) = %v, domain says %v", s, ingest.ValidKey(s), domain.ValidKey(s))
		}
	})
}
