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

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
)

// MIMEMergePatch is JSON Merge Patch's media type (RFC 7396).
const MIMEMergePatch = "application/merge-patch+json"

// ReadMergePatch reads a PATCH body: a JSON Merge Patch (RFC 7396) sent as
// application/merge-patch+json or, with the same meaning, application/json. Only an object is
// accepted: a patch that is not one would replace the whole resource, which PUT is for.
// notNull lists the members (dotted paths for nested ones, e.g. "defaults.on_variation") that a
// resource cannot do without: null there would remove them, so it is refused with the field.
func ReadMergePatch(c echo.Context, limit int64, notNull ...string) (map[string]any, error) {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" && !strings.HasPrefix(ct, MIMEMergePatch) &&
		!strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return nil, &domain.Error{Code: domain.EInvalid, Message: "Content-Type must be " + MIMEMergePatch + " or application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &domain.Error{Code: domain.ETooLarge,
				Message: fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
		}
		return nil, &domain.Error{Code: domain.EInvalid, Message: "could not read the request body"}
	}
	return ParseMergePatch(body, notNull...)
}

// ParseMergePatch decodes a merge patch body (see ReadMergePatch). Numbers are kept as written.
func ParseMergePatch(body []byte, notNull ...string) (map[string]any, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, &domain.Error{Code: domain.EInvalid, Message: "request body is empty; a JSON merge patch object is required"}
	}
	if trimmed[0] != '{' {
		return nil, &domain.Error{Code: domain.EInvalid,
			Message: "a merge patch must be a JSON object of the members to change (null removes one)"}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var patch map[string]any
	if err := dec.Decode(&patch); err != nil {
		return nil, jsonError(err, reflect.TypeOf(patch))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &domain.Error{Code: domain.EInvalid, Message: "request body holds data after the JSON value"}
	}
	for _, path := range notNull {
		if isNullAt(patch, path) {
			return nil, domain.Invalid(path, "%s cannot be removed (null); send a value", path)
		}
	}
	return patch, nil
}

// isNullAt reports whether the patch sets the dotted path to null.
func isNullAt(patch map[string]any, path string) bool {
	head, rest, nested := strings.Cut(path, ".")
	v, ok := patch[head]
	if !ok {
		return false
	}
	if !nested {
		return v == nil
	}
	obj, isObj := v.(map[string]any)
	return isObj && isNullAt(obj, rest)
}

// MergePatch applies patch to target as RFC 7396 section 2 defines it: members of an object
// patch replace the target's, null removes them, nested objects merge recursively, and any
// other patch value replaces the target whole.
func MergePatch(target, patch any) any {
	p, isObj := patch.(map[string]any)
	if !isObj {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = MergePatch(t[k], v)
	}
	return t
}

// ApplyMergePatch applies patch to the JSON form of current (the resource as its full-update
// request carries it) and decodes the result strictly into out, so a partial update is validated
// exactly as a full one: unknown members and wrong types are 400 with the field.
func ApplyMergePatch(current any, patch map[string]any, out any) error {
	doc, err := json.Marshal(current)
	if err != nil {
		return fmt.Errorf("merge patch: encode the current state: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var target any
	if err := dec.Decode(&target); err != nil {
		return fmt.Errorf("merge patch: decode the current state: %w", err)
	}
	merged, err := json.Marshal(MergePatch(target, deepCopy(patch)))
	if err != nil {
		return fmt.Errorf("merge patch: encode the result: %w", err)
	}
	return Unmarshal(merged, out)
}

// deepCopy copies the objects of a decoded patch, which MergePatch may take into its result and
// change there, so a command that runs again (a write conflict is retried) sees the patch intact.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = deepCopy(e)
		}
		return c
	}
	return v
}
