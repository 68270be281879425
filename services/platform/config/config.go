// Package config reads Vexil's configuration: VEXIL_* environment variables, overridden by
// command-line flags, with defaults that work on a fresh machine of the kind Vexil develops on
// (PostgreSQL and Redis on loopback) with no configuration at all.
package config

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Roles a process can run. "console" is the management API and console routes; "api" is the SDK API.
const (
	RoleAPI        = "api"
	RoleConsole    = "console"
	RoleProjector  = "projector"
	RoleExperiment = "experiment"
	RoleRelay      = "relay"
	// RoleEdge serves the SDK API from a core's mirror with neither PostgreSQL nor Redis
	// (services/roles/edge); it runs alone, never with the roles above.
	RoleEdge = "edge"
)

// AllRoles is what `vexil serve` runs by default.
var AllRoles = []string{RoleAPI, RoleConsole, RoleProjector, RoleExperiment, RoleRelay}

// Config is the whole configuration of one process.
type Config struct {
	DatabaseURL     string
	RedisURL        string
	HTTPAddr        string
	StreamPrefix    string
	AdminToken      string
	Roles           []string
	Migrate         bool          // run migrations at serve start
	LogLevel        string        // debug, info, warn, error
	LogFormat       string        // json or text
	MaxBodyBytes    int64         // request body limit of the management API
	ConsistencyWait time.Duration // how long a write waits for read models (read-your-writes)

	SDKMaxContextBytes int64         // largest OFREP request body; larger answers 413
	SDKRateLimit       float64       // requests per second per SDK key; 0 = unlimited
	TriggerRateLimit   int           // accepted calls a minute per webhook trigger; 0 = unlimited
	SSEHeartbeat       time.Duration // SSE keep-alive interval
	ReconcileInterval  time.Duration // how often the api role compares snapshot versions with the database
	AnalysisInterval   time.Duration // how often the experiment role analyses running experiments
	SchedulerInterval  time.Duration // how often the experiment role applies due scheduled changes and rollout steps
	AutoOpsInterval    time.Duration // how often the experiment role measures auto-ops rules
	DemoTraffic        float64       // simulated users a second with serve --demo; 0 = none

	EventsMaxBatch           int           // events per POST /sdk/v1/events request (413 past it)
	EventsMaxBodyBytes       int64         // body limit of POST /sdk/v1/events (413 past it)
	EventsMaxAge             time.Duration // oldest occurred_at accepted
	TelemetryMaxLag          int64         // stream messages the projector may be behind before ingest answers 429
	TelemetryStreamMaxLen    int64         // cap of the telemetry stream
	TelemetryWorkers         int           // telemetry writes one projector process runs at once
	TelemetryGroupMessages   int           // telemetry messages one write may store together
	TelemetryRedeliverAfter  time.Duration // idle time after which a dead consumer's message is taken over
	TelemetryRetention       time.Duration // raw events are kept this long
	TelemetryCompressAfter   time.Duration // TimescaleDB: event chunks are compressed after this
	TelemetryChunkInterval   time.Duration // TimescaleDB: time range of one event chunk
	TelemetryRefreshInterval time.Duration // telemetry maintenance interval (plain-PostgreSQL rollup refresh)
	RollupRefresh            string        // TimescaleDB: who refreshes the continuous aggregates (RollupRefresh* values)

	SDKCORSOrigins     []string      // origins that may call /ofrep/v1 and /sdk/v1 from a browser; "*" any, none: same-origin only
	ConsoleCORSOrigins []string      // origins that may call /api/v1 from a browser; none (the default): same-origin only
	CORSMaxAge         time.Duration // how long browsers may cache a CORS preflight answer

	HTTPReadHeaderTimeout time.Duration // reading a request's line and headers
	HTTPBodyTimeout       time.Duration // reading a request's body
	HTTPWriteTimeout      time.Duration // from a request's headers to its answer's last byte (per write for streams)
	HTTPIdleTimeout       time.Duration // a keep-alive connection's wait for its next request
	HTTPMaxHeaderBytes    int           // request line and headers (431 past it)

	MetricsToken      string // bearer token /metrics requires; "" leaves it open
	MetricsFlagSeries int    // distinct flag label sets of the evaluation counter before "other"; 0 = no flag labels

	// Server-side exposure logging of OFREP answers (api role).
	ServerExposures              bool          // record experiment exposures of OFREP answers
	ServerExposuresFlushInterval time.Duration // how long an exposure waits in memory at most
	ServerExposuresMaxPending    int           // exposures held in memory; more are dropped and counted

	// Edge role (services/roles/edge).
	Upstream          string // the core's base URL
	EdgeToken         string // the edge token the core issued for this edge
	EdgeDir           string // snapshot file and event spool
	EdgeSpoolMaxBytes int64  // bound of the event spool

	SSO      SSO      // console single sign-on (sso.go)
	Webhooks Webhooks // outgoing webhooks (webhooks.go)
	// Console: the web console's sessions and sign-in limit (console.go).
	Console Console
}

