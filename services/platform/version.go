package platform

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/vexil-flags/vexil/services/platform/config"
)

// BuildInfo is what `vexil version` reports: read from the binary itself (debug.ReadBuildInfo),
// so a container image or a downloaded binary says which source it was built from.
type BuildInfo struct {
	Module    string `json:"module"`
	Version   string `json:"version"`              // module version; "(devel)" for a build from a work tree
	GoVersion string `json:"go_version"`           // toolchain that built the binary
	Commit    string `json:"commit,omitempty"`     // vcs.revision; absent when built without VCS stamping
	BuildTime string `json:"build_time,omitempty"` // vcs.time: the commit's time, the reproducible build stamp
	Modified  bool   `json:"modified"`             // vcs.modified: the work tree had uncommitted changes
}

// ReadBuildInfo reports the running binary's build information.
func ReadBuildInfo() BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return BuildInfo{Version: "unknown"}
	}
	return buildInfoOf(bi)
}

func buildInfoOf(bi *debug.BuildInfo) BuildInfo {
	v := BuildInfo{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.BuildTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// version prints the build information: plain `key: value` lines, or JSON with --json.
func (m *Main) version(args []string) error {
	fs := flag.NewFlagSet("vexil version", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	v := ReadBuildInfo()
	if *asJSON {
		return json.NewEncoder(m.Stdout).Encode(v)
	}
	_, err := fmt.Fprintf(m.Stdout, "module: %s\nversion: %s\ngo: %s\ncommit: %s\nbuild_time: %s\nmodified: %t\n",
		v.Module, v.Version, v.GoVersion, v.Commit, v.BuildTime, v.Modified)
	return err
}

// healthcheck GETs /healthz on the configured listen address and fails unless it answers 200: the
// container image's HEALTHCHECK, since a minimal (distroless) image has no curl or wget.
func (m *Main) healthcheck(ctx context.Context, args []string) error {
	cfg, err := config.Parse("vexil healthcheck", args, m.Lookup)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("healthcheck: listen address %q: %w", cfg.HTTPAddr, err)
	}
	// A wildcard listen address (":8080", "0.0.0.0:8080", "[::]:8080") is reached on loopback.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s answered %d", url, resp.StatusCode)
	}
	_, err = fmt.Fprintf(m.Stdout, "ok: GET %s answered 200\n", url)
	return err
}
