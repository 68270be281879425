package config_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/services/platform/config"
)

// readmeRow is a row of the README's configuration table: | `VEXIL_X` | `--x` | default | meaning |
var readmeRow = regexp.MustCompile("^\\| `(VEXIL_[A-Z0-9_]+)` \\| `--([a-z0-9-]+)` \\|")

// The README's configuration table and the settings list are one documentation: every setting
// appears in the table with its flag, and the table names no setting that does not exist (issue
// 20: VEXIL_SCHEDULER_INTERVAL and VEXIL_AUTOOPS_INTERVAL were missing).
func TestREADMEConfigurationTableListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]string{} // variable -> flag
	var order []string
	for _, line := range strings.Split(string(b), "\n") {
		if m := readmeRow.FindStringSubmatch(line); m != nil {
			if _, dup := table[m[1]]; dup {
				t.Errorf("README: %s has two rows", m[1])
			}
			table[m[1]] = m[2]
			order = append(order, m[1])
		}
	}
	if len(table) == 0 {
		t.Fatal("README: no configuration table rows found (| `VEXIL_X` | `--x` | ... |)")
	}
	listed := map[string]bool{}
	for _, s := range config.Settings() {
		env, flag := s[0], strings.TrimPrefix(s[1], "--")
		listed[env] = true
		got, ok := table[env]
		switch {
		case !ok:
			t.Errorf("README's configuration table lacks %s (--%s)", env, flag)
		case got != flag:
			t.Errorf("README: %s is given flag --%s, the settings say --%s", env, got, flag)
		}
	}
	for _, env := range order {
		if !listed[env] {
			t.Errorf("README's configuration table documents %s, which is no setting", env)
		}
	}
	if t.Failed() {
		slices.Sort(order)
		t.Logf("table rows: %v", order)
	}
}