// setting documents one option once, for the flag set, the environment and the README table.
type setting struct {
	env, flag, def, help string
}

var settings = []setting{
	{"VEXIL_DATABASE_URL", "database-url", "postgres://postgres@127.0.0.1:5432/vexil?sslmode=disable", "PostgreSQL/TimescaleDB URL; the database is created if missing"},
	{"VEXIL_REDIS_URL", "redis-url", "redis://127.0.0.1:6379/0", "Redis URL for the event streams"},
	{"VEXIL_HTTP_ADDR", "http-addr", "127.0.0.1:8080", "listen address; one port serves every role's routes"},
	{"VEXIL_STREAM_PREFIX", "stream-prefix", "vexil", "prefix of every Redis key and stream, so instances can share a Redis"},
	{"VEXIL_ADMIN_TOKEN", "admin-token", "", "bootstrap admin token; if unset one is generated on first start, stored hashed and printed once"},
	{"VEXIL_ROLES", "roles", strings.Join(AllRoles, ","), "comma list of roles to run: api,console,projector,experiment,relay; or edge alone (with upstream and edge-token)"},
	{"VEXIL_MIGRATE", "migrate", "true", "run database migrations when serve starts"},
	{"VEXIL_LOG_LEVEL", "log-level", "info", "debug, info, warn or error"},
	{"VEXIL_LOG_FORMAT", "log-format", "json", "json or text"},
	{"VEXIL_MAX_BODY_BYTES", "max-body-bytes", "1048576", "largest accepted management request body (bytes); larger answers 413"},
	{"VEXIL_CONSISTENCY_WAIT", "consistency-wait", "2s", "how long a management write waits for read models before answering"},
	{"VEXIL_SDK_MAX_CONTEXT_BYTES", "sdk-max-context-bytes", "65536", "largest SDK evaluation request body (bytes); larger answers 413"},
	{"VEXIL_SDK_RATE_LIMIT", "sdk-rate-limit", "0", "requests per second allowed per SDK key (429 with Retry-After past it); 0 = unlimited"},
	{"VEXIL_TRIGGER_RATE_LIMIT", "trigger-rate-limit", "30", "accepted calls a minute per webhook trigger, in bursts of up to 10 (429 with Retry-After past it, nothing recorded); 0 = unlimited"},
	{"VEXIL_SSE_HEARTBEAT", "sse-heartbeat", "15s", "interval of SSE keep-alive comments"},
	{"VEXIL_RECONCILE_INTERVAL", "reconcile-interval", "10s", "how often the api role reconciles its in-memory rulesets with the database"},
	{"VEXIL_ANALYSIS_INTERVAL", "analysis-interval", "5m", "how often the experiment role analyses every running experiment"},
	{"VEXIL_SCHEDULER_INTERVAL", "scheduler-interval", "1s", "how often the experiment role applies due scheduled changes and rollout steps (the delay of a due change)"},
	{"VEXIL_AUTOOPS_INTERVAL", "autoops-interval", "30s", "how often the experiment role measures the auto-ops rules (one query per rule)"},
	{"VEXIL_EVENTS_MAX_BATCH", "events-max-batch", "1000", "most events one POST /sdk/v1/events request may carry; more answers 413"},
	{"VEXIL_EVENTS_MAX_BODY_BYTES", "events-max-body-bytes", "1048576", "largest POST /sdk/v1/events body (bytes); larger answers 413"},
	{"VEXIL_EVENTS_MAX_AGE", "events-max-age", "48h", "oldest occurred_at accepted (at most 60h, inside the rollups' refresh windows); older events are refused one by one"},
	{"VEXIL_TELEMETRY_MAX_LAG", "telemetry-max-lag", "1000", "telemetry stream messages the projector may be behind before ingest answers 429 with Retry-After"},
	{"VEXIL_TELEMETRY_STREAM_MAXLEN", "telemetry-stream-maxlen", "20000", "cap of the telemetry stream in messages (at least 4x telemetry-max-lag, so trimming drops only stored messages)"},
	{"VEXIL_TELEMETRY_WORKERS", "telemetry-workers", "4", "telemetry writes (transactions) one projector process runs at once"},
	{"VEXIL_TELEMETRY_GROUP_MESSAGES", "telemetry-group-messages", "8", "telemetry messages one write may store together, in one transaction (1: each alone)"},
	{"VEXIL_TELEMETRY_REDELIVER_AFTER", "telemetry-redeliver-after", "30s", "how long a telemetry message held by a projector that died waits before another projector takes it"},
	{"VEXIL_TELEMETRY_RETENTION", "telemetry-retention", "90d", "raw telemetry events are kept this long (at least 7d; rollups are kept longer on TimescaleDB)"},
	{"VEXIL_TELEMETRY_COMPRESS_AFTER", "telemetry-compress-after", "7d", "TimescaleDB: event chunks older than this are compressed (more than events-max-age)"},
	{"VEXIL_TELEMETRY_CHUNK_INTERVAL", "telemetry-chunk-interval", "1d", "TimescaleDB: time range of one event chunk"},
	{"VEXIL_HTTP_READ_HEADER_TIMEOUT", "http-read-header-timeout", "10s", "time a client has to send a request's line and headers (slowloris bound)"},
	{"VEXIL_HTTP_BODY_TIMEOUT", "http-body-timeout", "30s", "time a client has to send a request's body after its headers; the connection is closed past it"},
	{"VEXIL_HTTP_WRITE_TIMEOUT", "http-write-timeout", "60s", "time from a request's headers to the last byte of its answer (more than consistency-wait); SSE streams and exports get it per write instead"},
	{"VEXIL_HTTP_IDLE_TIMEOUT", "http-idle-timeout", "120s", "time a keep-alive connection may wait for its next request"},
	{"VEXIL_HTTP_MAX_HEADER_BYTES", "http-max-header-bytes", "65536", "largest request line and headers (bytes); larger answers 431"},
	{"VEXIL_METRICS_TOKEN", "metrics-token", "", "when set, /metrics requires Authorization: Bearer <token>; unset leaves it open (keep it off the public network)"},
	{"VEXIL_METRICS_FLAG_SERIES", "metrics-flag-series", "1000", "distinct (project, environment, flag, variation) label sets of vexil_sdk_evaluations_total; later ones count under flag=\"other\"; 0 = no flag or variation labels"},
	{"VEXIL_TELEMETRY_REFRESH_INTERVAL", "telemetry-refresh-interval", "1m", "telemetry maintenance interval: rollup refresh on plain PostgreSQL, goal re-attribution, retention"},
	{"VEXIL_ROLLUP_REFRESH", "rollup-refresh", RollupRefreshAuto, "TimescaleDB: who refreshes the continuous aggregates: policies (TimescaleDB's jobs only), vexil (the projector, every policy interval) or auto (the projector when a refresh policy fails or lags)"},
	{"VEXIL_DEMO_TRAFFIC", "demo-traffic", "10", "with serve --demo: simulated users a second that evaluate flags and convert through the SDK API; 0 = no simulated traffic"},
	{"VEXIL_SDK_CORS_ORIGINS", "sdk-cors-origins", "*", "comma list of origins (scheme://host[:port]) whose web pages may call /ofrep/v1 and /sdk/v1, or * for any (client-side keys are public by design); empty: same-origin only"},
	{"VEXIL_CONSOLE_CORS_ORIGINS", "console-cors-origins", "", "comma list of origins whose web pages may call the management API /api/v1 (a console hosted elsewhere); empty (default): same-origin only"},
	{"VEXIL_CORS_MAX_AGE", "cors-max-age", "24h", "how long a browser may cache a CORS preflight answer (Access-Control-Max-Age; browsers cap it, Chromium at 2h); Chromium still preflights every request carrying If-None-Match, so browsers should prefer the SSE stream to ETag polling"},
	{"VEXIL_SERVER_EXPOSURES", "server-exposures", "true", "the api role records the experiment exposures of OFREP answers to contexts with a targetingKey (no SDK event needed), in environments whose server_exposures setting is on; false turns it off everywhere"},
	{"VEXIL_SERVER_EXPOSURES_FLUSH_INTERVAL", "server-exposures-flush-interval", "2s", "longest time a server-side exposure waits in memory before it is published (also flushed per 1,000)"},
	{"VEXIL_UPSTREAM", "upstream", "", "edge role: the core's base URL (http://core:8080) whose /edge/v1 mirror this edge serves from"},
	{"VEXIL_EDGE_TOKEN", "edge-token", "", "edge role: the edge token (scope edge) the core issued for this edge"},
	{"VEXIL_EDGE_DIR", "edge-dir", "vexil-edge", "edge role: directory of the snapshot file (served across restarts while the core is down) and of the event spool"},
	{"VEXIL_EDGE_SPOOL_MAX_BYTES", "edge-spool-max-bytes", "268435456", "edge role: bound of the on-disk queue of SDK events waiting for the core; past it /sdk/v1/events answers 503 with Retry-After"},
	{"VEXIL_SERVER_EXPOSURES_MAX_PENDING", "server-exposures-max-pending", "100000", "server-side exposures held in memory while the telemetry stream is slow or down; more are dropped and counted"},
	{"VEXIL_SESSION_IDLE_TIMEOUT", "session-idle-timeout", "30m", "web console: a session unused this long ends (1m to 24h)"},
	{"VEXIL_SESSION_MAX_AGE", "session-max-age", "12h", "web console: every session ends this long after sign-in, however it is used (5m to 30d, at least the idle timeout)"},
	{"VEXIL_LOGIN_ATTEMPTS", "login-attempts", "5", "web console: sign-in attempts allowed at once per email and per client address, counted in PostgreSQL so every replica shares them"},
	{"VEXIL_LOGIN_INTERVAL", "login-interval", "12s", "web console: after the login-attempts burst, one more attempt per this interval (per email and per client address)"},
}

