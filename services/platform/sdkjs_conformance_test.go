package platform_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vexil-flags/vexil/services/testkit"
)

// conformanceFixture is sdk/conformance/fixture.json, the table every Vexil client must answer
// identically (its format: sdk/conformance/README.md).
type conformanceFixture struct {
	Project     string           `json:"project"`
	Environment string           `json:"environment"`
	Goals       []map[string]any `json:"goals"`
	Segments    []map[string]any `json:"segments"`
	Flags       []struct {
		Flag      map[string]any `json:"flag"`
		Targeting map[string]any `json:"targeting"`
	} `json:"flags"`
	Experiments []map[string]any `json:"experiments"`
	Contexts    struct {
		Keys struct {
			Prefix  string  `json:"prefix"`
			Count   int     `json:"count"`
			Missing float64 `json:"missing"`
		} `json:"keys"`
		Attributes map[string][]any `json:"attributes"`
		Missing    float64          `json:"missing"`
	} `json:"contexts"`
	Cases []struct {
		Name    string                    `json:"name"`
		Context map[string]any            `json:"context"`
		Expect  map[string]map[string]any `json:"expect"`
	} `json:"cases"`
}

// pageAnswer is one flag read through the OpenFeature web SDK's typed method, as
// vexilSdkTest.evaluateAll reports it (sdk/js/e2e/page.ts).
type pageAnswer struct {
	Value      any    `json:"value"`
	Variant    string `json:"variant"`
	Reason     string `json:"reason"`
	ErrorCode  string `json:"errorCode"`
	Experiment string `json:"experiment"`
}

