package platform_test

import (
	"bytes"
	"context"
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
