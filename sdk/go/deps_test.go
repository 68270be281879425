package vexil_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// serverOnly are module paths of the platform's own dependencies, which an application that
// imports the SDK must not build, link or download.
var serverOnly = []string{
	"github.com/jackc/", "github.com/ThreeDotsLabs/", "github.com/labstack/", "github.com/redis/",
	"github.com/prometheus/", "github.com/golang-migrate/", "github.com/chromedp/", "gonum.org/",
}

func isServerOnly(path string) bool {
	for _, p := range serverOnly {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// The example application (its own module, as an application is) builds the SDK and the
// server's evaluator without any of the platform's dependencies: not one of their packages is
// in its build, its go.mod requires none of them, and its go.sum holds none (they are never
// downloaded). The module graph lists them only as requirements of the root module, and goes
// no further (graph pruning, Go >= 1.17): their own requirements are never loaded.
func TestApplicationDoesNotPullThePlatformsDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("this test runs the go command, which is not in PATH: %v", err)
	}
	app := filepath.Join("examples", "quickstart")
	deps := strings.Fields(goCmd(t, app, "list", "-deps", "./..."))
	sawEvaluator := false
	for _, d := range deps {
		if isServerOnly(d) {
			t.Errorf("the application builds %s", d)
		}
		if strings.HasPrefix(d, "github.com/vexil-flags/vexil/") && !strings.HasPrefix(d, "github.com/vexil-flags/vexil/domain") &&
			!strings.HasPrefix(d, "github.com/vexil-flags/vexil/sdk/go") {
			t.Errorf("the application builds %s, a package of the platform beyond domain/", d)
		}
		sawEvaluator = sawEvaluator || d == "github.com/vexil-flags/vexil/domain/evaluation"
	}
	if !sawEvaluator {
		t.Errorf("the application does not build domain/evaluation: %v", deps)
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(app, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if fields := strings.Fields(line); len(fields) > 0 && isServerOnly(fields[0]) {
				t.Errorf("the application's %s lists %s", f, line)
			}
		}
	}
	for _, edge := range strings.Split(strings.TrimSpace(goCmd(t, app, "mod", "graph")), "\n") {
		from, to, _ := strings.Cut(edge, " ")
		switch {
		case isServerOnly(from):
			t.Errorf("the module graph loads the requirements of %s: %s", from, edge)
		case isServerOnly(to) && !strings.HasPrefix(from, "github.com/vexil-flags/vexil@"):
			t.Errorf("the module graph requires %s through %s", to, from)
		}
	}
}
