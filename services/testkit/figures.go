package testkit

import (
	"fmt"
	"os"
	"testing"
)

// FiguresEnv names the file Figure appends to. CI sets it for its one run of the test suite and
// prints the file afterwards: a passing test's log is hidden without -v, and running the
// measuring tests a second time only to show their figures cost minutes of CI.
const FiguresEnv = "VEXIL_TEST_FIGURES"

// Figure logs a measured figure (a recovery time, which engine ran) and, when $VEXIL_TEST_FIGURES
// names a file, appends it there as one line prefixed with the test's name. Packages run as
// separate processes; each line is one O_APPEND write, so lines from parallel tests do not mix.
func Figure(tb testing.TB, format string, args ...any) {
	tb.Helper()
	line := fmt.Sprintf(format, args...)
	tb.Log(line)
	path := os.Getenv(FiguresEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		tb.Errorf("testkit: the figures file %s: %v", path, err)
		return
	}
	defer func() { _ = f.Close() }()
	if _, err := f.WriteString(tb.Name() + ": " + line + "\n"); err != nil {
		tb.Errorf("testkit: writing to the figures file %s: %v", path, err)
	}
}
