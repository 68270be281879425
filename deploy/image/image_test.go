// Package image_test checks the container image's Dockerfile without Docker (CI has no daemon): it
// reads the Dockerfile, runs its build command for the same target, and checks the binary is
// static and the final stage runs as a non-root user with a health check the binary understands.
package image_test

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, USER, ...
	Args string
}

type stage struct {
	From, Name   string
	Instructions []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		if in.Cmd == "FROM" {
			fields := strings.Fields(in.Args)
			s := stage{From: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.Name = fields[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				t.Fatalf("%s before the first FROM", in.Cmd)
			}
			return
		}
		stages[len(stages)-1].Instructions = append(stages[len(stages)-1].Instructions, in)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue // comments (and the syntax directive) may sit between continuation lines
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return stages
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.Instructions {
		if in.Cmd == cmd {
			out = append(out, in.Args)
		}
	}
	return out
}

// shellWords splits a RUN line the way sh does for the simple quoting the Dockerfile uses.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

func TestDockerfileBuildsAStaticNonRootImage(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stages", len(stages))
	}
	final := stages[len(stages)-1]

	// The build stage's go build: static, of the command package, into the path the final stage copies.
	var build []string
	var buildStage string
	for _, s := range stages[:len(stages)-1] {
		for _, run := range s.all("RUN") {
			if w := shellWords(run); slices.Contains(w, "go") && slices.Contains(w, "build") {
				build, buildStage = w, s.Name
			}
		}
	}
	if build == nil {
		t.Fatal("no RUN go build in a build stage")
	}
	var env []string
	for len(build) > 0 && strings.Contains(build[0], "=") {
		env, build = append(env, build[0]), build[1:]
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Fatalf("the build is not static: env %v", env)
	}
	if build[len(build)-1] != "./services/vexil" {
		t.Fatalf("the image builds %q, not ./services/vexil", build[len(build)-1])
	}
	o := slices.Index(build, "-o")
	if o < 0 {
		t.Fatalf("go build without -o: %v", build)
	}
	out := build[o+1]
	var copied bool
	for _, c := range final.all("COPY") {
		if strings.HasPrefix(c, "--from="+buildStage+" "+out+" ") {
			copied = true
		}
	}
	if !copied {
		t.Fatalf("the final stage does not COPY --from=%s %s", buildStage, out)
	}

	// Non-root: the last USER of the final stage is neither root nor uid 0.
	users := final.all("USER")
	if len(users) == 0 {
		t.Fatal("the final stage has no USER: it would run as root")
	}
	user, _, _ := strings.Cut(users[len(users)-1], ":")
	if user == "root" || user == "0" {
		t.Fatalf("the final stage runs as %q", users[len(users)-1])
	}
	hc := final.all("HEALTHCHECK")
	if len(hc) != 1 || !strings.Contains(hc[0], "CMD") {
		t.Fatalf("the final stage's HEALTHCHECK: %v", hc)
	}
	_, hcCmd, _ := strings.Cut(hc[0], "CMD")
	var hcArgv []string
	if err := json.Unmarshal([]byte(strings.TrimSpace(hcCmd)), &hcArgv); err != nil || len(hcArgv) < 2 {
		t.Fatalf("HEALTHCHECK CMD is not an exec-form array (the image has no shell): %q", hcCmd)
	}
	labels := strings.Join(final.all("LABEL"), " ")
	for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.licenses"} {
		if !strings.Contains(labels, l) {
			t.Errorf("label %s missing", l)
		}
	}

	// Build it the same way, here.
	bin := filepath.Join(t.TempDir(), "vexil")
	build[o+1] = bin
	cmd := exec.Command("go", build[1:]...) // build[0] is "go"
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if outp, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", build, err, outp)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the binary is dynamically linked (%v): it would not start on a distroless static base", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs %v", libs)
	}
	if runtime.GOOS != "linux" {
		return // the binary was built for Linux (GOOS=linux): it runs only there
	}
	// The HEALTHCHECK's subcommand exists in the binary: with nothing listening it fails as a health
	// check, not as an unknown command.
	hcRun := exec.Command(bin, hcArgv[1:]...)
	hcRun.Env = []string{"VEXIL_HTTP_ADDR=127.0.0.1:1"}
	outp, err := hcRun.CombinedOutput()
	if err == nil || !strings.Contains(string(outp), "healthcheck:") {
		t.Fatalf("%v against nothing: %v %s", hcArgv, err, outp)
	}
	v, err := exec.Command(bin, "version", "--json").Output()
	if err != nil || !strings.Contains(string(v), `"module":"github.com/vexil-flags/vexil"`) {
		t.Fatalf("vexil version: %v %s", err, v)
	}
}
