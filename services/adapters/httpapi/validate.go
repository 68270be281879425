package httpapi

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
)

// Input limits every request shares, before the domain's own limits per field (a name's 200
// characters, a description's 2,000). They keep what PostgreSQL cannot store (NUL, invalid
// UTF-8) or struggles with (deep jsonb, index rows over ~2.7 kB) out of the commands.
const (
	// MaxStringBytes bounds any one string of a request body: keys, names, and strings nested
	// inside JSON variation values. The body limit bounds their sum.
	MaxStringBytes = 64 << 10
	// MaxDepth bounds the nesting of objects and arrays in a request body (a JSON variation
	// value included); the deepest document of the API itself is about 6 levels.
	MaxDepth = 64
	// MaxParamBytes bounds a path parameter (a key or an id): the longest key is 256 bytes.
	MaxParamBytes = 512
	// MaxQueryBytes bounds one query parameter value (a search, a filter, a cursor).
	MaxQueryBytes = 2048
)

// CheckText reports why s cannot be accepted as text of at most maxBytes bytes: not valid UTF-8,
// a NUL character (PostgreSQL stores neither in text or jsonb), or too long. "" means it is fine.
func CheckText(s string, maxBytes int) string {
	switch {
	case len(s) > maxBytes:
		return "longer than " + strconv.Itoa(maxBytes) + " bytes"
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL character"
	}
	return ""
}

// ValidateText is CheckText as an input error about field.
func ValidateText(field, s string, maxBytes int) error {
	if why := CheckText(s, maxBytes); why != "" {
		return domain.Invalid(field, "%s is %s", describe(field), why)
	}
	return nil
}

func describe(field string) string {
	if field == "" {
		return "the value"
	}
	return field
}

// ValidateValue walks a decoded request (a struct, map, slice, or any mix of them) and returns
// an input error naming the first string, at any depth (map keys and json.RawMessage contents
// included), that CheckText refuses, or the place where nesting passes MaxDepth. It is the one
// check that every string reaching storage passes, whichever command it belongs to.
func ValidateValue(v any) error {
	if v == nil {
		return nil
	}
	return (&walker{}).walk(reflect.ValueOf(v), "", 0)
}

var (
	timeType = reflect.TypeOf(time.Time{})
	anyType  = reflect.TypeOf((*any)(nil)).Elem()
)

// walker remembers where free-form JSON (a variation value, a map) began: nesting too deep is
// reported there, not at a path of a hundred [0]s.
type walker struct{ freeForm string }

func (w *walker) walk(v reflect.Value, path string, depth int) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		if v.Kind() == reflect.Interface && w.freeForm == "" {
			w.freeForm = path
			defer func() { w.freeForm = "" }()
		}
		return w.walk(v.Elem(), path, depth)
	case reflect.String:
		return ValidateText(path, v.String(), MaxStringBytes)
	case reflect.Struct:
		if v.Type() == timeType {
			return nil
		}
		if depth >= MaxDepth {
			return w.tooDeep(path)
		}
		return w.walkStruct(v, path, depth+1)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return w.walkRaw(v, path, depth)
		}
		if depth >= MaxDepth {
			return w.tooDeep(path)
		}
		for i := 0; i < v.Len(); i++ {
			if err := w.walk(v.Index(i), path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		if depth >= MaxDepth {
			return w.tooDeep(path)
		}
		if w.freeForm == "" {
			w.freeForm = path
			defer func() { w.freeForm = "" }()
		}
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			name := ""
			if k.Kind() == reflect.String {
				name = k.String()
				if why := CheckText(name, MaxStringBytes); why != "" {
					return domain.Invalid(path, "a key of %s is %s", describe(path), why)
				}
			}
			if err := w.walk(iter.Value(), join(path, name), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *walker) walkStruct(v reflect.Value, path string, depth int) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := w.walkStruct(v.Field(i), path, depth); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag := f.Tag.Get("json"); tag != "" {
			if tag == "-" {
				continue
			}
			if n, _, _ := strings.Cut(tag, ","); n != "" {
				name = n
			}
		}
		if err := w.walk(v.Field(i), join(path, name), depth); err != nil {
			return err
		}
	}
	return nil
}

