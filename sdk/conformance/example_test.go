package conformance_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/testkit"
)

// The example application of sdk/go runs against the demo platform (as its comment tells a
// reader to) and reads the demo's flags locally.
func TestQuickstartExampleRunsAgainstTheDemo(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("this test builds the example with the go command, which is not in PATH: %v", err)
	}
	s := startServer(t, "--demo-traffic", "0")
	res, err := s.p.StartDemo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var key string
	for _, e := range res.Environments {
		if e.Key == "production" {
			key = e.ServerKey
		}
	}
	testkit.WaitFor(t, 30*time.Second, "the api role to serve the demo", func() bool {
		a, status := ofrepSingle(t, s.base(), key, "new-checkout", map[string]any{"targetingKey": "user-0"})
		return status == 200 && a.Reason != ""
	})
	dir := t.TempDir()
	bin := filepath.Join(dir, "quickstart")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "go", "examples", "quickstart")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := exec.Command(bin)
	run.Env = append(os.Environ(), "VEXIL_URL="+s.base(), "VEXIL_SERVER_KEY="+key, "TMPDIR="+dir)
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("the example failed: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Count(text, "new-checkout=") != 5 || !strings.Contains(text, "ruleset version") || strings.Contains(text, "FLAG_NOT_FOUND") {
		t.Fatalf("the example's output:\n%s", text)
	}
	// It saved the ruleset it downloaded, to start from when the server is unreachable.
	if _, err := os.Stat(filepath.Join(dir, "vexil-quickstart-ruleset.json")); err != nil {
		t.Fatalf("no bootstrap file saved: %v", err)
	}
	t.Logf("the example's output:\n%s", text)
}
