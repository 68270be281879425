package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
)

type variation struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type command struct {
	Name       string            `json:"name"`
	Tags       []string          `json:"tags,omitempty"`
	Variations []variation       `json:"variations,omitempty"`
	Attrs      map[string]any    `json:"attrs,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	At         *time.Time        `json:"at,omitempty"`
	Count      int               `json:"count,omitempty"`
}

// Definition is embedded the way domain definitions are in request types: encoding/json names
// it by its Go type in field paths ("Definition.definition_name"), which a client never sent.
type Definition struct {
	DefinitionName string `json:"definition_name"`
	Steps          []struct {
		Weight int `json:"weight"`
	} `json:"steps"`
}

type withEmbedded struct {
	command
	Definition
}

func invalid(t *testing.T, err error) *domain.Error {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.EInvalid {
		t.Fatalf("want an invalid-input error, got %v", err)
	}
	return de
}

// Every string of a body, however deep (a JSON variation value, a map key), is checked; the
// error names the field in JSON's words.
func TestUnmarshalRefusesWhatStorageCannotHold(t *testing.T) {
	deep := strings.Repeat("[", httpapi.MaxDepth+5) + strings.Repeat("]", httpapi.MaxDepth+5)
	cases := []struct {
		name, body, field, message string
	}{
		{"NUL in a name", `{"name":"a\u0000b"}`, "name", "NUL"},
		{"NUL in a list", `{"name":"n","tags":["ok","x\u0000"]}`, "tags[1]", "NUL"},
		{"NUL in a JSON variation value", `{"name":"n","variations":[{"key":"a","value":{"x":[1,{"y":"\u0000"}]}}]}`,
			"variations[0].value.x[1].y", "NUL"},
		{"NUL in a map key", `{"name":"n","attrs":{"a\u0000":1}}`, "attrs", "NUL"},
		{"NUL in a map value", `{"name":"n","labels":{"k":"\u0000"}}`, "labels.k", "NUL"},
		{"a string too long", `{"name":"` + strings.Repeat("n", httpapi.MaxStringBytes+1) + `"}`, "name", "longer"},
		{"nesting too deep", `{"name":"n","attrs":{"a":` + deep + `}}`, "attrs", "nested deeper than 64"},
		{"a variation value too deep", `{"name":"n","variations":[{"key":"a","value":` + deep + `}]}`, "variations[0].value", "nested deeper"},
		{"raw invalid UTF-8", "{\"name\":\"\xff\"}", "", "UTF-8"},
		{"an invalid sequence", "{\"name\":\"\xc3\x28\"}", "", "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v command
			de := invalid(t, httpapi.Unmarshal([]byte(c.body), &v))
			if de.Field != c.field || !strings.Contains(de.Message, c.message) {
				t.Fatalf("field %q message %q, want field %q and %q", de.Field, de.Message, c.field, c.message)
			}
		})
	}
	var v command
	ok := `{"name":"Ünïcode ✓","tags":["a"],"variations":[{"key":"a","value":{"deep":[[["fine"]]]}}],"attrs":{"k":"v"}}`
	if err := httpapi.Unmarshal([]byte(ok), &v); err != nil {
		t.Fatalf("a valid body: %v", err)
	}
}

// Decoding errors say which JSON field needs which JSON type, never a Go type.
func TestUnmarshalErrorsAreInTheAPIsWords(t *testing.T) {
	cases := []struct {
		body, field, message string
	}{
		{`{"name":7}`, "name", "name must be a JSON string, got a number"},
		{`{"name":"n","tags":"x"}`, "tags", "tags must be a JSON array, got a string"},
		{`{"name":"n","variations":{"a":1}}`, "variations", "variations must be a JSON array, got an object"},
		{`{"name":"n","count":1.5}`, "count", "count must be a JSON integer in range, got a number 1.5"},
		{`{"name":"n","count":true}`, "count", "count must be a JSON integer, got a boolean"},
		{`["x"]`, "", "expected a JSON object, got an array"},
		{`"x"`, "", "expected a JSON object, got a string"},
		{`{"name":"n","at":"yesterday"}`, "", "not an RFC 3339 date-time"},
		{`{"name":"n","colour":1}`, "colour", `unknown field "colour"`},
		{`{"name":"n","definition_name":1}`, "definition_name", "definition_name must be a JSON string, got a number"},
		{`{"name":"n","steps":[{"weight":"x"}]}`, "steps.weight", "steps.weight must be a JSON integer, got a string"},
	}
	for _, c := range cases {
		var v withEmbedded
		de := invalid(t, httpapi.Unmarshal([]byte(c.body), &v))
		if de.Field != c.field || !strings.Contains(de.Message, c.message) {
			t.Errorf("%s: field %q message %q, want field %q and %q", c.body, de.Field, de.Message, c.field, c.message)
		}
		for _, goWord := range []string{"Go ", "httpapi_test.", "[]", "json.RawMessage", "time.Time", "int", "Definition."} {
			if strings.Contains(de.Message, goWord) && !strings.Contains(c.message, goWord) {
				t.Errorf("%s: message %q speaks Go (%q)", c.body, de.Message, goWord)
			}
		}
	}
}

// Path parameters (after percent-decoding), query parameters and the reason header are checked
// before a handler runs; the field is the parameter's name.
func TestValidInputChecksParameters(t *testing.T) {
	e := echo.New()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.HTTPErrorHandler = httpapi.ErrorHandler(log)
	e.Use(httpapi.Requests(log, nil), httpapi.ValidInput("/api/"))
	reached := 0
	h := func(c echo.Context) error { reached++; return c.String(http.StatusOK, c.Param("flag")) }
	e.GET("/api/projects/:project/flags/:flag", h)
	e.GET("/sdk/flags/:flag", h)
	cases := []struct {
		target, header string
		status         int
		field          string
	}{
		{"/api/projects/p/flags/f", "", 200, ""},
		{"/api/projects/p/flags/%C3%A9t%C3%A9", "", 200, ""},
		{"/api/projects/p/flags/%00", "", 400, "flag"},
		{"/api/projects/%ff/flags/f", "", 400, "project"},
		{"/api/projects/%FF/flags/f", "", 400, "project"},
		{"/api/projects/p/flags/%c3%28", "", 400, "flag"},
		{"/api/projects/p/flags/" + strings.Repeat("k", 5000), "", 400, "flag"},
		{"/api/projects/p/flags/f?cursor=%00", "", 400, "cursor"},
		{"/api/projects/p/flags/f?q=%ff", "", 400, "q"},
		{"/api/projects/p/flags/f?cursor=" + strings.Repeat("A", 5000), "", 400, "cursor"},
		{"/api/projects/p/flags/f", "\xff", 400, "X-Vexil-Reason"},
		{"/sdk/flags/%00", "", 200, ""}, // not a route ValidInput was given
	}
	// A request id is stored with every change it makes: one that is not printable ASCII is
	// replaced, not refused and not stored.
	for id, kept := range map[string]bool{"abc-123": true, "caf\xc3\xa9": false, "a\xffb": false, "a\tb": false} {
		req := httptest.NewRequest(http.MethodGet, "/api/projects/p/flags/f", nil)
		req.Header.Set(echo.HeaderXRequestID, id)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if got := rec.Header().Get(echo.HeaderXRequestID); (got == id) != kept || got == "" {
			t.Errorf("request id %q answered as %q", id, got)
		}
	}
	for _, c := range cases {
		req := httptest.NewRequest(http.MethodGet, c.target, nil)
		if c.header != "" {
			req.Header.Set(httpapi.ReasonHeader, c.header)
		}
		rec := httptest.NewRecorder()
		before := reached
		e.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("%.60s: status %d, want %d: %s", c.target, rec.Code, c.status, rec.Body)
			continue
		}
		if c.status == 400 {
			var body httpapi.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Field != c.field || body.Code != domain.EInvalid {
				t.Errorf("%.60s: body %s, want field %q", c.target, rec.Body, c.field)
			}
			if reached != before {
				t.Errorf("%.60s: the handler ran", c.target)
			}
		}
	}
}

// A cursor opens only for the list it was sealed for, under the key that sealed it, unaltered.
func TestCursorsAreAuthenticated(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	cs := httpapi.NewCursors(key)
	const list = "/api/v1/projects/:project/flags"
	c := cs.Seal(list, "flag-42")
	if got, err := cs.Open(list, c); err != nil || got != "flag-42" {
		t.Fatalf("open: %q %v", got, err)
	}
	if cs.Seal(list, "") != "" {
		t.Fatal("no next page must seal to no cursor")
	}
	if got, err := cs.Open(list, ""); err != nil || got != "" {
		t.Fatalf("no cursor: %q %v", got, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(c)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-1] ^= 1
	version := append([]byte(nil), raw...)
	version[0] = 2
	bad := map[string]string{
		"garbage":             "garbage",
		"AAAA":                "AAAA",
		"5,000 characters":    strings.Repeat("A", 5000),
		"not base64":          "%%",
		"altered position":    base64.RawURLEncoding.EncodeToString(flipped),
		"another version":     base64.RawURLEncoding.EncodeToString(version),
		"an old plain cursor": base64.RawURLEncoding.EncodeToString([]byte("flag-42")),
		"another list":        cs.Seal("/api/v1/projects/:project/segments", "flag-42"),
		"another key":         httpapi.NewCursors([]byte(strings.Repeat("x", 32))).Seal(list, "flag-42"),
	}
	for name, cursor := range bad {
		_, err := cs.Open(list, cursor)
		if de := invalid(t, err); de.Field != "cursor" {
			t.Errorf("%s: field %q", name, de.Field)
		}
	}
}
