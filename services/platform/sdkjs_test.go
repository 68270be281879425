package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vexil-flags/vexil/services/testkit"
)

// sdkPageStats mirrors vexilSdkTest.stats() in sdk/js/e2e/page.ts.
type sdkPageStats struct {
	Ready         bool       `json:"ready"`
	StreamsOpened int        `json:"streamsOpened"`
	Failed        string     `json:"failed"`
	Changes       [][]string `json:"changes"`
	Log           []string   `json:"log"`
	Events        struct {
		Queued   int `json:"queued"`
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
		Beaconed int `json:"beaconed"`
		Dropped  int `json:"dropped"`
		Retries  int `json:"retries"`
	} `json:"events"`
}

// An experiment whose traffic comes only from the browser package (sdk/js, VexilWebProvider in
// the OpenFeature web SDK), in headless Chromium, on a page of another origin: the api role's
// own exposure logging is off, so every exposure the results count is one the package sent when
// the page read the flag, and every goal one of its track() calls. Full batches go by fetch
// while the page lives; the rest by sendBeacon when the page is left. The results show each
// reader once in the variation the page read, the conversions and values the page tracked, and
// nothing for users whose context was evaluated but who never read the flag. On the way, a
// toggle reaches the page through the event stream. The console holds no error.
//
// The test fails, never skips, when chromium or npm is missing.
func TestBrowserPackageRunsAnExperiment(t *testing.T) {
	chromium := chromiumPath(t)
	dir := filepath.Join(moduleRoot(t), "sdk", "js")
	sources, err := filepath.Glob(filepath.Join(dir, "src", "*.ts"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("sdk/js sources: %v %v", sources, err)
	}
	bundle := filepath.Join(dir, "dist-e2e", "page.js")
	npmBuilt(t, dir, "build:e2e", bundle, append(sources, filepath.Join(dir, "e2e", "page.ts"))...)

	v := startVexil(t, "--server-exposures", "false", "--telemetry-refresh-interval", "1s")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "purchase", "name": "Purchase", "kind": "conversion"})
	v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "revenue", "name": "Revenue", "kind": "value"})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "checkout", "name": "Checkout", "type": "string",
		"variations": []any{map[string]any{"key": "a", "value": "A"}, map[string]any{"key": "b", "value": "B"}}})
	v.must(200, "PUT", "/api/v1/projects/shop/flags/checkout/environments/production",
		map[string]any{"on": true, "off_variation": "a", "default": map[string]any{"variation": "a"}})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "banner", "name": "Banner", "type": "boolean"})
	v.must(200, "PUT", "/api/v1/projects/shop/flags/banner/environments/production",
		map[string]any{"on": false, "off_variation": "false", "default": map[string]any{"variation": "true"}})
	const exp = "checkout-exp"
	v.must(201, "POST", "/api/v1/projects/shop/experiments", map[string]any{"key": exp, "name": "Does B sell more?",
		"flag": "checkout", "environment": "production", "allocation": 100000,
		"variations":   []any{map[string]any{"variation": "a", "control": true}, map[string]any{"variation": "b"}},
		"primary_goal": "purchase", "secondary_goals": []string{"revenue"}})
	v.must(200, "POST", "/api/v1/projects/shop/experiments/"+exp+"/start", nil)
	env := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)
	clientKey, serverKey := env["client_key"].(string), env["server_key"].(string)
	waitUntil(t, 10*time.Second, "the api role to serve the experiment", func() bool {
		r := v.as("").do("POST", "/ofrep/v1/evaluate/flags/checkout", `{"context":{"targetingKey":"probe"}}`, "Authorization", "Bearer "+serverKey)
		return r.Status == 200 && strings.Contains(string(r.Body), exp)
	})

	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, "e2e", "index.html"))
	})
	pages.HandleFunc("GET /page.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, bundle) })
	pageOrigin := httptest.NewServer(pages)
	t.Cleanup(pageOrigin.Close)

	b := startBrowser(t, chromium)
	if err := chromedp.Do(b.ctx, chromedp.Navigate(pageOrigin.URL+"/")); err != nil {
		t.Fatalf("open the test page: %v", err)
	}
	// Batches of 15 with a flush interval longer than the test: full batches go by fetch at once,
	// and what is left when the page is left goes by sendBeacon.
	const batchSize = 15
	b.eval(t, "vexilSdkTest.start("+mustJSON(t, map[string]any{
		"baseUrl": v.base, "clientKey": clientKey, "context": map[string]any{"targetingKey": "visitor-0"},
		"events": map[string]any{"batchSize": batchSize, "flushIntervalMs": 600_000},
	})+")")
	stats := func() sdkPageStats {
		var s sdkPageStats
		b.evalInto(t, "vexilSdkTest.stats()", &s)
		return s
	}
	waitFor := func(within time.Duration, what string, ok func(sdkPageStats) bool) sdkPageStats {
		t.Helper()
		var s sdkPageStats
		testkit.WaitFor(t, within, what, func() bool {
			if s = stats(); s.Failed != "" {
				b.checkLogs(t)
				t.Fatalf("waiting for %s: the provider failed: %s", what, mustJSON(t, s))
			}
			return ok(s)
		})
		return s
	}
	waitFor(browserSlowDeadline, "the provider to be ready", func(s sdkPageStats) bool { return s.Ready })

	// A toggle reaches the page through the event stream (the package's default change detection).
	readBanner := func() bool {
		var d struct {
			Value bool `json:"value"`
		}
		b.evalInto(t, `vexilSdkTest.readBoolean("banner")`, &d)
		return d.Value
	}
	if readBanner() {
		t.Fatal("banner reads true before the toggle")
	}
	v.must(200, "POST", "/api/v1/projects/shop/flags/banner/environments/production/toggle", map[string]any{"on": true})
	toggled := time.Now()
	waitUntil(t, browserToggleDeadline, "the page to see the banner toggled on", readBanner)
	t.Logf("toggle seen by the page %v after the management API's answer", time.Since(toggled).Round(time.Millisecond))
	if s := stats(); len(s.Changes) == 0 || !slices.Contains(s.Changes[len(s.Changes)-1], "banner") {
		t.Fatalf("configuration-changed events %v, want the last naming banner", s.Changes)
	}

	// The visits: readers 0..39 read the flag (twice each); visitors 40..44 are evaluated (their
	// context is the page's) but never read it. Every third buys; every fourth has revenue.
	const readers, visitors = 40, 45
	variation := map[string]string{}
	purchases, revenue := map[string]int{}, map[string]float64{}
	tracked := 0
	for i := range visitors {
		user := fmt.Sprintf("shopper-%d", i)
		read := []string{}
		if i < readers {
			read = []string{"checkout"}
		}
		goals := []map[string]any{}
		if i%3 == 0 {
			goals = append(goals, map[string]any{"name": "purchase"})
		}
		if i%4 == 0 {
			goals = append(goals, map[string]any{"name": "revenue", "value": 10 + i})
		}
		tracked += len(goals)
		raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]byte]("vexilSdkTest.visit("+mustJSON(t, user)+", "+mustJSON(t, read)+", "+mustJSON(t, goals)+")", chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("visit of %s: %v", user, err)
		}
		var seen map[string]struct {
			Value      string `json:"value"`
			Variant    string `json:"variant"`
			Experiment string `json:"experiment"`
		}
		if err := json.Unmarshal(raw, &seen); err != nil {
			t.Fatalf("visit of %s: %s: %v", user, raw, err)
		}
		if i >= readers {
			continue
		}
		c := seen["checkout"]
		if c.Experiment != exp || (c.Variant != "a" && c.Variant != "b") || c.Value != strings.ToUpper(c.Variant) {
			t.Fatalf("%s read checkout as %+v, want a variation of %s", user, c, exp)
		}
		variation[user] = c.Variant
		if i%3 == 0 {
			purchases[c.Variant]++
		}
		if i%4 == 0 {
			revenue[c.Variant] += float64(10 + i)
		}
	}
	exposedTo := map[string]int{}
	for _, x := range variation {
		exposedTo[x]++
	}
	if exposedTo["a"] == 0 || exposedTo["b"] == 0 {
		t.Fatalf("the split put every reader in one variation: %v", exposedTo)
	}

	// Full batches went by fetch; the rest waits for the page to be left.
	sentByFetch := readers/batchSize*batchSize + tracked/batchSize*batchSize
	waiting := readers + tracked - sentByFetch
	s := waitFor(browserSlowDeadline, "the full batches to be answered", func(s sdkPageStats) bool {
		return s.Events.Accepted == sentByFetch && s.Events.Queued == waiting
	})
	if s.Events.Dropped != 0 || s.Events.Rejected != 0 || s.Events.Retries != 0 || s.Events.Beaconed != 0 {
		t.Fatalf("event delivery before leaving the page: %+v", s.Events)
	}
	b.checkLogs(t)

	// Leaving the page (pagehide) hands the rest to sendBeacon.
	if err := chromedp.Do(b.ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("leave the test page: %v", err)
	}

	ctx := context.Background()
	count := func(sql string, args ...any) int {
		var n int
		if err := v.p.Pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	converted := purchases["a"] + purchases["b"]
	waitUntil(t, 90*time.Second, "the page's exposures and goals to be stored", func() bool {
		return count(`SELECT count(*) FROM experiment_exposures WHERE subject_kind = 'experiment' AND subject = $1`, exp) == readers &&
			count(`SELECT count(*) FROM goal_events WHERE user_key LIKE 'shopper-%'`) == tracked
	})
	waitUntil(t, 90*time.Second, "the tracked goals to be attributed", func() bool {
		return count(`SELECT coalesce(sum(conversions), 0) FROM experiment_user_goals
			WHERE subject_kind = 'experiment' AND subject = $1 AND goal = 'purchase'`, exp) == converted
	})
	// Once each: one exposure event per reader (a flag read twice is one exposure), no visitor
	// who never read the flag, no event stored twice.
	if n := count(`SELECT count(*) FROM evaluation_events WHERE experiment = $1 AND user_key IS NOT NULL`, exp); n != readers {
		t.Fatalf("%d exposure events stored, want %d (one per reader)", n, readers)
	}
	if n := count(`SELECT count(*) FROM evaluation_events WHERE user_key >= 'shopper-40' AND user_key LIKE 'shopper-4_'`); n != 0 {
		t.Fatalf("%d exposure events for visitors who never read the flag", n)
	}

	v.must(200, "POST", "/api/v1/projects/shop/experiments/"+exp+"/analyze", nil)
	report := v.must(200, "GET", "/api/v1/projects/shop/experiments/"+exp+"/results", nil)
	if report["users"] != float64(readers) || report["excluded_users"] != 0.0 {
		t.Fatalf("report users: %v", report)
	}
	for name, want := range map[string]func(x string) float64{
		"purchase": func(x string) float64 { return float64(purchases[x]) / float64(exposedTo[x]) },
		"revenue":  func(x string) float64 { return revenue[x] / float64(exposedTo[x]) },
	} {
		for x, res := range goalResult(t, report, name) {
			if n := res["users"].(float64); int(n) != exposedTo[x] {
				t.Fatalf("%s: %v users in %s, want %d", name, n, x, exposedTo[x])
			}
			if got := res["estimate"].(float64); math.Abs(got-want(x)) > 1e-9 {
				t.Fatalf("%s estimate in %s: %v, want %v", name, x, got, want(x))
			}
		}
	}
	t.Logf("readers per variation %v, purchases %v, revenue %v; %d events by fetch, %d by sendBeacon",
		exposedTo, purchases, revenue, sentByFetch, waiting)
	b.checkLogs(t)
}

