package platform_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// nginxPath finds Debian's nginx. A missing nginx fails the test: CI installs it (.ci/run), and a
// skipped collapsing test proves nothing.
func nginxPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("nginx is not installed: apt-get install -y nginx-light (.ci/run does it); this test runs deploy/nginx/vexil-sdk.conf in front of Vexil")
	return ""
}

// startNginx runs nginx with deploy/nginx/vexil-sdk.conf in front of upstream (host:port) and
// returns its base URL.
func startNginx(t *testing.T, upstream string) string {
	t.Helper()
	bin := nginxPath(t)
	dir := t.TempDir()
	conf, err := os.ReadFile(filepath.Join(moduleRoot(t), "deploy", "nginx", "vexil-sdk.conf"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	site := string(conf)
	for old, new := range map[string]string{"server 127.0.0.1:8080;": "server " + upstream + ";",
		"listen 80;": "listen " + addr + ";", "/var/cache/nginx/vexil": filepath.Join(dir, "cache")} {
		if !strings.Contains(site, old) {
			t.Fatalf("deploy/nginx/vexil-sdk.conf no longer has %q, which this test replaces", old)
		}
		site = strings.ReplaceAll(site, old, new)
	}
	if err := os.WriteFile(filepath.Join(dir, "vexil-sdk.conf"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;" // the workers write the cache under this test's private directory
	}
	main := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/vexil-sdk.conf;
}
`, user, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	base := "http://" + addr
	ingesttest.WaitFor(t, 10*time.Second, "nginx to listen", func() bool {
		select {
		case <-exited:
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %s %s", out.String(), errLog)
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return base
}

// publicAnswer is one answer of the public stream: its event id and data ("" when none).
type publicAnswer struct {
	status   int
	id, data string
	cache    string // nginx's X-Cache-Status
}

func getPublic(url, lastEventID string) (publicAnswer, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return publicAnswer{}, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return publicAnswer{}, err
	}
	defer res.Body.Close()
	a := publicAnswer{status: res.StatusCode, cache: res.Header.Get("X-Cache-Status")}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			a.id = line[4:]
		case strings.HasPrefix(line, "data: "):
			a.data = line[6:]
		}
	}
	return a, sc.Err()
}

// metricNumber reads one unlabelled counter or gauge of v's /metrics.
func metricNumber(t *testing.T, v *vexil, name string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(strings.TrimSpace(metricValue(v, name)), 64)
	if err != nil {
		t.Fatalf("%s in /metrics: %v", name, err)
	}
	return f
}

// TestNginxCollapsesThePublicStream runs deploy/nginx/vexil-sdk.conf in Debian's nginx in front
// of Vexil: N clients following an environment's public change stream through nginx cost one
// origin request per change, and every one of them hears the change.
func TestNginxCollapsesThePublicStream(t *testing.T) {
	t.Parallel()
	v := startVexil(t)
	keys := v.tv.CreateProject("web", "banner")
	proxy := startNginx(t, v.p.Addr)
	path := "/sdk/v1/client/" + keys.Client + "/stream"
	const clients = 40
	requests := func() float64 { return metricNumber(t, v, "vexil_sdk_public_stream_requests_total") }

	// Server-side keys are secrets: never in a URL, not even here.
	if a, err := getPublic(v.base+"/sdk/v1/client/"+keys.Server+"/stream", ""); err != nil || a.status != 401 {
		t.Fatalf("public stream with a server key: %+v %v", a, err)
	}
	// A first answer: the version to follow, no event.
	first, err := getPublic(proxy+path, "")
	if err != nil || first.status != 200 || first.id == "" || first.data != "" {
		t.Fatalf("first answer: %+v %v", first, err)
	}

	for round := range 3 {
		before := requests()
		var wg sync.WaitGroup
		answers := make([]publicAnswer, clients)
		errs := make([]error, clients)
		sent := make(chan struct{}, clients)
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sent <- struct{}{}
				answers[i], errs[i] = getPublic(proxy+path, first.id)
			}()
		}
		for range clients {
			<-sent
		}
		// Vexil holds the one collapsed request until a change; nginx holds the others.
		ingesttest.WaitFor(t, 10*time.Second, "the collapsed request to wait at the origin", func() bool {
			return metricNumber(t, v, "vexil_sdk_public_stream_open") == 1
		})
		v.must(200, "POST", "/api/v1/projects/web/flags/banner/environments/production/toggle", map[string]any{"on": round%2 == 0})
		wg.Wait()
		origin := requests() - before
		cached := 0
		for i, a := range answers {
			if errs[i] != nil || a.status != 200 || !strings.Contains(a.data, `"banner"`) || a.id == first.id {
				t.Fatalf("round %d: client %d: %+v %v", round, i, a, errs[i])
			}
			if a.cache != "MISS" {
				cached++
			}
		}
		t.Logf("round %d: %d clients through nginx cost %v origin request(s); %d answered from nginx's cache or lock", round, clients, origin, cached)
		if origin != 1 {
			t.Fatalf("round %d: %d clients cost %v origin requests through nginx, want 1", round, clients, origin)
		}
		first = answers[0]
	}
}
