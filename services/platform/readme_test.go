package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// readmeStep is one command of a README block marked `sh test`, with the answer it documents.
type readmeStep struct {
	line    int    // in README.md, for messages
	command string // shell text, possibly several lines
	status  int    // 0: no documented answer (the command must only succeed)
	want    any    // documented JSON fields, nil when none
}

var expectLine = regexp.MustCompile(`^# => (\d{3})(?: (.*))?$`)

// readmeSteps extracts the steps of every ```sh test block: a "# => STATUS JSON" line closes the
// command before it; a block's other lines run as they are.
func readmeSteps(t *testing.T, readme string) []readmeStep {
	t.Helper()
	var steps []readmeStep
	var cur []string
	start, in := 0, false
	flush := func(status int, want any) {
		if strings.TrimSpace(strings.Join(cur, "\n")) != "" {
			steps = append(steps, readmeStep{line: start, command: strings.Join(cur, "\n"), status: status, want: want})
		}
		cur = nil
	}
	for i, line := range strings.Split(readme, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```sh test":
			in, start = true, i+2
		case in && strings.TrimSpace(line) == "```":
			flush(0, nil)
			in = false
		case in:
			if m := expectLine.FindStringSubmatch(line); m != nil {
				status, _ := strconv.Atoi(m[1])
				var want any
				if m[2] != "" {
					if err := json.Unmarshal([]byte(m[2]), &want); err != nil {
						t.Fatalf("README.md:%d: the documented answer is not JSON: %v", i+1, err)
					}
				}
				flush(status, want)
				start = i + 2
				continue
			}
			if len(cur) == 0 {
				start = i + 1
			}
			cur = append(cur, line)
		}
	}
	return steps
}

// matches reports where got differs from want: objects must have want's keys (more are fine),
// "…" matches any value, a string ending in "…" matches its prefix, and a list ending in "…" may
// go on past the elements given.
func matches(path string, want, got any) string {
	switch w := want.(type) {
	case string:
		if w == "…" {
			return ""
		}
		if prefix, ok := strings.CutSuffix(w, "…"); ok {
			if g, isString := got.(string); isString && strings.HasPrefix(g, prefix) {
				return ""
			}
		} else if got == w {
			return ""
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		for k, wv := range w {
			gv, present := g[k]
			if !present {
				return fmt.Sprintf("%s.%s is missing", path, k)
			}
			if d := matches(path+"."+k, wv, gv); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		open := len(w) > 0 && w[len(w)-1] == "…"
		if open {
			w = w[:len(w)-1]
		}
		if len(g) < len(w) || (!open && len(g) != len(w)) {
			return fmt.Sprintf("%s has %d elements, want %d%s", path, len(g), len(w), map[bool]string{true: " or more"}[open])
		}
		for i := range w {
			if d := matches(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); d != "" {
				return d
			}
		}
		return ""
	default:
		if fmt.Sprint(want) == fmt.Sprint(got) {
			return ""
		}
	}
	return fmt.Sprintf("%s is %v, want %v", path, got, want)
}

// TestREADMEExamples runs the README's shell examples (blocks marked `sh test`) in order, in one
// shell, against a platform started with the demo as `serve --demo` starts it, and compares each
// documented answer with the real one. A README that drifts from the code fails here.
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the README examples use curl: install it (apt-get install curl)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps := readmeSteps(t, string(readme))
	if len(steps) < 6 {
		t.Fatalf("only %d README steps found", len(steps))
	}
	tv := ingesttest.StartWith(t, func(p *platform.Platform) { p.NotReadyUntil("seeding the demo project") },
		"--demo-traffic", "0")
	if _, err := tv.P.StartDemo(context.Background()); err != nil {
		t.Fatal(err)
	}

	// One script, so exports carry from block to block as in a reader's terminal. curl is wrapped
	// to keep each step's status and body; the README's address becomes the test platform's.
	out := t.TempDir()
	var script strings.Builder
	fmt.Fprintf(&script, "set -u\ncd %q\n", root)
	fmt.Fprintf(&script, "curl() { command curl -sS -o \"$OUT/$STEP.body\" -w '%%{http_code}' \"$@\" > \"$OUT/$STEP.status\"; }\n")
	for i, s := range steps {
		cmd := strings.ReplaceAll(s.command, "http://127.0.0.1:8080", tv.Base)
		fmt.Fprintf(&script, "STEP=%d\n%s\necho $? > \"$OUT/%d.rc\"\n", i, cmd, i)
	}
	sh := exec.Command("bash", "-c", script.String())
	gobin := t.TempDir()
	sh.Env = append(os.Environ(), "OUT="+out, "GOBIN="+gobin, "PATH="+gobin+":"+os.Getenv("PATH"),
		"VEXIL_DATABASE_URL="+tv.Database, "VEXIL_REDIS_URL="+tv.Redis, "VEXIL_STREAM_PREFIX="+tv.Prefix, "VEXIL_LOG_LEVEL=warn")
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the README script failed: %v\n%s", err, b)
	}
	for i, s := range steps {
		rc, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.rc", i)))
		if err != nil || strings.TrimSpace(string(rc)) != "0" {
			t.Errorf("README.md:%d: exit status %q (%v):\n%s", s.line, strings.TrimSpace(string(rc)), err, s.command)
			continue
		}
		if s.status == 0 {
			continue
		}
		status, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.status", i)))
		body, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.body", i)))
		if got := strings.TrimSpace(string(status)); got != strconv.Itoa(s.status) {
			t.Errorf("README.md:%d: status %s, documented %d: %s\n%s", s.line, got, s.status, body, s.command)
			continue
		}
		if s.want == nil {
			continue
		}
		var got any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("README.md:%d: the answer is not JSON: %s", s.line, body)
			continue
		}
		if d := matches("answer", s.want, got); d != "" {
			t.Errorf("README.md:%d: %s\nanswer: %.800s", s.line, d, body)
		}
	}
}
