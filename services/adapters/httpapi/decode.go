package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
)

// DecodeJSON reads the request body into v strictly: at most limit bytes (413 past it), exactly one
// JSON value, no unknown fields. Errors name the offending field where JSON says which.
func DecodeJSON(c echo.Context, limit int64, v any) error {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" && !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return &domain.Error{Code: domain.EInvalid, Message: "Content-Type must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &domain.Error{Code: domain.ETooLarge,
				Message: fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
		}
		return &domain.Error{Code: domain.EInvalid, Message: "could not read the request body"}
	}
	return Unmarshal(body, v)
}

// Unmarshal decodes one JSON value strictly (no unknown fields, nothing after it), then checks
// every string in it with ValidateValue: a body must be valid UTF-8 (encoding/json would silently
// replace what is not) and no string may hold NUL or pass MaxStringBytes.
func Unmarshal(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &domain.Error{Code: domain.EInvalid, Message: "request body is empty; a JSON object is required"}
	}
	if !utf8.Valid(body) {
		return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf(
			"request body is not valid UTF-8 (at byte %d)", invalidUTF8At(body))}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, reflect.TypeOf(v))
	}
	if dec.More() {
		return &domain.Error{Code: domain.EInvalid, Message: "request body holds more than one JSON value"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &domain.Error{Code: domain.EInvalid, Message: "request body holds data after the JSON value"}
	}
	return ValidateValue(v)
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// jsonError words a decoding error in the API's terms: the JSON field and the JSON type it needs,
// never the Go type behind it.
func jsonError(err error, into reflect.Type) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tpe *time.ParseError
	switch {
	case errors.As(err, &syn):
		return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())}
	case errors.As(err, &typ):
		typ.Field = jsonPath(into, typ.Field)
		want := jsonType(typ.Type)
		if typ.Field == "" {
			return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("expected a JSON %s, got %s", want, jsonValue(typ.Value))}
		}
		if want == "integer" && strings.HasPrefix(typ.Value, "number") {
			return &domain.Error{Code: domain.EInvalid, Field: typ.Field,
				Message: fmt.Sprintf("%s must be a JSON integer in range, got %s", typ.Field, jsonValue(typ.Value))}
		}
		return &domain.Error{Code: domain.EInvalid, Field: typ.Field,
			Message: fmt.Sprintf("%s must be a JSON %s, got %s", typ.Field, want, jsonValue(typ.Value))}
	case errors.As(err, &tpe):
		return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("%q is not an RFC 3339 date-time", tpe.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &domain.Error{Code: domain.EInvalid, Message: "malformed JSON: unexpected end of input"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &domain.Error{Code: domain.EInvalid, Field: field, Message: fmt.Sprintf("unknown field %q", field)}
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return de
	}
	if strings.Contains(err.Error(), "Go ") { // e.g. "Go value of type": not the API's words
		return &domain.Error{Code: domain.EInvalid, Message: "malformed JSON"}
	}
	return &domain.Error{Code: domain.EInvalid, Message: "malformed JSON: " + err.Error()}
}

// JSONProblem words a decoding error of encoding/json for a client, as DecodeJSON does: the
// JSON field and type, never a Go type. For APIs with error formats of their own (OFREP).
func JSONProblem(err error) string {
	var de *domain.Error
	if errors.As(jsonError(err, nil), &de) {
		return de.Message
	}
	return "malformed JSON"
}

// jsonPath rewrites the field path encoding/json reports (it names embedded structs by their Go
// type: "ExperimentDefinition.variations") into the JSON path a client sent ("variations").
func jsonPath(t reflect.Type, field string) string {
	if t == nil || field == "" {
		return field
	}
	var out []string
	for _, name := range strings.Split(field, ".") {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			out = append(out, name)
			t = nil
			continue
		}
		f, embedded := fieldByJSONName(t, name)
		if f == nil {
			out = append(out, name)
			t = nil
			continue
		}
		if !embedded {
			out = append(out, name)
		}
		t = f.Type
	}
	return strings.Join(out, ".")
}

// fieldByJSONName finds the field of struct t that JSON calls name, looking into embedded
// structs; embedded reports that name is the Go name of an embedded struct, not a JSON member.
func fieldByJSONName(t reflect.Type, name string) (f *reflect.StructField, embedded bool) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		jsonName := sf.Name
		if tag := sf.Tag.Get("json"); tag != "" {
			if n, _, _ := strings.Cut(tag, ","); n != "" && n != "-" {
				jsonName = n
			}
		}
		if sf.Anonymous && sf.Tag.Get("json") == "" {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Name() == name {
				return &sf, true
			}
			if et.Kind() == reflect.Struct {
				if inner, emb := fieldByJSONName(et, name); inner != nil {
					return inner, emb
				}
			}
			continue
		}
		if jsonName == name {
			return &sf, false
		}
	}
	return nil, false
}
