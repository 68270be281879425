package console_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/roles/console"
)

// Every authenticated operation declares its scope and reach in the OpenAPI document (the
// authorization matrix test in services/platform is generated from them), and the reach agrees
// with the path: project exactly when the path names a {project}.
func TestOpenAPIDocumentDeclaresWhoMayCallEachOperation(t *testing.T) {
	e := echo.New()
	console.NewServer(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), 1<<20).Register(e)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	var doc struct {
		Paths map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	reaches := map[string]int{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			scope, _ := op["x-vexil-scope"].(string)
			reach, _ := op["x-vexil-reach"].(string)
			if op["security"] == nil {
				if path != "/api/v1/openapi.json" || scope != "" || reach != "" {
					t.Errorf("%s %s: public (no security) with scope %q reach %q", method, path, scope, reach)
				}
				continue
			}
			if !slices.Contains([]string{"read", "write", "admin"}, scope) {
				t.Errorf("%s %s: x-vexil-scope %q", method, path, scope)
			}
			if !slices.Contains([]string{"project", "instance", "listing", "token"}, reach) {
				t.Errorf("%s %s: x-vexil-reach %q", method, path, reach)
			}
			if (reach == "project") != strings.Contains(path, "/{project}") {
				t.Errorf("%s %s: reach %q disagrees with the path", method, path, reach)
			}
			if d, _ := op["description"].(string); !strings.Contains(d, "restricted to a project") && !strings.Contains(d, "(a restricted token") {
				t.Errorf("%s %s: the description does not say what a restricted token may do: %q", method, path, d)
			}
			reaches[reach]++
		}
	}
	// The few operations that are not about one project, pinned so a change to them is deliberate.
	for op, want := range map[string]string{
		"get /api/v1/projects": "listing", "post /api/v1/projects": "instance",
		"get /api/v1/tokens": "listing", "post /api/v1/tokens": "token", "delete /api/v1/tokens/{id}": "token",
	} {
		method, path, _ := strings.Cut(op, " ")
		if got := doc.Paths[path][method]["x-vexil-reach"]; got != want {
			t.Errorf("%s: reach %v, want %s", op, got, want)
		}
	}
	if reaches["project"] < 70 {
		t.Errorf("only %d project operations: %v", reaches["project"], reaches)
	}
}