// walkRaw checks a byte slice that holds JSON (json.RawMessage: a variation value, a context):
// encoding/json keeps its escapes, so a "\u0000" inside would only surface in PostgreSQL.
// Bytes that are not JSON are binary, not text, and are left alone.
func (w *walker) walkRaw(v reflect.Value, path string, depth int) error {
	if v.Kind() == reflect.Array {
		return nil
	}
	b := v.Bytes()
	if len(bytes.TrimSpace(b)) == 0 || !json.Valid(b) {
		return nil
	}
	var decoded any
	if err := json.Unmarshal(b, &decoded); err != nil {
		return nil
	}
	if w.freeForm == "" {
		w.freeForm = path
		defer func() { w.freeForm = "" }()
	}
	return w.walk(reflect.ValueOf(&decoded).Elem(), path, depth)
}

func (w *walker) tooDeep(path string) error {
	if w.freeForm != "" {
		path = w.freeForm
	}
	return domain.Invalid(path, "%s is nested deeper than %d levels", describe(path), MaxDepth)
}

func join(parent, name string) string {
	switch {
	case parent == "":
		return name
	case name == "":
		return parent
	}
	return parent + "." + name
}

// jsonType names the JSON type a Go type decodes from, in the API's words.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return "string (an RFC 3339 date-time)"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	if t == anyType {
		return "value"
	}
	return "value of another type"
}

// jsonValue names what encoding/json says it found ("string", "number 1e400", "bool").
func jsonValue(v string) string {
	switch {
	case v == "bool":
		return "a boolean"
	case strings.HasPrefix(v, "number"):
		return "a number" + strings.TrimPrefix(v, "number")
	case v == "array", v == "object":
		return "an " + v
	case v == "":
		return "another type"
	}
	return "a " + v
}

// ReasonHeader carries why a change was made; it is stored with the change's events.
const ReasonHeader = "X-Vexil-Reason"

// ValidateRequest checks what a request carries outside its body before any of it reaches a
// query: every path parameter (after percent-decoding, so %00, %ff and %c3%28 are caught however
// the router kept them), every query parameter and the X-Vexil-Reason header must be text
// CheckText accepts. The error's field is the parameter's name.
func ValidateRequest(c echo.Context) error {
	names, values := c.ParamNames(), c.ParamValues()
	for i, name := range names {
		if i >= len(values) {
			break
		}
		v := values[i]
		if strings.IndexByte(v, '%') >= 0 {
			u, err := url.PathUnescape(v)
			if err != nil {
				return domain.Invalid(name, "%s is not a valid percent-encoded path segment", name)
			}
			v = u
		}
		if err := ValidateText(name, v, MaxParamBytes); err != nil {
			return err
		}
	}
	for name, vs := range c.QueryParams() {
		field := name
		if CheckText(name, MaxQueryBytes) != "" {
			field = "query"
		}
		for _, v := range vs {
			if err := ValidateText(field, v, MaxQueryBytes); err != nil {
				return err
			}
		}
	}
	if r := c.Request().Header.Get(ReasonHeader); r != "" && !utf8.ValidString(r) {
		return domain.Invalid(ReasonHeader, "%s is not valid UTF-8", ReasonHeader)
	}
	return nil
}

// ValidInput runs ValidateRequest on every request whose route starts with one of prefixes
// (the management API and webhooks: what may reach storage). The SDK API keeps OFREP's own error
// format and stores nothing from its parameters.
func ValidInput(prefixes ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			route := c.Path()
			for _, p := range prefixes {
				if strings.HasPrefix(route, p) {
					if err := ValidateRequest(c); err != nil {
						return err
					}
					break
				}
			}
			return next(c)
		}
	}
}
