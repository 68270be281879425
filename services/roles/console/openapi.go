package console

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/adapters/httpapi"
)

// OpenAPIPath turns an echo path (/flags/:flag) into an OpenAPI path (/flags/{flag}).
func OpenAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

var (
	openAPIOnce sync.Once
	openAPIDoc  map[string]any
)

// OpenAPI returns the OpenAPI 3 document of the management API, built from the same route table
// that registers the routes, with JSON schemas reflected from the request and response types.
func OpenAPI() map[string]any {
	openAPIOnce.Do(func() { openAPIDoc = buildOpenAPI() })
	return openAPIDoc
}

func (s *Server) openAPI(c echo.Context) error { return c.JSON(http.StatusOK, OpenAPI()) }

func buildOpenAPI() map[string]any {
	schemas := map[string]any{}
	paths := map[string]any{}
	errResp := map[string]any{"description": "Error", "content": map[string]any{"application/json": map[string]any{
		"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
	schemas["Error"] = map[string]any{"type": "object", "required": []string{"code", "message"},
		"properties": map[string]any{"code": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"},
			"field": map[string]any{"type": "string"}, "details": map[string]any{"type": "object"}}}
	for _, r := range allRoutes() {
		path := "/api/v1" + OpenAPIPath(r.path)
		item, _ := paths[path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		var params []any
		for _, seg := range strings.Split(r.path, "/") {
			if strings.HasPrefix(seg, ":") {
				params = append(params, map[string]any{"name": seg[1:], "in": "path", "required": true,
					"schema": map[string]any{"type": "string"}})
			}
		}
		for _, q := range r.query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if r.method != http.MethodGet && r.scope != "" {
			params = append(params,
				map[string]any{"name": "If-Match", "in": "header", "description": "expected version (quoted ETag); 409 if stale",
					"schema": map[string]any{"type": "string"}},
				map[string]any{"name": "X-Vexil-Reason", "in": "header", "description": "why; recorded in the audit log",
					"schema": map[string]any{"type": "string"}})
		}
		op := map[string]any{
			"summary":     r.summary,
			"tags":        []string{r.tag},
			"operationId": operationID(r),
			"responses": map[string]any{
				strconv.Itoa(r.status): response(r.response, schemas),
				"4XX":                  errResp,
				"5XX":                  errResp,
			},
		}
		if gatedRoutes[r.method+" "+r.path] {
			// In a protected environment the change becomes a change request (four eyes).
			op["responses"].(map[string]any)["202"] = response(pendingView{}, schemas)
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.scope != "" {
			op["security"] = []any{map[string]any{"bearer": []string{}}}
			op["description"] = "Requires a token with scope " + r.scope + " or higher. " + reachDescription[reachOf(r)]
			// Machine-readable for clients and for the authorization matrix test, which is
			// generated from this document.
			op["x-vexil-scope"] = r.scope
			op["x-vexil-reach"] = string(reachOf(r))
		}
		if r.request != nil {
			schema := schemaOf(reflect.TypeOf(r.request), schemas)
			content := map[string]any{"application/json": map[string]any{"schema": schema}}
			if r.method == patch {
				// Every PATCH is a JSON Merge Patch (RFC 7396) of the schema: members not sent keep
				// their value, null removes one; plain application/json means the same.
				content[httpapi.MIMEMergePatch] = map[string]any{"schema": schema}
				d, _ := op["description"].(string)
				op["description"] = strings.TrimSpace(d + " A JSON Merge Patch (RFC 7396, " + httpapi.MIMEMergePatch +
					"; application/json is read the same way): members not sent keep their value, null removes an optional one.")
			}
			op["requestBody"] = map[string]any{"required": true, "content": content}
		}
		item[strings.ToLower(r.method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "Vexil management API", "version": "1",
			"description": "Projects, environments, SDK keys, API tokens, flags, segments and audit log."},
		"servers":    []any{map[string]any{"url": "/"}},
		"paths":      paths,
		"components": map[string]any{"schemas": schemas, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
	}
}

// reachDescription tells a reader of the document what a project-restricted token may do.
var reachDescription = map[reach]string{
	reachProject:  "A token restricted to a project may call it for that project only.",
	reachInstance: "Acts on the whole instance: a token restricted to a project may not call it.",
	reachListing:  "A token restricted to a project sees only what lies within its project and scope.",
	reachToken:    "Acts on an API token: only on one within the caller's project and scope (a restricted token never makes or revokes an unrestricted one).",
}

func operationID(r route) string {
	name := strings.ToLower(r.method)
	for _, seg := range strings.Split(r.path, "/") {
		if seg == "" {
			continue
		}
		seg = strings.TrimPrefix(seg, ":")
		seg = strings.ReplaceAll(seg, ".", "_")
		name += "_" + seg
	}
	return name
}

func response(v any, schemas map[string]any) map[string]any {
	if v == nil {
		return map[string]any{"description": "OK"}
	}
	return map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{
		"schema": schemaOf(reflect.TypeOf(v), schemas)}}}
}

var timeType = reflect.TypeOf(time.Time{})

// schemaOf reflects a JSON schema from a Go type, registering named structs as components.
func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	if t.Kind() == reflect.Pointer {
		return schemaOf(t.Elem(), schemas)
	}
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 { // json.RawMessage
			return map[string]any{}
		}
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case reflect.Interface:
		return map[string]any{} // any JSON value
	case reflect.Struct:
		name := componentName(t)
		ref := map[string]any{"$ref": "#/components/schemas/" + name}
		if _, done := schemas[name]; done {
			return ref
		}
		schemas[name] = map[string]any{} // placeholder breaks recursion
		props := map[string]any{}
		addFields(t, props, schemas)
		schemas[name] = map[string]any{"type": "object", "properties": props}
		return ref
	}
	return map[string]any{}
}

func addFields(t reflect.Type, props map[string]any, schemas map[string]any) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			addFields(f.Type, props, schemas)
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
		props[name] = schemaOf(f.Type, schemas)
	}
}

func componentName(t reflect.Type) string {
	name := t.Name()
	// Generic instantiations (page[...]) have long names: keep them readable and unique.
	if i := strings.IndexByte(name, '['); i >= 0 {
		inner := name[i+1 : len(name)-1]
		if j := strings.LastIndexByte(inner, '.'); j >= 0 {
			inner = inner[j+1:]
		}
		name = name[:i] + "_" + inner
	}
	if name == "" {
		return "Anonymous"
	}
	return strings.ToUpper(name[:1]) + name[1:]
}