// The browser package follows the stream through a drop: a proxy between the page and Vexil cuts
// every connection right after the stream opened (before any change, so the page's EventSource
// only has the id of the stream's first block), holds the reconnect until a toggle is served,
// then lets it through. The reconnect carries Last-Event-ID, Vexil answers with the change the
// page missed, and the page shows it without a poll or a reload.
func TestBrowserPackageResumesTheStream(t *testing.T) {
	chromium := chromiumPath(t)
	dir := filepath.Join(moduleRoot(t), "sdk", "js")
	sources, _ := filepath.Glob(filepath.Join(dir, "src", "*.ts"))
	bundle := filepath.Join(dir, "dist-e2e", "page.js")
	npmBuilt(t, dir, "build:e2e", bundle, append(sources, filepath.Join(dir, "e2e", "page.ts"))...)

	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "banner", "name": "Banner", "type": "boolean"})
	v.must(200, "PUT", "/api/v1/projects/shop/flags/banner/environments/production",
		map[string]any{"on": false, "off_variation": "false", "default": map[string]any{"variation": "true"}})
	clientKey := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)["client_key"].(string)
	served := func(want bool) func() bool {
		return func() bool {
			r := v.as("").do("POST", "/ofrep/v1/evaluate/flags/banner", `{"context":{"targetingKey":"probe"}}`, "Authorization", "Bearer "+clientKey)
			return r.Status == 200 && r.JSON(t)["value"] == want
		}
	}
	waitUntil(t, 10*time.Second, "the api role to serve the banner off", served(false))

	// The proxy: the page's only way to Vexil. It records the Last-Event-ID of each stream
	// request and holds stream requests while gate is set.
	target, err := url.Parse(v.base)
	if err != nil {
		t.Fatal(err)
	}
	forward := &httputil.ReverseProxy{FlushInterval: -1, Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // Vexil lists the stream under the host the page called
	}}
	var (
		mu        sync.Mutex
		streamIDs []string
		gate      chan struct{}
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sdk/v1/stream" {
			mu.Lock()
			streamIDs = append(streamIDs, r.Header.Get("Last-Event-ID"))
			g := gate
			mu.Unlock()
			if g != nil {
				select {
				case <-g:
				case <-r.Context().Done():
					return
				}
			}
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	streams := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(streamIDs)
	}

	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, "e2e", "index.html"))
	})
	pages.HandleFunc("GET /page.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, bundle) })
	pageOrigin := httptest.NewServer(pages)
	t.Cleanup(pageOrigin.Close)

	b := startBrowser(t, chromium)
	if err := chromedp.Do(b.ctx, chromedp.Navigate(pageOrigin.URL+"/")); err != nil {
		t.Fatalf("open the test page: %v", err)
	}
	b.eval(t, "vexilSdkTest.start("+mustJSON(t, map[string]any{
		"baseUrl": proxy.URL, "clientKey": clientKey, "context": map[string]any{"targetingKey": "visitor-1"},
	})+")")
	var s sdkPageStats
	testkit.WaitFor(t, browserSlowDeadline, "the provider to be ready and its stream open", func() bool {
		b.evalInto(t, "vexilSdkTest.stats()", &s)
		return s.Ready && s.StreamsOpened > 0
	})
	readBanner := func() bool {
		var d struct {
			Value bool `json:"value"`
		}
		b.evalInto(t, `vexilSdkTest.readBoolean("banner")`, &d)
		return d.Value
	}
	if readBanner() || len(streams()) != 1 || streams()[0] != "" {
		t.Fatalf("before the drop: banner %v, stream requests' Last-Event-ID %q", readBanner(), streams())
	}

	// Drop, hold the reconnect, toggle, and let it through once the api role serves the toggle.
	release := make(chan struct{})
	mu.Lock()
	gate = release
	mu.Unlock()
	proxy.CloseClientConnections()
	testkit.WaitFor(t, browserSlowDeadline, "the page's EventSource to reconnect", func() bool { return len(streams()) >= 2 })
	v.must(200, "POST", "/api/v1/projects/shop/flags/banner/environments/production/toggle", map[string]any{"on": true})
	waitUntil(t, 10*time.Second, "the api role to serve the toggle", served(true))
	if readBanner() {
		t.Fatal("the page saw the toggle while its stream was held")
	}
	close(release)
	released := time.Now()
	waitUntil(t, browserToggleDeadline, "the page to see the toggle after the reconnect", readBanner)
	t.Logf("the missed toggle reached the page %v after the reconnect was let through", time.Since(released).Round(time.Millisecond))

	ids := streams()
	if ids[1] == "" {
		t.Fatalf("the reconnect carried no Last-Event-ID: %q", ids)
	}
	b.evalInto(t, "vexilSdkTest.stats()", &s)
	if len(s.Changes) == 0 || !slices.Contains(s.Changes[len(s.Changes)-1], "banner") {
		t.Fatalf("configuration-changed events %v, want the last naming banner", s.Changes)
	}
	t.Logf("stream requests' Last-Event-ID: %q", ids)
	// The cut stream is the one failure the page may show.
	stream := proxy.URL + "/sdk/v1/stream?key=" + clientKey
	b.checkLogs(t, stream+": net::ERR_INCOMPLETE_CHUNKED_ENCODING", "net::ERR_INCOMPLETE_CHUNKED_ENCODING "+stream)
}

