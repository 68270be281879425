package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vexil-flags/vexil/services/platform"
)

func noEnv(string) (string, bool) { return "", false }

// `vexil version --json` reports the running binary: its module and the toolchain that built it.
func TestVersionReportsTheBinary(t *testing.T) {
	var out bytes.Buffer
	m := &platform.Main{Stdout: &out, Stderr: &bytes.Buffer{}, Lookup: noEnv}
	if err := m.Run(context.Background(), []string{"version", "--json"}); err != nil {
		t.Fatal(err)
	}
	var v platform.BuildInfo
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if v.Module != "github.com/vexil-flags/vexil" || v.GoVersion != runtime.Version() || v.Version == "" {
		t.Fatalf("version: %+v", v)
	}
	out.Reset()
	if err := m.Run(context.Background(), []string{"version"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "module: github.com/vexil-flags/vexil\n") || !strings.Contains(out.String(), "go: "+runtime.Version()+"\n") {
		t.Fatalf("plain version: %q", out.String())
	}
}

// `vexil healthcheck` exits 0 only when /healthz answers 200, and reaches a wildcard listen
// address (":port", as in the container image) on loopback.
func TestHealthcheckFollowsHealthz(t *testing.T) {
	var status atomic.Int32 // the handler runs on the server's goroutines
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	run := func(addr string) error {
		m := &platform.Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Lookup: func(k string) (string, bool) {
			if k == "VEXIL_HTTP_ADDR" {
				return addr, true
			}
			return "", false
		}}
		return m.Run(context.Background(), []string{"healthcheck"})
	}
	if err := run(srv.Listener.Addr().String()); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	if err := run(":" + port); err != nil {
		t.Fatalf("wildcard address: %v", err)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := run(srv.Listener.Addr().String()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unhealthy: %v", err)
	}
	srv.Close()
	if err := run(srv.Listener.Addr().String()); err == nil {
		t.Fatal("nothing listening: no error")
	}
}
