package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
		return jsonError(err)
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
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tpe *time.ParseError
	switch {
	case errors.As(err, &syn):
		return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())}
	case errors.As(err, &typ):
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
	if errors.As(jsonError(err), &de) {
		return de.Message
	}
	return "malformed JSON"
}