// The browser package answers the cross-client fixture as the server does: for every case of
// the fixture and VEXIL_BROWSER_CONFORMANCE_CONTEXTS random contexts (300 by default: each is a
// context change, so one bulk evaluation, in the page), every flag read in headless Chromium
// through VexilWebProvider and the web SDK's typed methods has the value, variant, reason, error
// code and experiment of the server's single OFREP evaluation with the same client key; and the
// cases' expected answers hold.
func TestBrowserPackageConformance(t *testing.T) {
	chromium := chromiumPath(t)
	path := filepath.Join(moduleRoot(t), "sdk", "conformance", "fixture.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		// Not a skip: the browser package's conformance is unchecked without it.
		t.Fatalf("the cross-client fixture sdk/conformance/fixture.json (the Go SDK's conformance module, issue #15) is needed: %v", err)
	}
	var fx conformanceFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	contexts := 300
	if s := os.Getenv("VEXIL_BROWSER_CONFORMANCE_CONTEXTS"); s != "" {
		if contexts, err = strconv.Atoi(s); err != nil {
			t.Fatalf("VEXIL_BROWSER_CONFORMANCE_CONTEXTS: %v", err)
		}
	}
	dir := filepath.Join(moduleRoot(t), "sdk", "js")
	sources, _ := filepath.Glob(filepath.Join(dir, "src", "*.ts"))
	bundle := filepath.Join(dir, "dist-e2e", "page.js")
	npmBuilt(t, dir, "build:e2e", bundle, append(sources, filepath.Join(dir, "e2e", "page.ts"))...)

	// Seed in the fixture's order.
	v := startVexil(t, "--server-exposures", "false")
	p := "/api/v1/projects/" + fx.Project
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": fx.Project, "name": fx.Project})
	for _, g := range fx.Goals {
		v.must(201, "POST", p+"/goals", g)
	}
	for _, s := range fx.Segments {
		v.must(201, "POST", p+"/segments", s)
	}
	// The web SDK's method per flag type, and the code default the page passes.
	types := map[string]string{}
	for _, f := range fx.Flags {
		key := f.Flag["key"].(string)
		v.must(201, "POST", p+"/flags", f.Flag)
		v.must(200, "PUT", p+"/flags/"+key+"/environments/"+fx.Environment, f.Targeting)
		switch f.Flag["type"] {
		case "boolean", "string", "number":
			types[key] = f.Flag["type"].(string)
		default:
			types[key] = "object"
		}
	}
	for _, c := range fx.Cases {
		for key := range c.Expect {
			if _, ok := types[key]; !ok {
				types[key] = "string" // a flag the fixture does not have: FLAG_NOT_FOUND
			}
		}
	}
	var experimentFlag string
	for _, e := range fx.Experiments {
		body := maps.Clone(e)
		delete(body, "start")
		v.must(201, "POST", p+"/experiments", body)
		if e["start"] == true {
			v.must(200, "POST", p+"/experiments/"+e["key"].(string)+"/start", nil)
			experimentFlag = e["flag"].(string)
		}
	}
	clientKey := v.must(200, "GET", p+"/environments/"+fx.Environment, nil)["client_key"].(string)
	single := func(flag string, ctx map[string]any) pageAnswer {
		body, _ := json.Marshal(map[string]any{"context": ctx})
		r := v.as("").do("POST", "/ofrep/v1/evaluate/flags/"+flag, string(body), "Authorization", "Bearer "+clientKey)
		m := r.JSON(t)
		if r.Status != 200 {
			// The SDK serves the code default with the error.
			return pageAnswer{Value: codeDefault(types[flag]), Reason: "ERROR", ErrorCode: fmt.Sprint(m["errorCode"])}
		}
		a := pageAnswer{Value: m["value"], Variant: fmt.Sprint(m["variant"]), Reason: fmt.Sprint(m["reason"])}
		if md, ok := m["metadata"].(map[string]any); ok && md["experiment"] != nil {
			a.Experiment = fmt.Sprint(md["experiment"])
		}
		return a
	}
	if experimentFlag != "" {
		// The experiment's start is the last write: once it is served, everything is.
		waitUntil(t, 20*time.Second, "the api role to serve the experiment", func() bool {
			for i := range 20 {
				if single(experimentFlag, map[string]any{"targetingKey": fmt.Sprintf("probe-%d", i)}).Experiment != "" {
					return true
				}
			}
			return false
		})
	}

	// The contexts: the cases', then random ones drawn as the fixture says (a fixed seed, so a
	// failure can be reproduced).
	var ctxs []map[string]any
	for _, c := range fx.Cases {
		ctxs = append(ctxs, c.Context)
	}
	rng := rand.New(rand.NewPCG(15, 2026))
	attrs := slices.Sorted(maps.Keys(fx.Contexts.Attributes))
	for range contexts {
		ctx := map[string]any{}
		if rng.Float64() >= fx.Contexts.Keys.Missing {
			ctx["targetingKey"] = fx.Contexts.Keys.Prefix + strconv.Itoa(rng.IntN(fx.Contexts.Keys.Count))
		}
		for _, a := range attrs {
			if rng.Float64() >= fx.Contexts.Missing {
				values := fx.Contexts.Attributes[a]
				ctx[a] = values[rng.IntN(len(values))]
			}
		}
		ctxs = append(ctxs, ctx)
	}

	// The server's answers, from a few goroutines.
	want := make([]map[string]pageAnswer, len(ctxs))
	var wg sync.WaitGroup
	next := make(chan int)
	var mu sync.Mutex
	for range 4 {
		wg.Go(func() {
			for i := range next {
				answers := map[string]pageAnswer{}
				for flag := range types {
					answers[flag] = single(flag, ctxs[i])
				}
				mu.Lock()
				want[i] = answers
				mu.Unlock()
			}
		})
	}
	for i := range ctxs {
		next <- i
	}
	close(next)
	wg.Wait()

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
		"baseUrl": v.base, "clientKey": clientKey, "context": map[string]any{"targetingKey": "start"}, "changeDetection": "none", "exposures": false,
	})+")")
	testkit.WaitFor(t, browserSlowDeadline, "the provider to be ready", func() bool {
		var s sdkPageStats
		b.evalInto(t, "vexilSdkTest.stats()", &s)
		if s.Failed != "" {
			t.Fatalf("the provider failed: %s %v", s.Failed, s.Log)
		}
		return s.Ready
	})

	differences := 0
	started := time.Now()
	for from := 0; from < len(ctxs); from += 100 {
		chunk := ctxs[from:min(from+100, len(ctxs))]
		raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]byte]("vexilSdkTest.evaluateAll("+mustJSON(t, chunk)+", "+mustJSON(t, types)+")", chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("evaluate contexts %d..: %v", from, err)
		}
		var got []map[string]pageAnswer
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("evaluate contexts %d..: %s: %v", from, raw, err)
		}
		for j, answers := range got {
			i := from + j
			for _, flag := range slices.Sorted(maps.Keys(types)) {
				if !reflect.DeepEqual(answers[flag], want[i][flag]) {
					differences++
					if differences <= 20 {
						t.Errorf("context %s, flag %s: the page reads %+v, the server answers %+v", mustJSON(t, ctxs[i]), flag, answers[flag], want[i][flag])
					}
				}
			}
			if i < len(fx.Cases) {
				for flag, exp := range fx.Cases[i].Expect {
					a := answers[flag]
					for field, value := range exp {
						var have any
						switch field {
						case "value":
							have = a.Value
						case "variant":
							have = a.Variant
						case "reason":
							have = a.Reason
						case "errorCode":
							have = a.ErrorCode
						default:
							continue
						}
						if !reflect.DeepEqual(have, normalizeJSON(t, value)) {
							t.Errorf("case %q, flag %s: the page reads %s %v, the fixture expects %v", fx.Cases[i].Name, flag, field, have, value)
						}
					}
				}
			}
		}
	}
	t.Logf("%d contexts (%d cases, %d random) x %d flags read in the page in %v: %d differences from the server's OFREP answers",
		len(ctxs), len(fx.Cases), contexts, len(types), time.Since(started).Round(time.Millisecond), differences)
	b.checkLogs(t)
}

// codeDefault is the default the conformance page passes for a flag of the web SDK's type.
func codeDefault(typ string) any {
	switch typ {
	case "boolean":
		return false
	case "string":
		return ""
	case "number":
		return 0.0
	default:
		return map[string]any{}
	}
}
