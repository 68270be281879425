package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/services/platform"
)

// `vexil help` is the command's output: stdout, nothing on stderr. A mistake prints usage to stderr.
func TestHelpGoesToStdout(t *testing.T) {
	var out, errOut bytes.Buffer
	m := &platform.Main{Stdout: &out, Stderr: &errOut, Lookup: func(string) (string, bool) { return "", false }}
	if err := m.Run(context.Background(), []string{"help"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "vexil serve") || errOut.Len() != 0 {
		t.Fatalf("help: stdout %d bytes, stderr %q", out.Len(), errOut.String())
	}
	out.Reset()
	if err := m.Run(context.Background(), []string{"frobnicate"}); err == nil || out.Len() != 0 || !strings.Contains(errOut.String(), "Usage:") {
		t.Fatalf("unknown command: err %v, stdout %q", err, out.String())
	}
}

// --demo takes the flag package's boolean forms; a value that is not a boolean is refused before
// anything is opened.
func TestServeDemoFlagForms(t *testing.T) {
	m := &platform.Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Lookup: func(string) (string, bool) { return "", false }}
	err := m.Run(context.Background(), []string{"serve", "--demo=maybe"})
	if err == nil || !strings.Contains(err.Error(), "--demo=maybe") {
		t.Fatalf("serve --demo=maybe: %v", err)
	}
	// An unknown flag after a valid --demo=true reaches the configuration parser, which names it:
	// so --demo=true itself was taken.
	err = m.Run(context.Background(), []string{"serve", "--demo=true", "--no-such-flag"})
	if err == nil || strings.Contains(err.Error(), "demo") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("serve --demo=true --no-such-flag: %v", err)
	}
}

// An operator who lost every admin token gets one back from the command line: the token works on
// the running platform, and its creation is in the audit log under the operating-system user.
func TestTokensCreateFromTheCommandLine(t *testing.T) {
	t.Parallel()
	v := startVexil(t)
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		m := &platform.Main{Stdout: &out, Stderr: &errOut, Lookup: func(string) (string, bool) { return "", false }}
		err := m.Run(context.Background(), append(args, "--database-url", v.tv.Database, "--redis-url", v.tv.Redis,
			"--stream-prefix", v.tv.Prefix))
		return out.String(), err
	}
	// The bootstrap admin token is revoked: nobody can manage the installation over HTTP.
	list, err := run("tokens", "list")
	if err != nil {
		t.Fatal(err)
	}
	var tokens []map[string]any
	if err := json.Unmarshal([]byte(list), &tokens); err != nil || len(tokens) != 1 {
		t.Fatalf("tokens list: %v %s", err, list)
	}
	if _, err := run("tokens", "revoke", tokens[0]["id"].(string), "--reason", "rotation gone wrong"); err != nil {
		t.Fatal(err)
	}
	if r := v.do("GET", "/api/v1/projects", nil); r.Status != 401 {
		t.Fatalf("revoked bootstrap token: %d", r.Status)
	}
	if _, err := run("tokens", "create"); err == nil || !strings.Contains(err.Error(), "--scope") {
		t.Fatalf("create without --scope: %v", err)
	}
	out, err := run("tokens", "create", "--scope", "admin", "--name", "recovered")
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(out), &created); err != nil || created["scope"] != "admin" {
		t.Fatalf("tokens create: %v %s", err, out)
	}
	admin := v.as(created["token"].(string))
	admin.must(201, "POST", "/api/v1/projects", map[string]any{"key": "after", "name": "After recovery"})
	// Both changes are events of the token streams, attributed to the person at the command line.
	if n := v.tv.Count(`SELECT count(*) FROM events WHERE event_type IN ('TokenRevoked', 'TokenIssued')
		AND metadata->>'actor' LIKE 'cli:%@%' AND (event_type = 'TokenIssued' OR metadata->>'reason' = 'rotation gone wrong')`); n != 2 {
		t.Fatalf("%d token events attributed to the command line, want 2", n)
	}
}