// kind names the type of a setting's value for help texts, from its default.
func (s setting) kind() string {
	switch {
	case s.flag == "roles" || strings.HasSuffix(s.flag, "-origins"):
		return "list"
	case s.flag == "sdk-rate-limit" || s.flag == "demo-traffic": // fractions allowed
		return "number"
	case strings.Contains(s.flag, "url"):
		return "url"
	case s.def == "true" || s.def == "false":
		return "bool"
	}
	if _, err := strconv.ParseInt(s.def, 10, 64); err == nil {
		return "int"
	}
	if _, err := strconv.ParseFloat(s.def, 64); err == nil {
		return "number"
	}
	if _, err := ParseLongDuration(s.def); err == nil && s.def != "" {
		return "duration"
	}
	return "string"
}

// Settings returns (env, flag, default, help) rows for documentation.
func Settings() [][4]string {
	out := make([][4]string, len(settings))
	for i, s := range settings {
		out[i] = [4]string{s.env, "--" + s.flag, s.def, s.help}
	}
	return out
}

// Parse reads the environment (lookup, usually os.LookupEnv) and then args, which override it.
func Parse(name string, args []string, lookup func(string) (string, bool)) (*Config, error) {
	return ParseWithOutput(name, args, lookup, nil)
}

// ParseWithOutput is Parse writing help and flag errors to out (stderr when nil).
func ParseWithOutput(name string, args []string, lookup func(string) (string, bool), out io.Writer) (*Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if out != nil {
		fs.SetOutput(out)
	}
	vals := make(map[string]*string, len(settings))
	for _, s := range settings {
		def := s.def
		if v, ok := lookup(s.env); ok {
			def = v
		}
		// The back-quoted kind is what flag's help prints as the argument's type, instead of
		// "string" for every setting (they are all read as strings, then parsed below).
		vals[s.flag] = fs.String(s.flag, def, s.help+" (`"+s.kind()+"`, env "+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("config: unexpected arguments %q", fs.Args())
	}
	c := &Config{
		DatabaseURL:  *vals["database-url"],
		RedisURL:     *vals["redis-url"],
		HTTPAddr:     *vals["http-addr"],
		StreamPrefix: *vals["stream-prefix"],
		AdminToken:   *vals["admin-token"],
		MetricsToken: *vals["metrics-token"],
		LogLevel:     *vals["log-level"],
		LogFormat:    *vals["log-format"],
		Upstream:     *vals["upstream"],
		EdgeToken:    *vals["edge-token"],
		EdgeDir:      *vals["edge-dir"],
	}
	var err error
	if c.Migrate, err = strconv.ParseBool(*vals["migrate"]); err != nil {
		return nil, fmt.Errorf("config: migrate: %w", err)
	}
	if c.MaxBodyBytes, err = strconv.ParseInt(*vals["max-body-bytes"], 10, 64); err != nil || c.MaxBodyBytes <= 0 {
		return nil, fmt.Errorf("config: max-body-bytes must be a positive integer, got %q", *vals["max-body-bytes"])
	}
	if c.ConsistencyWait, err = time.ParseDuration(*vals["consistency-wait"]); err != nil {
		return nil, fmt.Errorf("config: consistency-wait: %w", err)
	}
	if c.SDKMaxContextBytes, err = strconv.ParseInt(*vals["sdk-max-context-bytes"], 10, 64); err != nil || c.SDKMaxContextBytes <= 0 {
		return nil, fmt.Errorf("config: sdk-max-context-bytes must be a positive integer, got %q", *vals["sdk-max-context-bytes"])
	}
	if c.SDKRateLimit, err = strconv.ParseFloat(*vals["sdk-rate-limit"], 64); err != nil || c.SDKRateLimit < 0 {
		return nil, fmt.Errorf("config: sdk-rate-limit must be a non-negative number, got %q", *vals["sdk-rate-limit"])
	}
	if c.TriggerRateLimit, err = strconv.Atoi(*vals["trigger-rate-limit"]); err != nil || c.TriggerRateLimit < 0 {
		return nil, fmt.Errorf("config: trigger-rate-limit must be a non-negative integer, got %q", *vals["trigger-rate-limit"])
	}
	if c.SSEHeartbeat, err = time.ParseDuration(*vals["sse-heartbeat"]); err != nil || c.SSEHeartbeat <= 0 {
		return nil, fmt.Errorf("config: sse-heartbeat must be a positive duration, got %q", *vals["sse-heartbeat"])
	}
	if c.ReconcileInterval, err = time.ParseDuration(*vals["reconcile-interval"]); err != nil || c.ReconcileInterval <= 0 {
		return nil, fmt.Errorf("config: reconcile-interval must be a positive duration, got %q", *vals["reconcile-interval"])
	}
	if err := c.parseTelemetry(vals); err != nil {
		return nil, err
	}
	if err := c.parseServerExposures(vals); err != nil {
		return nil, err
	}
	if err := c.parseSSO(vals); err != nil {
		return nil, err
	}
	if err := c.parseWebhooks(vals); err != nil {
		return nil, err
	}
	if c.AnalysisInterval, err = time.ParseDuration(*vals["analysis-interval"]); err != nil || c.AnalysisInterval <= 0 {
		return nil, fmt.Errorf("config: analysis-interval must be a positive duration, got %q", *vals["analysis-interval"])
	}
	if c.SchedulerInterval, err = time.ParseDuration(*vals["scheduler-interval"]); err != nil || c.SchedulerInterval <= 0 {
		return nil, fmt.Errorf("config: scheduler-interval must be a positive duration, got %q", *vals["scheduler-interval"])
	}
	if c.AutoOpsInterval, err = time.ParseDuration(*vals["autoops-interval"]); err != nil || c.AutoOpsInterval <= 0 {
		return nil, fmt.Errorf("config: autoops-interval must be a positive duration, got %q", *vals["autoops-interval"])
	}
	if c.DemoTraffic, err = strconv.ParseFloat(*vals["demo-traffic"], 64); err != nil || c.DemoTraffic < 0 || c.DemoTraffic > 1000 {
		return nil, fmt.Errorf("config: demo-traffic must be a number of users a second from 0 to 1000, got %q", *vals["demo-traffic"])
	}
	if err := c.parseHTTP(vals); err != nil {
		return nil, err
	}
	if c.Roles, err = ParseRoles(*vals["roles"]); err != nil {
		return nil, err
	}
	if c.EdgeSpoolMaxBytes, err = strconv.ParseInt(*vals["edge-spool-max-bytes"], 10, 64); err != nil || c.EdgeSpoolMaxBytes < 1<<20 {
		return nil, fmt.Errorf("config: edge-spool-max-bytes must be an integer of at least 1048576, got %q", *vals["edge-spool-max-bytes"])
	}
	if c.SDKCORSOrigins, err = ParseOrigins(*vals["sdk-cors-origins"]); err != nil {
		return nil, fmt.Errorf("config: sdk-cors-origins: %w", err)
	}
	if c.ConsoleCORSOrigins, err = ParseOrigins(*vals["console-cors-origins"]); err != nil {
		return nil, fmt.Errorf("config: console-cors-origins: %w", err)
	}
	if c.CORSMaxAge, err = time.ParseDuration(*vals["cors-max-age"]); err != nil || c.CORSMaxAge < 0 || c.CORSMaxAge > 24*time.Hour {
		return nil, fmt.Errorf("config: cors-max-age must be a duration from 0s to 24h, got %q", *vals["cors-max-age"])
	}
	if err := c.parseConsole(vals); err != nil {
		return nil, err
	}
	return c, c.validate()
}

// ParseRoles parses a comma list of roles.
func ParseRoles(s string) ([]string, error) {
	var roles []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !slices.Contains(AllRoles, r) && r != RoleEdge {
			return nil, fmt.Errorf("config: unknown role %q (known: %s,%s)", r, strings.Join(AllRoles, ","), RoleEdge)
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("config: no role given")
	}
	if slices.Contains(roles, RoleEdge) && len(roles) > 1 {
		return nil, fmt.Errorf("config: the edge role runs alone (it uses no database): not with %s", strings.Join(slices.DeleteFunc(roles, func(r string) bool { return r == RoleEdge }), ","))
	}
	return roles, nil
}

// ParseOrigins reads a comma list of CORS origins: "*" alone, or scheme://host[:port] each
// (lower-cased, as browsers send them). Blank means none.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
				(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				return nil, fmt.Errorf("%q is not an origin: want * or scheme://host[:port], e.g. https://app.example.com", o)
			}
			o = strings.ToLower(u.Scheme + "://" + u.Host)
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	if len(out) > 1 && slices.Contains(out, "*") {
		return nil, fmt.Errorf("* allows every origin: list it alone, not with others (%q)", list)
	}
	return out, nil
}

