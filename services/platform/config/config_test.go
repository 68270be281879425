package config_test

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/platform/config"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaultsWorkWithNoConfiguration(t *testing.T) {
	c, err := config.Parse("vexil", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.StreamPrefix != "vexil" || c.RedisURL != "redis://127.0.0.1:6379/0" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if len(c.Roles) != len(config.AllRoles) || !c.Migrate || c.ConsistencyWait != 2*time.Second {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.HTTPReadHeaderTimeout != 10*time.Second || c.HTTPBodyTimeout != 30*time.Second || c.HTTPWriteTimeout != time.Minute ||
		c.HTTPIdleTimeout != 2*time.Minute || c.HTTPMaxHeaderBytes != 65536 || c.MetricsToken != "" || c.MetricsFlagSeries != 1000 {
		t.Fatalf("unexpected HTTP and metrics defaults: %+v", c)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	c, err := config.Parse("vexil", []string{"--stream-prefix", "flagged", "--roles", "api, relay"},
		env(map[string]string{"VEXIL_STREAM_PREFIX": "fromenv", "VEXIL_HTTP_ADDR": ":9999"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.StreamPrefix != "flagged" || c.HTTPAddr != ":9999" {
		t.Fatalf("got prefix %q addr %q", c.StreamPrefix, c.HTTPAddr)
	}
	if !c.Has(config.RoleAPI) || !c.Has(config.RoleRelay) || c.Has(config.RoleProjector) {
		t.Fatalf("roles %v", c.Roles)
	}
}

func TestRejectsBadSettings(t *testing.T) {
	for name, args := range map[string][]string{
		"unknown role":       {"--roles", "api,bogus"},
		"empty roles":        {"--roles", ","},
		"bad redis":          {"--redis-url", "http://x"},
		"bad log level":      {"--log-level", "loud"},
		"bad body limit":     {"--max-body-bytes", "-1"},
		"bad wait":           {"--consistency-wait", "soon"},
		"stray argument":     {"extra"},
		"origin with a path": {"--sdk-cors-origins", "https://app.example.com/page"},
		"origin not http":    {"--console-cors-origins", "ftp://files.example.com"},
		"star among origins": {"--sdk-cors-origins", "*,https://app.example.com"},
		"max age too long":   {"--cors-max-age", "48h"},
		"write timeout within the consistency wait": {"--http-write-timeout", "2s", "--consistency-wait", "2s"},
		"bad body timeout":                          {"--http-body-timeout", "0s"},
		"tiny header limit":                         {"--http-max-header-bytes", "100"},
		"negative flag series":                      {"--metrics-flag-series", "-1"},
	} {
		if _, err := config.Parse("vexil", args, env(nil)); err == nil {
			t.Errorf("%s: expected an error", name)
		}
	}
}

// --help shows each setting's type, not "string" for all.
func TestHelpShowsTypes(t *testing.T) {
	var out strings.Builder
	_, err := config.ParseWithOutput("vexil serve", []string{"--help"}, func(string) (string, bool) { return "", false }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"-consistency-wait duration", "-migrate bool", "-max-body-bytes int", "-database-url url",
		"-roles list", "-sdk-rate-limit number", "-log-format string"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCORSOrigins(t *testing.T) {
	c, err := config.Parse("vexil", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.SDKCORSOrigins, []string{"*"}) || len(c.ConsoleCORSOrigins) != 0 || c.CORSMaxAge != 24*time.Hour {
		t.Fatalf("CORS defaults: sdk %q console %q max age %v", c.SDKCORSOrigins, c.ConsoleCORSOrigins, c.CORSMaxAge)
	}
	c, err = config.Parse("vexil", []string{"--cors-max-age", "10m"}, env(map[string]string{
		"VEXIL_SDK_CORS_ORIGINS":     "",
		"VEXIL_CONSOLE_CORS_ORIGINS": " https://Console.Example.com , http://localhost:5173/,https://console.example.com",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SDKCORSOrigins) != 0 || c.CORSMaxAge != 10*time.Minute ||
		!slices.Equal(c.ConsoleCORSOrigins, []string{"https://console.example.com", "http://localhost:5173"}) {
		t.Fatalf("sdk %q console %q max age %v", c.SDKCORSOrigins, c.ConsoleCORSOrigins, c.CORSMaxAge)
	}
}
