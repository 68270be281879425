package domain_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// forbiddenImports are standard packages the domain must not import directly: they reach the
// operating system, the network, a database or the process's log output. (Many standard packages
// depend on os internally, e.g. fmt, so this checks direct imports, not all dependencies.)
var forbiddenImports = []string{"os", "os/exec", "os/signal", "os/user", "net", "net/http", "database/sql",
	"syscall", "log", "log/slog", "plugin", "unsafe"}

// forbiddenPrefixes rule out whole trees: net/*, database/*, os/*.
var forbiddenPrefixes = []string{"net/", "database/", "os/"}

// allowedModules are the only non-standard modules the domain may depend on, besides itself.
var allowedModules = []string{"gonum.org/v1/gonum", "github.com/vexil-flags/vexil/domain"}

// TestDomainIsPure enforces that domain/ (and its subpackages) depend only on the standard
// library and gonum, and import nothing that touches the OS, the network or a database. Test
// files are exempt: they may use os and exec (this one does).
func TestDomainIsPure(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	run := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command(goBin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				lines = append(lines, l)
			}
		}
		return lines
	}

	// Every dependency, direct or not, is standard or an allowed module. The test runs in the
	// package directory, so "./..." is domain and its subpackages.
	deps := run("list", "-e", "-deps", "-f", "{{.ImportPath}}", "./...")
	for _, d := range deps {
		if !allowed(d) {
			t.Errorf("domain depends on %s: only the standard library and gonum are allowed", d)
		}
	}
	// Each domain package's own imports avoid the forbidden standard packages.
	for _, line := range run("list", "-e", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", "./...") {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Fields(imports) {
			if forbidden(imp) {
				t.Errorf("%s imports %s: the domain must not touch the OS, network, database or logs", pkg, imp)
			}
		}
	}
	if !slices.Contains(deps, "github.com/vexil-flags/vexil/domain") {
		t.Fatalf("go list did not list the domain package: %v", deps)
	}
}

// TestPurityRules checks the checker, so that a silent rule cannot pass everything.
func TestPurityRules(t *testing.T) {
	for path, want := range map[string]bool{
		"fmt": true, "encoding/json": true, "vendor/golang.org/x/crypto/chacha20": true,
		"gonum.org/v1/gonum/stat": true, "github.com/vexil-flags/vexil/domain/evaluation": true,
		"github.com/vexil-flags/vexil/services/adapters/postgres": false, "github.com/jackc/pgx/v5": false,
		"gonum.org/v1/gonumx": false, "golang.org/x/exp/slices": false,
	} {
		if got := allowed(path); got != want {
			t.Errorf("allowed(%q) = %v, want %v", path, got, want)
		}
	}
	for path, want := range map[string]bool{
		"os": true, "os/exec": true, "net": true, "net/http": true, "net/netip": true, "database/sql": true,
		"syscall": true, "log": true, "log/slog": true, "fmt": false, "time": false, "crypto/sha256": false, "osx": false,
	} {
		if got := forbidden(path); got != want {
			t.Errorf("forbidden(%q) = %v, want %v", path, got, want)
		}
	}
}

func allowed(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	if !strings.Contains(first, ".") {
		return true // standard library
	}
	for _, m := range allowedModules {
		if path == m || strings.HasPrefix(path, m+"/") {
			return true
		}
	}
	return false
}

func forbidden(path string) bool {
	for _, f := range forbiddenImports {
		if path == f {
			return true
		}
	}
	for _, p := range forbiddenPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