// Has reports whether the process runs role.
func (c *Config) Has(role string) bool { return slices.Contains(c.Roles, role) }

func (c *Config) validate() error {
	if c.Has(RoleEdge) {
		if u, err := url.Parse(c.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: the edge role needs upstream, the core's http(s):// base URL, got %q", c.Upstream)
		}
		if c.EdgeToken == "" {
			return fmt.Errorf("config: the edge role needs edge-token (create one on the core: POST /api/v1/tokens with scope edge)")
		}
		if c.EdgeDir == "" {
			return fmt.Errorf("config: the edge role needs edge-dir")
		}
	}
	if _, err := url.Parse(c.DatabaseURL); err != nil || c.DatabaseURL == "" {
		return fmt.Errorf("config: database-url is not a URL: %q", c.DatabaseURL)
	}
	if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return fmt.Errorf("config: redis-url must be redis:// or rediss://, got %q", c.RedisURL)
	}
	if c.StreamPrefix == "" || strings.ContainsAny(c.StreamPrefix, " \t\n") {
		return fmt.Errorf("config: stream-prefix must be non-empty without spaces, got %q", c.StreamPrefix)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log-level must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("config: log-format must be json or text, got %q", c.LogFormat)
	}
	return nil
}

// parseHTTP reads the HTTP server's limits and the metrics settings.
func (c *Config) parseHTTP(vals map[string]*string) error {
	duration := func(name string, min time.Duration) (time.Duration, error) {
		d, err := time.ParseDuration(*vals[name])
		if err != nil || d < min {
			return 0, fmt.Errorf("config: %s must be a duration of at least %s, got %q", name, min, *vals[name])
		}
		return d, nil
	}
	var err error
	if c.HTTPReadHeaderTimeout, err = duration("http-read-header-timeout", 100*time.Millisecond); err != nil {
		return err
	}
	if c.HTTPBodyTimeout, err = duration("http-body-timeout", 100*time.Millisecond); err != nil {
		return err
	}
	if c.HTTPWriteTimeout, err = duration("http-write-timeout", time.Second); err != nil {
		return err
	}
	if c.HTTPWriteTimeout <= c.ConsistencyWait {
		return fmt.Errorf("config: http-write-timeout (%s) must be more than consistency-wait (%s): a write waits that long before answering",
			c.HTTPWriteTimeout, c.ConsistencyWait)
	}
	if c.HTTPIdleTimeout, err = duration("http-idle-timeout", time.Second); err != nil {
		return err
	}
	if c.HTTPMaxHeaderBytes, err = strconv.Atoi(*vals["http-max-header-bytes"]); err != nil || c.HTTPMaxHeaderBytes < 4096 {
		return fmt.Errorf("config: http-max-header-bytes must be an integer of at least 4096, got %q", *vals["http-max-header-bytes"])
	}
	if c.MetricsFlagSeries, err = strconv.Atoi(*vals["metrics-flag-series"]); err != nil || c.MetricsFlagSeries < 0 {
		return fmt.Errorf("config: metrics-flag-series must be a non-negative integer, got %q", *vals["metrics-flag-series"])
	}
	return nil
}

