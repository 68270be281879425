package testkit_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/testkit"
)

// TestNoWallClockAssertionUnderFiveSeconds reads every _test.go file of the repository and fails
// on a comparison of an elapsed time (time.Since(...), or a variable set from it) against a
// constant duration under testkit.MinWallClockAssertion, and on an SSE/channel deadline helper
// called with such a constant. Grep for MinWallClockAssertion to find the rule.
func TestNoWallClockAssertionUnderFiveSeconds(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, v := range wallClockAssertions(f) {
			rel, _ := filepath.Rel(root, fset.Position(v.pos).Filename)
			found = append(found, rel+":"+strconv.Itoa(fset.Position(v.pos).Line)+": "+v.what)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("wall-clock assertions under %v (assert the behaviour with a generous deadline; put the speed goal in a benchmark or the load tool):\n%s",
			testkit.MinWallClockAssertion, strings.Join(found, "\n"))
	}
}

// The rule catches what it should, and lets through what it should.
func TestWallClockRuleFindsShortLimits(t *testing.T) {
	for src, want := range map[string]int{
		`if time.Since(start) > 3*time.Second { t.Fatal() }`:                                    1,
		`if d := time.Since(start); d > time.Second { t.Fatal() }`:                              1,
		`elapsed := time.Since(start); if elapsed >= 500*time.Millisecond { t.Errorf("slow") }`: 1,
		`if took := time.Since(start); took > 2*time.Second { slow = append(slow, "x") }`:       0,
		`if time.Since(start) > 10*time.Second { t.Fatal() }`:                                   0,
		`if time.Since(start) > 5*time.Second { t.Fatal() }`:                                    0,
		`t.Logf("took %v", time.Since(start))`:                                                  0,
		`if n > 3*time.Second { }`:                                                              0,
	} {
		f, err := parser.ParseFile(token.NewFileSet(), "x_test.go", "package x\nfunc f() {\n"+src+"\n}", 0)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if got := len(wallClockAssertions(f)); got != want {
			t.Errorf("%s: %d findings, want %d", src, got, want)
		}
	}
}

type finding struct {
	pos  token.Pos
	what string
}

// wallClockAssertions lists comparisons of an elapsed time against a short constant duration.
func wallClockAssertions(f *ast.File) []finding {
	elapsed := map[string]bool{} // variables assigned from time.Since in this file
	ast.Inspect(f, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == len(as.Rhs) {
			for i, r := range as.Rhs {
				if isTimeSince(r) {
					if id, ok := as.Lhs[i].(*ast.Ident); ok {
						elapsed[id.Name] = true
					}
				}
			}
		}
		return true
	})
	// An assertion is an if whose condition compares an elapsed time with a constant and whose
	// body fails the test; a comparison that only logs or counts is no assertion.
	var out []finding
	ast.Inspect(f, func(n ast.Node) bool {
		ifs, ok := n.(*ast.IfStmt)
		if !ok || !failsTest(ifs.Body) {
			return true
		}
		ast.Inspect(ifs.Cond, func(n ast.Node) bool {
			b, ok := n.(*ast.BinaryExpr)
			if !ok || (b.Op != token.GTR && b.Op != token.GEQ && b.Op != token.LSS && b.Op != token.LEQ) {
				return true
			}
			for _, pair := range [][2]ast.Expr{{b.X, b.Y}, {b.Y, b.X}} {
				if !isElapsed(pair[0], elapsed) {
					continue
				}
				if d, ok := constDuration(pair[1]); ok && d < testkit.MinWallClockAssertion {
					out = append(out, finding{b.Pos(), "elapsed time compared with " + d.String()})
				}
			}
			return true
		})
		return true
	})
	return out
}

// failsTest reports whether body calls t.Fatal, Fatalf, Error, Errorf or FailNow.
func failsTest(body *ast.BlockStmt) bool {
	fails := false
	ast.Inspect(body, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok {
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				switch sel.Sel.Name {
				case "Fatal", "Fatalf", "Error", "Errorf", "FailNow":
					fails = true
				}
			}
		}
		return !fails
	})
	return fails
}

func isElapsed(e ast.Expr, elapsed map[string]bool) bool {
	if id, ok := e.(*ast.Ident); ok {
		return elapsed[id.Name]
	}
	return isTimeSince(e)
}

func isTimeSince(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "time" && sel.Sel.Name == "Since"
}

// constDuration evaluates N*time.Unit, time.Unit and time.Duration(N)*time.Unit.
func constDuration(e ast.Expr) (time.Duration, bool) {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return constDuration(e.X)
	case *ast.SelectorExpr:
		pkg, ok := e.X.(*ast.Ident)
		if !ok || pkg.Name != "time" {
			return 0, false
		}
		units := map[string]time.Duration{"Nanosecond": time.Nanosecond, "Microsecond": time.Microsecond,
			"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
		d, ok := units[e.Sel.Name]
		return d, ok
	case *ast.BasicLit:
		if e.Kind != token.INT && e.Kind != token.FLOAT {
			return 0, false
		}
		v, err := strconv.ParseFloat(e.Value, 64)
		return time.Duration(v), err == nil
	case *ast.CallExpr: // time.Duration(N)
		if sel, ok := e.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Duration" && len(e.Args) == 1 {
			return constDuration(e.Args[0])
		}
	case *ast.BinaryExpr:
		if e.Op != token.MUL {
			return 0, false
		}
		x, okx := constDuration(e.X)
		y, oky := constDuration(e.Y)
		return x * y, okx && oky
	}
	return 0, false
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