// The React example (sdk/js/examples/react: @openfeature/react-sdk with VexilWebProvider, as CI
// builds it) works against the platform: the component shows the flag's value, Buy tracks a
// purchase of the page's user, and a toggle re-renders the page.
func TestBrowserPackageReactExample(t *testing.T) {
	chromium := chromiumPath(t)
	sdk := filepath.Join(moduleRoot(t), "sdk", "js")
	sources, _ := filepath.Glob(filepath.Join(sdk, "src", "*.ts"))
	npmBuilt(t, sdk, "build", filepath.Join(sdk, "dist", "index.js"), sources...)
	example := filepath.Join(sdk, "examples", "react")
	// The example installs a packed copy of sdk/js (install-links): reinstall when dist changed,
	// by removing the mark of a finished install.
	installed := filepath.Join(example, "node_modules", ".package-lock.json")
	if olderThan(t, installed, filepath.Join(sdk, "dist", "index.js")) {
		if err := os.Remove(installed); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	npmBuilt(t, example, "build", filepath.Join(example, "dist", "main.js"),
		filepath.Join(example, "src", "main.tsx"), filepath.Join(sdk, "dist", "index.js"))

	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "purchase", "name": "Purchase", "kind": "conversion"})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "checkout-button", "name": "Checkout button", "type": "string",
		"variations": []any{map[string]any{"key": "plain", "value": "Buy"}, map[string]any{"key": "urgent", "value": "Buy now, 2 left"}}})
	v.must(200, "PUT", "/api/v1/projects/shop/flags/checkout-button/environments/production",
		map[string]any{"on": true, "off_variation": "plain", "default": map[string]any{"variation": "urgent"}})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "banner", "name": "Banner", "type": "boolean"})
	v.must(200, "PUT", "/api/v1/projects/shop/flags/banner/environments/production",
		map[string]any{"on": false, "off_variation": "false", "default": map[string]any{"variation": "true"}})
	clientKey := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)["client_key"].(string)
	waitUntil(t, 10*time.Second, "the api role to serve the flags", func() bool {
		r := v.as("").do("POST", "/ofrep/v1/evaluate/flags/checkout-button", `{"context":{"targetingKey":"probe"}}`, "Authorization", "Bearer "+clientKey)
		return r.Status == 200 && r.JSON(t)["value"] == "Buy now, 2 left"
	})

	pageOrigin := httptest.NewServer(http.FileServer(http.Dir(example)))
	t.Cleanup(pageOrigin.Close)
	b := startBrowser(t, chromium)
	query := url.Values{"vexil": {v.base}, "key": {clientKey}, "user": {"react-user-1"}}
	if err := chromedp.Do(b.ctx, chromedp.Navigate(pageOrigin.URL+"/index.html?"+query.Encode())); err != nil {
		t.Fatalf("open the example: %v", err)
	}
	text := func(script string) string {
		var s string
		b.evalInto(t, script, &s)
		return s
	}
	button := `(document.querySelector("section button") || {}).textContent || ""`
	banner := `(document.querySelector('[role="status"]') || {}).textContent || ""`
	testkit.WaitFor(t, browserSlowDeadline, "the example to show the flag's value", func() bool { return text(button) == "Buy now, 2 left" })
	if got := text(banner); got != "" {
		t.Fatalf("the banner shows %q while its flag is off", got)
	}
	b.eval(t, `document.querySelector("section button").click()`)
	v.must(200, "POST", "/api/v1/projects/shop/flags/banner/environments/production/toggle", map[string]any{"on": true})
	testkit.WaitFor(t, browserToggleDeadline, "the example to re-render with the banner", func() bool { return text(banner) == "Free shipping this week" })
	// The purchase leaves with the next flush (2 s) or when the page is left.
	if err := chromedp.Do(b.ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("leave the example: %v", err)
	}
	waitUntil(t, 60*time.Second, "the purchase to be stored", func() bool {
		var n int
		_ = v.p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM goal_events WHERE user_key = 'react-user-1' AND goal = 'purchase' AND value = 42.5`).Scan(&n)
		return n == 1
	})
	b.checkLogs(t)
}
