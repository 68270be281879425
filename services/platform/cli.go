package platform

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/roles/projector"
	"github.com/vexil-flags/vexil/services/roles/replay"
)

const usage = `vexil: event-sourced feature flags and experiments

Usage:
  vexil serve [--demo] [flags]        run the platform (every role by default; --roles to choose;
                                      --roles edge --upstream URL --edge-token T: an edge, no database)
  vexil migrate up|down N|version|force V [flags]
  vexil migrate timescale [flags]     convert a database migrated on plain PostgreSQL to TimescaleDB
                                      (hypertables, continuous aggregates) once the server preloads it
  vexil seed demo [--shell ENV] [flags] create the demo project (idempotent) and print its SDK keys
                                      (--shell: as export lines of ENV's keys, for eval)
  vexil grafana-role [flags]          create/update the read-only role of Grafana's datasource
                                      (VEXIL_GRAFANA_DB_USER, default vexil_grafana, and
                                      VEXIL_GRAFANA_DB_PASSWORD, as the provisioning reads them)
  vexil tokens create --scope admin [--name N] [--project P] [flags]
                                      create an API token from the command line (prints it once);
                                      also: vexil tokens list, vexil tokens revoke ID
  vexil users create --email E --name N [--admin] [--project P --role R] [flags]
                                      create a person of the web console (password from
                                      VEXIL_USER_PASSWORD or stdin); --admin: instance admin;
                                      also: vexil users list, vexil users revoke-sessions EMAIL
  vexil audit verify [--heads] [flags] verify the event store's hash chains; exit 1 on any problem
  vexil replay [--verify] [flags]     rebuild every read model from the event store and swap it in;
                                      --verify compares instead and exits 1 on any difference
  vexil version [--json]              module version, commit, commit time and modified flag of this build
  vexil healthcheck [flags]           GET /healthz on --http-addr; exit 1 unless it answers 200
  vexil help                          this text

Flags (each also read from its environment variable):
`

// Main is the vexil command line.
type Main struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader                   // os.Stdin by default (the password of `vexil users create`)
	Lookup         func(string) (string, bool) // environment; os.LookupEnv by default
}

// Run executes one command line (without the program name).
func (m *Main) Run(ctx context.Context, args []string) error {
	if m.Stdout == nil {
		m.Stdout = os.Stdout
	}
	if m.Stderr == nil {
		m.Stderr = os.Stderr
	}
	if m.Lookup == nil {
		m.Lookup = os.LookupEnv
	}
	if len(args) == 0 {
		m.printUsage(m.Stderr)
		return fmt.Errorf("no command given")
	}
	err := m.dispatch(ctx, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil // `vexil serve --help`: the flag package printed the help; asking is no failure
	}
	return err
}

func (m *Main) dispatch(ctx context.Context, args []string) error {
	switch args[0] {
	case "serve":
		return m.serve(ctx, args[1:])
	case "migrate":
		return m.migrate(ctx, args[1:])
	case "seed":
		return m.seed(ctx, args[1:])
	case "tokens":
		return m.tokens(ctx, args[1:])
	case "users":
		return m.users(ctx, args[1:])
	case "grafana-role":
		return m.grafanaRole(ctx, args[1:])
	case "audit":
		return m.audit(ctx, args[1:])
	case "replay":
		return m.replay(ctx, args[1:])
	case "version":
		return m.version(args[1:])
	case "healthcheck":
		return m.healthcheck(ctx, args[1:])
	case "help", "-h", "--help":
		// Asked-for help is the command's output (stdout, so `vexil help | less` works); usage
		// after a mistake goes with the error to stderr.
		m.printUsage(m.Stdout)
		return nil
	}
	m.printUsage(m.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func (m *Main) printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	for _, s := range config.Settings() {
		fmt.Fprintf(w, "  %-20s %-24s default %q\n      %s\n", s[1], s[0], s[2], s[3])
	}
}

func (m *Main) logger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	log := slog.New(slog.NewJSONHandler(m.Stderr, opts))
	if cfg.LogFormat == "text" {
		log = slog.New(slog.NewTextHandler(m.Stderr, opts))
	}
	return log
}

