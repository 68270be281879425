package web_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// The committed htmx (services/roles/web/static/vendor, embedded so that a fresh clone serves the
// console without a build step) must be byte for byte the file of the npm package pinned in
// deploy/console's lock file, with its licence beside it: nobody edits a vendored file by hand,
// and an upgrade is `npm install htmx.org@X` there plus a copy (see docs/web-console.md).
func TestVendoredHTMXEqualsTheNPMPackage(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "deploy", "console")
	npmCI(t, dir)
	for vendored, pkg := range map[string]string{
		"static/vendor/htmx.min.js":  "node_modules/htmx.org/dist/htmx.min.js",
		"static/vendor/htmx.LICENSE": "node_modules/htmx.org/LICENSE",
	} {
		got, err := os.ReadFile(vendored)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, pkg))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the npm package's %s: copy it again (cp deploy/console/%s services/roles/web/%s)", vendored, pkg, pkg, vendored)
		}
	}
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &lock); err != nil {
		t.Fatal(err)
	}
	if v := lock.Packages["node_modules/htmx.org"].Version; v == "" {
		t.Fatal("deploy/console/package-lock.json pins no htmx.org")
	} else {
		t.Logf("vendored htmx.org %s", v)
	}
}

// npmCI installs dir's packages from its lock file when they are missing or older than it. A file
// lock keeps parallel test processes (this one and the browser test) from installing at once.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	installed, err1 := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	locked, err2 := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err2 != nil {
		t.Fatal(err2)
	}
	if err1 == nil && !installed.ModTime().Before(locked.ModTime()) {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("this test compares the vendored htmx with its npm package (deploy/console) and npm is not on PATH; .ci/run installs it")
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}
