// Package compose_test checks deploy/compose/compose.yaml without Docker: it decodes the file
// strictly, and checks the services the deployment promises, that every VEXIL_* variable is one
// of the configuration table's, that every long-running service has a health check and waits
// for what it needs, and that the files it mounts exist.
package compose_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/platform/config"
)

type healthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
	Disable     bool     `yaml:"disable"`
}

type service struct {
	Image       string            `yaml:"image"`
	Build       map[string]string `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Restart     string            `yaml:"restart"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *healthcheck `yaml:"healthcheck"`
}

type composeFile struct {
	Name       string             `yaml:"name"`
	Services   map[string]service `yaml:"services"`
	Volumes    map[string]any     `yaml:"volumes"`
	Extensions map[string]any     `yaml:",inline"` // x-… anchors
}

func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true) // a misspelt key fails here, not at `docker compose up`
	var f composeFile
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	for k := range f.Extensions {
		if !strings.HasPrefix(k, "x-") {
			t.Errorf("unknown top-level key %q", k)
		}
	}
	known := map[string]bool{}
	for _, s := range config.Settings() {
		known[s[0]] = true
	}
	roles := map[string]int{}
	for name, s := range f.Services {
		for k := range s.Environment {
			if strings.HasPrefix(k, "VEXIL_") && !known[k] && !strings.HasPrefix(k, "VEXIL_GRAFANA_") {
				t.Errorf("%s: %s is not in the configuration table (services/platform/config)", name, k)
			}
		}
		if r := s.Environment["VEXIL_ROLES"]; r != "" {
			parsed, err := config.ParseRoles(r)
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			for _, role := range parsed {
				roles[role]++
			}
			if s.Environment["VEXIL_DATABASE_URL"] == "" || s.Environment["VEXIL_REDIS_URL"] == "" {
				t.Errorf("%s: no database or Redis URL", name)
			}
			if d, ok := s.DependsOn["migrate"]; !ok || d.Condition != "service_completed_successfully" {
				t.Errorf("%s: does not wait for the migrations", name)
			}
		}
		if s.Healthcheck == nil || (s.Healthcheck.Disable && name != "migrate") || (!s.Healthcheck.Disable && len(s.Healthcheck.Test) < 2) {
			t.Errorf("%s: no health check", name)
		}
		for dep, d := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("%s depends on %s, which is not a service", name, dep)
			}
			if !slices.Contains([]string{"service_healthy", "service_completed_successfully"}, d.Condition) {
				t.Errorf("%s: depends on %s without a condition", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(".", src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	want := map[string]int{config.RoleConsole: 1, config.RoleAPI: 2, config.RoleProjector: 2, config.RoleExperiment: 1, config.RoleRelay: 1}
	for role, n := range want {
		if roles[role] != n {
			t.Errorf("role %s runs in %d services, want %d", role, roles[role], n)
		}
	}
	for _, name := range []string{"timescaledb", "redis", "proxy", "prometheus", "grafana"} {
		if _, ok := f.Services[name]; !ok {
			t.Errorf("no %s service", name)
		}
	}
	if img := f.Services["timescaledb"].Image; !strings.HasPrefix(img, "timescale/timescaledb:") || strings.HasSuffix(img, ":latest") {
		t.Errorf("timescaledb image %q is not the official image pinned to a version", img)
	}
	checkTimescaleWorkers(t, f.Services["timescaledb"])
	if !slices.Contains(f.Services["redis"].Command, "--appendonly") {
		t.Error("redis runs without AOF")
	}
	// Prometheus scrapes every Vexil process.
	prom, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range f.Services {
		if s.Environment["VEXIL_ROLES"] != "" && !strings.Contains(string(prom), name+":8080") {
			t.Errorf("prometheus.yml does not scrape %s", name)
		}
	}
}

// checkTimescaleWorkers reads the server settings the timescaledb service passes with -c and runs
// them through the start-up checks Vexil itself runs against the server (postgres.ServerSettings):
// the compose file must not start a server that Vexil's first start warns about.
func checkTimescaleWorkers(t *testing.T, s service) {
	t.Helper()
	settings := map[string]string{}
	for i, arg := range s.Command {
		if arg == "-c" && i+1 < len(s.Command) {
			k, v, _ := strings.Cut(s.Command[i+1], "=")
			settings[k] = v
		}
	}
	atoi := func(name string) int {
		n, err := strconv.Atoi(settings[name])
		if err != nil {
			t.Fatalf("timescaledb: %s is not set with -c in its command (%q): PostgreSQL's default cannot run Vexil's jobs", name, s.Command)
		}
		return n
	}
	server := postgres.ServerSettings{PostgresVersionNum: 160000, PostgresVersion: "16", TimescaleVersion: "2.17.2", TimescaleCreated: true,
		MaxWorkerProcesses: atoi("max_worker_processes"), MaxBackgroundWorkers: atoi("timescaledb.max_background_workers"), TimescaleDatabases: 1}
	if w := server.Warnings(); len(w) > 0 {
		t.Errorf("Vexil would warn about the compose file's TimescaleDB settings: %q", w)
	}
	const parallelWorkers = 8 // PostgreSQL's default max_parallel_workers, which shares the pool
	if server.MaxWorkerProcesses < server.MaxBackgroundWorkers+1+parallelWorkers {
		t.Errorf("max_worker_processes = %d leaves no room for parallel query workers beside %d TimescaleDB workers and the launcher",
			server.MaxWorkerProcesses, server.MaxBackgroundWorkers)
	}
}