// parseTelemetry reads the events and telemetry settings.
func (c *Config) parseTelemetry(vals map[string]*string) error {
	positive := func(name string, min int64) (int64, error) {
		n, err := strconv.ParseInt(*vals[name], 10, 64)
		if err != nil || n < min {
			return 0, fmt.Errorf("config: %s must be an integer of at least %d, got %q", name, min, *vals[name])
		}
		return n, nil
	}
	duration := func(name string, min time.Duration) (time.Duration, error) {
		d, err := ParseLongDuration(*vals[name])
		if err != nil || d < min {
			return 0, fmt.Errorf("config: %s must be a duration of at least %s (e.g. 90s, 2h, 30d), got %q", name, min, *vals[name])
		}
		return d, nil
	}
	var err error
	var n int64
	if n, err = positive("events-max-batch", 1); err != nil {
		return err
	}
	if n > 10000 {
		return fmt.Errorf("config: events-max-batch must be at most 10000, got %d", n)
	}
	c.EventsMaxBatch = int(n)
	if c.EventsMaxBodyBytes, err = positive("events-max-body-bytes", 1024); err != nil {
		return err
	}
	if c.EventsMaxAge, err = duration("events-max-age", time.Minute); err != nil {
		return err
	}
	if c.EventsMaxAge > 60*time.Hour {
		return fmt.Errorf("config: events-max-age must be at most 60h (the rollups refresh the last 3 days), got %s", c.EventsMaxAge)
	}
	if c.TelemetryMaxLag, err = positive("telemetry-max-lag", 1); err != nil {
		return err
	}
	if c.TelemetryStreamMaxLen, err = positive("telemetry-stream-maxlen", 4*c.TelemetryMaxLag); err != nil {
		return fmt.Errorf("%w (4 times telemetry-max-lag)", err)
	}
	if n, err = positive("telemetry-workers", 1); err != nil {
		return err
	}
	if n > 64 {
		return fmt.Errorf("config: telemetry-workers must be at most 64, got %d", n)
	}
	c.TelemetryWorkers = int(n)
	if n, err = positive("telemetry-group-messages", 1); err != nil {
		return err
	}
	if n > 64 {
		return fmt.Errorf("config: telemetry-group-messages must be at most 64, got %d", n)
	}
	c.TelemetryGroupMessages = int(n)
	if c.TelemetryRedeliverAfter, err = duration("telemetry-redeliver-after", time.Second); err != nil {
		return err
	}
	if c.TelemetryRetention, err = duration("telemetry-retention", 7*24*time.Hour); err != nil {
		return err
	}
	if c.TelemetryCompressAfter, err = duration("telemetry-compress-after", c.EventsMaxAge+time.Hour); err != nil {
		return fmt.Errorf("%w (more than events-max-age)", err)
	}
	if c.TelemetryChunkInterval, err = duration("telemetry-chunk-interval", time.Hour); err != nil {
		return err
	}
	if c.TelemetryRefreshInterval, err = duration("telemetry-refresh-interval", time.Second); err != nil {
		return err
	}
	switch c.RollupRefresh = *vals["rollup-refresh"]; c.RollupRefresh {
	case RollupRefreshPolicies, RollupRefreshVexil, RollupRefreshAuto:
	default:
		return fmt.Errorf("config: rollup-refresh must be policies, vexil or auto, got %q", c.RollupRefresh)
	}
	return nil
}

// Values of rollup-refresh: who refreshes TimescaleDB's continuous aggregates.
const (
	RollupRefreshPolicies = "policies" // TimescaleDB's refresh policies only (Vexil reports their health)
	RollupRefreshVexil    = "vexil"    // the projector refreshes each aggregate every policy interval
	RollupRefreshAuto     = "auto"     // the projector refreshes an aggregate whose policy fails or lags
)

// ParseLongDuration is time.ParseDuration that also takes whole days, "30d".
func ParseLongDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*366 {
			return 0, fmt.Errorf("config: invalid number of days %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
