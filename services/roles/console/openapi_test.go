package console_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/roles/console"
)

// The OpenAPI document and the registered routes must describe the same API: every route echo
// serves under /api/v1 is documented with its method, and every documented operation is served.
func TestOpenAPIDocumentMatchesRegisteredRoutes(t *testing.T) {
	e := echo.New()
	console.NewServer(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), 1<<20).Register(e)

	registered := map[string]bool{}
	for _, r := range e.Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/") || r.Method == echo.RouteNotFound {
			continue
		}
		registered[r.Method+" "+console.OpenAPIPath(r.Path)] = true
	}

	// Fetch the document over HTTP, as a client would.
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d", rec.Code)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Comps   struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	patches := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
			if op["summary"] == "" || op["responses"] == nil || op["operationId"] == "" {
				t.Errorf("%s %s lacks a summary, responses or operationId", method, path)
			}
			// Every path parameter is declared.
			declared := map[string]bool{}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := p.(map[string]any)
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
				}
			}
			for _, seg := range strings.Split(path, "/") {
				if strings.HasPrefix(seg, "{") && !declared[strings.Trim(seg, "{}")] {
					t.Errorf("%s %s does not declare path parameter %s", method, path, seg)
				}
			}
			// Every PATCH is a JSON Merge Patch and says so.
			if method == "patch" {
				patches++
				body, _ := op["requestBody"].(map[string]any)
				content, _ := body["content"].(map[string]any)
				if content["application/merge-patch+json"] == nil || content["application/json"] == nil {
					t.Errorf("PATCH %s does not declare application/merge-patch+json and application/json: %v", path, body)
				}
			}
		}
	}
	if patches < 4 {
		t.Errorf("%d PATCH operations documented, want projects, environments, flags and goals", patches)
	}
	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !registered[d] {
			extra = append(extra, d)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("routes not documented: %v\ndocumented but not served: %v", missing, extra)
	}
	if len(registered) < 30 {
		t.Fatalf("only %d routes registered", len(registered))
	}
	// Request and response schemas resolve.
	for _, name := range []string{"Flag", "Targeting", "Clause", "Segment", "Error", "Project"} {
		if doc.Comps.Schemas[name] == nil {
			t.Errorf("schema %s missing", name)
		}
	}
}