func (m *Main) serve(ctx context.Context, args []string) error {
	demo, rest, err := boolFlag(args, "demo")
	if err != nil {
		return err
	}
	cfg, err := config.Parse("vexil serve", rest, m.Lookup)
	if err != nil {
		return err
	}
	log := m.logger(cfg)
	if cfg.Has(config.RoleEdge) {
		return m.serveEdge(ctx, cfg, log)
	}
	p, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.Close()
	if demo {
		p.NotReadyUntil("seeding the demo project")
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	if p.AdminToken != "" {
		// Shown once: only its hash is stored.
		fmt.Fprintf(m.Stderr, "\nGenerated the bootstrap admin token (shown only this once; set VEXIL_ADMIN_TOKEN to choose your own):\n\n    %s\n\n", p.AdminToken)
	} else if cfg.AdminToken == "" {
		// The token was printed on the first start only: say how to get another one.
		fmt.Fprintln(m.Stderr, "An admin token exists already (printed on the first start). Lost it? `vexil tokens create --scope admin` makes a new one.")
	}
	if demo {
		res, err := p.StartDemo(ctx)
		if err != nil {
			return err
		}
		if err := json.NewEncoder(m.Stdout).Encode(res); err != nil {
			return err
		}
		if cfg.Has(config.RoleConsole) {
			if err := EnsureDemoLogin(ctx, p); err != nil {
				return err
			}
			fmt.Fprintf(m.Stderr, "Web console: http://%s/ — sign in as %s with password %s (an editor of the demo project).\n", p.Addr, DemoEmail, DemoPassword)
		}
	}
	fmt.Fprintf(m.Stderr, "Vexil listens on http://%s (roles %v). Ctrl-C stops it.\n", p.Addr, cfg.Roles)
	return p.Wait(ctx)
}

// serveEdge runs an edge: no database, no Redis (docs/edge.md).
func (m *Main) serveEdge(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	p, err := StartEdge(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(m.Stderr, "Vexil edge listens on http://%s, following %s. Ctrl-C stops it.\n", p.Addr, cfg.Upstream)
	return p.Wait(ctx)
}

func (m *Main) seed(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "demo" {
		return fmt.Errorf("usage: vexil seed demo [--shell ENVIRONMENT] [flags]")
	}
	own, rest := splitOwnFlags(args[1:], []string{"shell"}, nil)
	fs := flag.NewFlagSet("vexil seed demo", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	shellEnv := fs.String("shell", "", "print `export CLIENT_KEY=… SERVER_KEY=…` of this environment instead of JSON, for eval")
	if err := fs.Parse(own); err != nil {
		return err
	}
	cfg, err := config.Parse("vexil seed demo", rest, m.Lookup)
	if err != nil {
		return err
	}
	p, err := Open(ctx, cfg, m.logger(cfg))
	if err != nil {
		return err
	}
	defer p.Close()
	res, err := SeedDemo(ctx, p.App)
	if err != nil {
		return err
	}
	if *shellEnv != "" {
		for _, e := range res.Environments {
			if e.Key == *shellEnv {
				// Keys are [a-z0-9-]: nothing to quote.
				_, err := fmt.Fprintf(m.Stdout, "export CLIENT_KEY=%s SERVER_KEY=%s\n", e.ClientKey, e.ServerKey)
				return err
			}
		}
		return fmt.Errorf("seed demo: the demo project has no environment %q", *shellEnv)
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

func (m *Main) migrate(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: vexil migrate up|down N|version|force V|timescale [flags]")
	}
	verb, args := args[0], args[1:]
	var n int
	if verb == "down" || verb == "force" {
		if len(args) == 0 {
			return fmt.Errorf("usage: vexil migrate %s N", verb)
		}
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil {
			return fmt.Errorf("migrate %s: %q is not a number", verb, args[0])
		}
		args = args[1:]
	}
	cfg, err := config.Parse("vexil migrate", args, m.Lookup)
	if err != nil {
		return err
	}
	if err := postgres.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	if verb == "timescale" {
		return m.migrateTimescale(ctx, cfg)
	}
	mg, err := postgres.NewMigrator(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer mg.Close()
	switch verb {
	case "up":
		err = mg.Up()
	case "down":
		err = mg.Down(n)
	case "force":
		err = mg.Force(n)
	case "version":
	default:
		return fmt.Errorf("unknown migrate command %q (up, down N, version, force V, timescale)", verb)
	}
	if err != nil {
		return err
	}
	v, dirty, err := mg.Version()
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "version %d (latest %d)%s\n", v, postgres.LatestMigration(), map[bool]string{true: " dirty", false: ""}[dirty])
	if verb == "up" {
		// Say what storage the schema landed on, and what to do about it, once.
		pool, err := postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		logStorage(ctx, m.logger(cfg), pool)
	}
	return nil
}

// migrateTimescale is `vexil migrate timescale`: migrate up, convert a plain-mode database to
// hypertables and continuous aggregates, refresh the aggregates over all retained history, and
// apply the configured telemetry policies. Safe to re-run: a converted database only gets its
// aggregates refreshed (incrementally) and its policies checked.
func (m *Main) migrateTimescale(ctx context.Context, cfg *config.Config) error {
	log := m.logger(cfg)
	if err := migrateUp(cfg.DatabaseURL); err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	steps, err := postgres.UpgradeToTimescale(ctx, pool)
	if err != nil {
		return err
	}
	for _, s := range steps {
		fmt.Fprintln(m.Stdout, s)
	}
	// Continuous aggregates start empty: materialize everything the raw events still hold, up to
	// where the refresh policies take over (on a converted database this only redoes what changed
	// since the last refresh).
	if err := telemetry.CatchUpRollups(ctx, pool); err != nil {
		return fmt.Errorf("migrate timescale: converted, but refreshing the continuous aggregates failed (run this again): %w", err)
	}
	changed, err := telemetry.ApplyPolicies(ctx, pool, telemetryPolicies(cfg))
	if err != nil {
		return fmt.Errorf("migrate timescale: converted, but applying the telemetry policies failed (the projector role retries at start): %w", err)
	}
	s, err := postgres.DetectStorage(ctx, pool)
	if err != nil {
		return err
	}
	if len(steps) == 0 {
		fmt.Fprintf(m.Stdout, "already on %s; continuous aggregates refreshed, %d policy changes\n", s.Summary(), changed)
		return nil
	}
	fmt.Fprintf(m.Stdout, "converted to %s: %d steps; continuous aggregates refreshed, %d policy changes\n", s.Summary(), len(steps), changed)
	log.Info("storage converted to TimescaleDB", "steps", len(steps), "timescaledb", s.TimescaleVersion, "postgresql", s.PostgresVersion)
	return nil
}

// boolFlag takes a command's own boolean flag out of args, in every form the flag package accepts
// (-name, --name, --name=true, --name=false, ...), and returns the rest for config.Parse.
func boolFlag(args []string, name string) (value bool, rest []string, err error) {
	for _, a := range args {
		flagName, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || flagName != name {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			value = true
			continue
		}
		if value, err = strconv.ParseBool(v); err != nil {
			return false, nil, fmt.Errorf("--%s=%s: want true or false", name, v)
		}
	}
	return value, rest, nil
}

// grafanaRole creates the login role that dashboards/provisioning's datasource uses, with the
// grants of postgres.GrafanaGrants and nothing else. Its name and password come from the same
// variables the provisioning file reads, so one environment configures both sides.
func (m *Main) grafanaRole(ctx context.Context, args []string) error {
	cfg, err := config.Parse("vexil grafana-role", args, m.Lookup)
	if err != nil {
		return err
	}
	role, ok := m.Lookup("VEXIL_GRAFANA_DB_USER")
	if !ok || role == "" {
		role = "vexil_grafana"
	}
	password, _ := m.Lookup("VEXIL_GRAFANA_DB_PASSWORD")
	if password == "" {
		return fmt.Errorf("grafana-role: set VEXIL_GRAFANA_DB_PASSWORD (the datasource provisioning reads it too)")
	}
	if err := postgres.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	if cfg.Migrate {
		if err := migrateUp(cfg.DatabaseURL); err != nil {
			return err
		}
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.GrantGrafanaRole(ctx, pool, role, password); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "role %s may read what the dashboards read (%d relations) and nothing else\n", role, len(postgres.GrafanaGrants))
	return nil
}

// ErrVerificationFailed makes the process exit non-zero when verification found problems.
var ErrVerificationFailed = fmt.Errorf("verification failed")

func (m *Main) audit(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "verify" {
		return fmt.Errorf("usage: vexil audit verify [--heads] [flags]")
	}
	heads, rest, err := boolFlag(args[1:], "heads")
	if err != nil {
		return err
	}
	cfg, err := config.Parse("vexil audit verify", rest, m.Lookup)
	if err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	rep, err := postgres.VerifyChains(ctx, pool, heads)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%w: %d problems in %d events", ErrVerificationFailed, len(rep.Problems), rep.Events)
	}
	return nil
}

func (m *Main) replay(ctx context.Context, args []string) error {
	verifyOnly, rest, err := boolFlag(args, "verify")
	if err != nil {
		return err
	}
	cfg, err := config.Parse("vexil replay", rest, m.Lookup)
	if err != nil {
		return err
	}
	log := m.logger(cfg)
	r := &replay.Replayer{DatabaseURL: cfg.DatabaseURL, Projections: ReadModels(), Log: log}
	res, err := r.Rebuild(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	if verifyOnly {
		defer func() {
			if err := r.Drop(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintln(m.Stderr, "replay: could not drop the replay schema (the next replay drops it):", err)
			}
		}()
		diffs, err := r.Verify(ctx, 20)
		if err != nil {
			return err
		}
		if diffs == nil {
			diffs = []replay.Difference{}
		}
		if err := enc.Encode(map[string]any{"replay": res, "differences": diffs}); err != nil {
			return err
		}
		if len(diffs) > 0 {
			return fmt.Errorf("%w: %d differences between live and replayed read models", ErrVerificationFailed, len(diffs))
		}
		return nil
	}
	if err := r.Swap(ctx); err != nil {
		return err
	}
	// Apply what was appended while the replay ran.
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	store, err := postgres.NewEventStore(pool)
	if err != nil {
		return err
	}
	runner, err := projector.New(projector.Config{Pool: pool, Store: store, Projections: ReadModels(), Logger: log, SkipCatchUp: true})
	if err != nil {
		return err
	}
	if err := runner.CatchUp(ctx, ""); err != nil {
		return err
	}
	return enc.Encode(map[string]any{"replay": res, "swapped": true})
}
