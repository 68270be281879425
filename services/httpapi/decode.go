package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

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

// Unmarshal decodes one JSON value strictly (no unknown fields, nothing after it).
func Unmarshal(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &domain.Error{Code: domain.EInvalid, Message: "request body is empty; a JSON object is required"}
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
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &domain.Error{Code: domain.EInvalid, Message: fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())}
	case errors.As(err, &typ):
		return &domain.Error{Code: domain.EInvalid, Field: typ.Field,
			Message: fmt.Sprintf("expected %s, got JSON %s", typ.Type.String(), typ.Value)}
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
	return &domain.Error{Code: domain.EInvalid, Message: "malformed JSON: " + err.Error()}
}
