package testkit_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/services/testkit"
)

func TestFigureAppendsALinePerCallNamedByTheTest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "figures.txt")
	t.Setenv(testkit.FiguresEnv, path)
	testkit.Figure(t, "recovery: %d ms", 120)
	t.Run("sub", func(t *testing.T) { testkit.Figure(t, "open for %s", "3s") })
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "TestFigureAppendsALinePerCallNamedByTheTest: recovery: 120 ms\n" +
		"TestFigureAppendsALinePerCallNamedByTheTest/sub: open for 3s\n"
	if string(got) != want {
		t.Fatalf("figures file:\n%s\nwant:\n%s", got, want)
	}
}

func TestFigureWithoutTheFileOnlyLogs(t *testing.T) {
	t.Setenv(testkit.FiguresEnv, "")
	dir := t.TempDir()
	testkit.Figure(t, "nothing written")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 || strings.Contains(os.Getenv(testkit.FiguresEnv), "figures") {
		t.Fatalf("Figure wrote something without %s: %v %v", testkit.FiguresEnv, entries, err)
	}
}
