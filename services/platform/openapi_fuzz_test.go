package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The OpenAPI-driven fuzz test: it reads the management API's own document, and for every
// operation sends valid requests and requests broken in every way a client (or an attacker) can
// break them: wrong JSON types, NUL and invalid UTF-8 in any string (nested inside variation
// values and object keys too), huge and deeply nested values, malformed bodies, bad path
// parameters (%00, %ff, %c3%28, 5,000 characters), bad cursors and query parameters, bad
// headers. No answer may be a 5xx, and every error must be JSON {code, message}. Then the event
// store must still verify (audit verify) and replaying it must rebuild the live read models
// exactly (replay --verify): nothing a refused request did may have leaked into either.
//
// VEXIL_FUZZ_REQUESTS sets the number of requests (default 3000, bounded for CI) and
// VEXIL_FUZZ_SEED the seed (default 1), so a failure found locally with a longer run replays.
func TestOpenAPIFuzzNeverAnswers5xx(t *testing.T) {
	t.Parallel()
	budget := envInt(t, "VEXIL_FUZZ_REQUESTS", 3000)
	seed := uint64(envInt(t, "VEXIL_FUZZ_SEED", 1))
	v := startVexil(t, "--roles", noExperimentRole)
	fx := newFuzzFixture(t, v)

	doc := v.must(200, "GET", "/api/v1/openapi.json", nil)
	ops := fuzzOperations(t, doc)
	if len(ops) < 80 {
		t.Fatalf("the OpenAPI document lists %d operations; expected the whole API", len(ops))
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	per := max(budget/len(ops), 8)
	var reqs []fuzzRequest
	var last []fuzzRequest // deletions run last, so the fixture lives through the rest
	for _, op := range ops {
		g := &fuzzGen{rng: rng, op: op, fx: fx, doc: doc}
		batch := g.requests(per)
		if op.method == http.MethodDelete {
			last = append(last, batch...)
		} else {
			reqs = append(reqs, batch...)
		}
	}
	reqs = append(reqs, fx.sdkRequests(rng, per*3)...)

	start := time.Now()
	succeeded := map[string]int{}
	failures := fuzzRun(t, v, reqs, 4, succeeded)
	failures = append(failures, fuzzRun(t, v, last, 4, succeeded)...)
	elapsed := time.Since(start)
	t.Logf("%d requests over %d operations (seed %d) in %v", len(reqs)+len(last), len(ops), seed, elapsed.Round(time.Millisecond))
	var never []string
	for _, op := range ops {
		if succeeded[op.method+" "+op.path] == 0 {
			never = append(never, op.method+" "+op.path)
		}
	}
	// Not a failure (a fixture cannot make every operation succeed: starting an experiment
	// that is running), but the place to look when coverage drops.
	t.Logf("%d of %d operations answered 2xx at least once; never: %v", len(ops)-len(never), len(ops), never)
	for i, f := range failures {
		if i == 30 {
			t.Errorf("... and %d more", len(failures)-30)
			break
		}
		t.Error(f)
	}
	if len(failures) > 0 {
		t.FailNow()
	}

	// The store and the read models are still sound.
	ctx := context.Background()
	waitUntil(t, 60*time.Second, "the live read models", func() bool {
		var behind int
		_ = v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT stream_id, max(version) v FROM events GROUP BY stream_id) e
			WHERE EXISTS (SELECT 1 FROM unnest(ARRAY['access','catalog','rulesets','audit']) p(name)
			  LEFT JOIN projection_checkpoints c ON c.projection = p.name AND c.stream_id = e.stream_id
			  WHERE coalesce(c.version, 0) < e.v)`).Scan(&behind)
		return behind == 0
	})
	var events int
	if err := v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events < 50 {
		t.Fatalf("only %d events: the valid requests did not exercise the writes", events)
	}
	url := v.p.Config.DatabaseURL
	if out, err := verify(t, url); err != nil || !strings.Contains(out, `"problems": []`) {
		t.Fatalf("audit verify after fuzzing: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "replay", "--verify", "--database-url", url); err != nil || !strings.Contains(out, `"differences": []`) {
		t.Fatalf("replay --verify after fuzzing: %v\n%s", err, out)
	}
	t.Logf("%d events; audit verify and replay --verify clean", events)
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// fuzzOp is one operation of the OpenAPI document.
type fuzzOp struct {
	method, path string   // path as in the document: /api/v1/projects/{project}
	params       []string // path parameters in order
	query        []string
	body         map[string]any // the request body's schema, nil without one
	write        bool
}

func fuzzOperations(t *testing.T, doc map[string]any) []fuzzOp {
	paths, _ := doc["paths"].(map[string]any)
	var ops []fuzzOp
	for path, item := range paths {
		for method, raw := range item.(map[string]any) {
			op := raw.(map[string]any)
			f := fuzzOp{method: strings.ToUpper(method), path: path, write: method != "get"}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				p := p.(map[string]any)
				switch p["in"] {
				case "path":
					f.params = append(f.params, p["name"].(string))
				case "query":
					f.query = append(f.query, p["name"].(string))
				}
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				f.body = rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
			}
			ops = append(ops, f)
		}
	}
	// The document is a map: sort so a seed always means the same requests.
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].path != ops[j].path {
			return ops[i].path < ops[j].path
		}
		return ops[i].method < ops[j].method
	})
	if len(ops) == 0 {
		t.Fatal("no operations in the OpenAPI document")
	}
	return ops
}

// fuzzFixture is what valid requests refer to.
type fuzzFixture struct {
	project, serverKey string
	params             map[string]string // path parameter -> a value that exists
	ids                map[string]string // the first path segment before {id} -> an id that exists
	seq                int
}

func newFuzzFixture(t *testing.T, v *vexil) *fuzzFixture {
	const p = "fz"
	created := v.must(201, "POST", "/api/v1/projects", map[string]any{"key": p, "name": "Fuzz"})
	serverKey, _ := created["environments"].(map[string]any)["production"].(map[string]any)["server_key"].(string)
	base := "/api/v1/projects/" + p
	v.must(201, "POST", base+"/flags", map[string]any{"key": "f", "name": "F", "type": "boolean"})
	v.must(201, "POST", base+"/flags", map[string]any{"key": "sf", "name": "SF", "type": "json",
		"variations": []any{map[string]any{"key": "a", "value": map[string]any{"x": []any{1, "y"}}},
			map[string]any{"key": "b", "value": map[string]any{"x": nil}}}})
	v.must(201, "POST", base+"/flags", map[string]any{"key": "fa", "name": "FA", "type": "boolean"})
	for _, s := range []string{"s", "sa"} {
		v.must(201, "POST", base+"/segments", map[string]any{"key": s, "name": "S", "included": []any{"u1"}})
	}
	for _, g := range []string{"g", "ga"} {
		v.must(201, "POST", base+"/goals", map[string]any{"key": g, "name": "G", "kind": "conversion"})
	}
	for _, e := range []string{"e", "ea"} {
		v.must(201, "POST", base+"/experiments", map[string]any{"key": e, "name": "E", "flag": "f",
			"environment": "production", "allocation": 50000, "primary_goal": "g",
			"variations": []any{map[string]any{"variation": "false", "control": true}, map[string]any{"variation": "true"}}})
	}
	sched := v.must(201, "POST", base+"/schedules", map[string]any{"flag": "f", "environment": "development",
		"kind": "toggle", "on": true, "at": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)})
	rule := v.must(201, "POST", base+"/autoops-rules", map[string]any{"flag": "f", "environment": "development",
		"name": "errors up", "metric": map[string]any{"goal": "g", "variation": "true", "control": "false"},
		"comparison": "gt", "threshold": 0.005, "min_sample": 1000, "min_probability": 0.95, "action": "turn_off"})
	trig := v.must(201, "POST", base+"/triggers", map[string]any{"name": "kill", "flag": "f",
		"environment": "development", "action": "off"})
	tok := v.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "fuzz", "scope": "read"})
	roll := v.must(201, "POST", base+"/rollouts", map[string]any{"flag": "sf", "environment": "production",
		"variation": "a", "other": "b", "template": map[string]any{"every": "1h"}})
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	fx := &fuzzFixture{project: p, serverKey: serverKey,
		params: map[string]string{"project": p, "flag": "f", "environment": "production", "segment": "s",
			"goal": "g", "experiment": "e", "kind": "server"},
		ids: map[string]string{"schedules": str(sched, "id"), "autoops-rules": str(rule, "id"),
			"triggers": str(trig["trigger"].(map[string]any), "id"), "tokens": str(tok, "id"),
			"rollouts": str(roll, "id")}}
	for k, id := range fx.ids {
		if id == "" {
			t.Fatalf("the fixture's %s has no id", k)
		}
	}
	return fx
}

// paramValue is a value of a path parameter that exists, in the context of path. Archiving and
// restoring act on entities of their own, so the others stay live for the rest of the run.
func (fx *fuzzFixture) paramValue(path, name string) string {
	if strings.HasSuffix(path, "/archive") || strings.HasSuffix(path, "/restore") {
		switch name {
		case "flag", "segment", "goal", "experiment":
			return fx.params[name] + "a"
		}
	}
	if name == "id" {
		parts := strings.Split(path, "/")
		for i, s := range parts {
			if s == "{id}" && i > 0 {
				return fx.ids[parts[i-1]]
			}
		}
	}
	if v, ok := fx.params[name]; ok {
		return v
	}
	return "x"
}

func (fx *fuzzFixture) key(prefix string) string {
	fx.seq++
	return fmt.Sprintf("%s%d", prefix, fx.seq)
}

// example is a body the operation accepts (when the fixture allows), to mutate one leaf at a
// time: a NUL in an otherwise valid command is what reaches storage.
func (fx *fuzzFixture) example(op fuzzOp) map[string]any {
	at := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	variations := []any{map[string]any{"key": "a", "value": map[string]any{"colour": "red", "sizes": []any{1, 2}}},
		map[string]any{"key": "b", "value": map[string]any{"colour": "blue", "nested": map[string]any{"k": "v"}}}}
	switch op.method + " " + strings.TrimPrefix(op.path, "/api/v1") {
	case "POST /projects":
		return map[string]any{"key": fx.key("p"), "name": "Project", "description": "d"}
	case "PATCH /projects/{project}":
		return map[string]any{"name": "Fuzzed", "description": "about"}
	case "POST /projects/{project}/environments":
		return map[string]any{"key": fx.key("env"), "name": "Env"}
	case "POST /projects/{project}/flags":
		return map[string]any{"key": fx.key("fl"), "name": "Flag", "description": "d", "type": "json",
			"tags": []any{"t1"}, "variations": variations}
	case "PATCH /projects/{project}/flags/{flag}":
		return map[string]any{"name": "F2", "description": "d", "tags": []any{"a", "b"}}
	case "PUT /projects/{project}/flags/{flag}/variations":
		return map[string]any{"variations": []any{map[string]any{"key": "true", "value": true, "name": "on"},
			map[string]any{"key": "false", "value": false, "name": "off"}}}
	case "PUT /projects/{project}/flags/{flag}/environments/{environment}":
		return map[string]any{"on": true, "off_variation": "false", "default": map[string]any{"variation": "true"},
			"rules": []any{map[string]any{"description": "beta users", "clauses": []any{map[string]any{"attribute": "email",
				"op": "ends_with", "values": []any{"@example.com"}}}, "serve": map[string]any{"variation": "true"}}}}
	case "POST /projects/{project}/flags/{flag}/environments/{environment}/toggle":
		return map[string]any{"on": true}
	case "POST /projects/{project}/segments", "PUT /projects/{project}/segments/{segment}":
		seg := map[string]any{"name": "Seg", "description": "d", "tags": []any{"t"}, "included": []any{"u1", "u2"},
			"clauses": []any{map[string]any{"attribute": "country", "op": "in", "values": []any{"NL"}}}}
		if op.method == http.MethodPost {
			seg["key"] = fx.key("seg")
		}
		return seg
	case "PATCH /projects/{project}/goals/{goal}":
		return map[string]any{"name": "G2", "description": "d", "direction": "increase"}
	case "PUT /projects/{project}/experiments/{experiment}":
		return map[string]any{"name": "E2", "hypothesis": "h", "flag": "f", "environment": "production",
			"allocation": 40000, "primary_goal": "g",
			"variations": []any{map[string]any{"variation": "false", "control": true}, map[string]any{"variation": "true"}}}
	case "PUT /projects/{project}/experiments/{experiment}/analysis":
		return map[string]any{"engine": "frequentist", "alpha": 0.01, "correction": "holm", "cuped_lookback_days": 7}
	case "PUT /projects/{project}/autoops-rules/{id}":
		return map[string]any{"name": "r2", "metric": map[string]any{"goal": "g", "variation": "true", "control": "false"},
			"comparison": "gt", "threshold": 0.02, "min_sample": 100, "min_probability": 0.9, "action": "turn_off"}
	case "PUT /projects/{project}/schedules/{id}":
		return map[string]any{"at": at, "kind": "toggle", "on": true}
	case "POST /projects/{project}/goals":
		return map[string]any{"key": fx.key("goal"), "name": "Goal", "kind": "conversion", "description": "d"}
	case "POST /projects/{project}/experiments":
		return map[string]any{"key": fx.key("exp"), "name": "Exp", "hypothesis": "h", "flag": "f",
			"environment": "development", "allocation": 10000, "primary_goal": "g",
			"variations": []any{map[string]any{"variation": "false", "control": true}, map[string]any{"variation": "true"}}}
	case "POST /projects/{project}/schedules":
		return map[string]any{"flag": "f", "environment": "development", "kind": "toggle", "on": false, "at": at}
	case "POST /projects/{project}/autoops-rules":
		return map[string]any{"flag": "f", "environment": "development", "name": fx.key("rule"),
			"metric":     map[string]any{"goal": "g", "variation": "true", "control": "false"},
			"comparison": "gt", "threshold": 0.01, "min_sample": 100, "min_probability": 0.9, "action": "turn_off"}
	case "POST /projects/{project}/triggers":
		return map[string]any{"name": fx.key("trigger"), "flag": "f", "environment": "development", "action": "on"}
	case "POST /projects/{project}/rollouts":
		return map[string]any{"flag": "sf", "environment": "development", "variation": "a", "other": "b",
			"template": map[string]any{"every": "1h"}}
	case "POST /tokens":
		return map[string]any{"name": fx.key("token"), "scope": "read", "project": fx.project}
	}
	return nil
}

// sdkRequests are requests to the SDK API, which has no OpenAPI document of its own: OFREP and
// event ingestion with broken bodies. They must be JSON too, never a 5xx.
func (fx *fuzzFixture) sdkRequests(rng *rand.Rand, n int) []fuzzRequest {
	bodies := []string{`{"context":{"targetingKey":"u"}}`, `"x"`, `{"context":"x"}`, `{"context":{"targetingKey":7}}`,
		`{"context":{"a\u0000":"\u0000"}}`, "{\"context\":{\"a\":\"\xff\"}}", `{"context":` + strings.Repeat("[", 5000),
		`{"context":{"deep":` + strings.Repeat(`{"a":`, 3000) + `1` + strings.Repeat(`}`, 3000) + `}}`, `[]`, `{`, "",
		`{"events":[{"kind":"evaluation","flag":"f\u0000","variation":"true","context_key":"u"}]}`,
		`{"events":[{"kind":"goal","goal":"g","context_key":"u\u0000","attributes":{"x":"\u0000"}}]}`,
		"{\"events\":[{\"kind\":\"goal\",\"goal\":\"g\xc3\x28\",\"context_key\":\"u\"}]}", `{"events":"x"}`, `{"events":[1]}`}
	paths := []string{"/ofrep/v1/evaluate/flags/f", "/ofrep/v1/evaluate/flags/%00", "/ofrep/v1/evaluate/flags/%ff",
		"/ofrep/v1/evaluate/flags", "/sdk/v1/events"}
	out := make([]fuzzRequest, 0, n)
	for range n {
		path, body := paths[rng.IntN(len(paths))], bodies[rng.IntN(len(bodies))]
		out = append(out, fuzzRequest{method: http.MethodPost, path: path, body: []byte(body), key: fx.serverKey,
			what: "sdk POST " + path + ": body " + abbreviate(body)})
	}
	return out
}

type fuzzRequest struct {
	method, path string
	body         []byte
	headers      []string
	key          string // bearer: the admin token when ""
	what         string
	op           string // METHOD path of the operation
}

type fuzzGen struct {
	rng *rand.Rand
	op  fuzzOp
	fx  *fuzzFixture
	doc map[string]any
}

// Placeholders for bytes that json.Marshal would not write: invalid UTF-8 goes in raw.
const (
	badUTF8    = "@@bad-utf8@@"
	badUTF8Seq = "@@bad-seq@@"
)

var (
	badPathParams = []string{"%00", "%ff", "%FF", "%c3%28", "a%00b", "%e2%28%a1", "%ed%a0%80", strings.Repeat("k", 5000),
		"%25", "a%2Fb", "%F0%9F%98%80", "%E2%80%AE", "..", "-"}
	badQueryValues = []string{"garbage", "AAAA", strings.Repeat("A", 5000), "%00", "%ff", "%c3%28", "-1", "0",
		"99999999999999999999", "1e9", "true", "2026-13-45T99:00:00Z", "%22%27", "eyJ9", "djEu"}
)

func (g *fuzzGen) requests(n int) []fuzzRequest {
	out := make([]fuzzRequest, 0, n)
	for i := range n {
		kind := i % 7
		if i == 0 || kind == 6 {
			kind = -1 // valid, as far as the fixture allows
		}
		out = append(out, g.request(kind))
	}
	return out
}

func (g *fuzzGen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

func (g *fuzzGen) request(kind int) fuzzRequest {
	params := map[string]string{}
	for _, p := range g.op.params {
		params[p] = g.fx.paramValue(g.op.path, p)
	}
	query := map[string]string{}
	for _, q := range g.op.query { // the parameters some operations require
		switch q {
		case "at":
			query[q] = time.Now().UTC().Format(time.RFC3339)
		case "goal":
			query[q] = "g"
		}
	}
	var headers []string
	body := g.validBody()
	what := "valid"
	switch kind {
	case 0: // a string of an otherwise valid body gets NUL or invalid UTF-8: it reaches storage
		if body != nil {
			if b, w, ok := g.taintString(body); ok {
				body, what = b, w
				break
			}
		}
		fallthrough
	case 1: // one body leaf broken
		if body != nil {
			body, what = g.mutateBody(body)
			break
		}
		fallthrough
	case 2: // a path parameter broken
		if len(g.op.params) > 0 {
			p := g.pick(g.op.params)
			params[p] = g.pick(badPathParams)
			what = "path parameter " + p + "=" + abbreviate(params[p])
			break
		}
		fallthrough
	case 3: // a query parameter broken
		if len(g.op.query) > 0 {
			q := g.pick(g.op.query)
			query[q] = g.pick(badQueryValues)
			what = "query " + q + "=" + abbreviate(query[q])
			break
		}
		fallthrough
	case 4: // a whole body broken
		if body != nil || g.op.write {
			raw := g.pick([]string{"{", "[]", `"x"`, "null", "0", "{}", `{"key":1}`, "{\"key\":\"\x00\"}",
				strings.Repeat("[", 20000), strings.Repeat(`{"a":`, 5000), "\xff\xfe", `{"key":"x"} {}`,
				`{"` + strings.Repeat("k", 70000) + `":1}`})
			return g.build(params, query, []byte(raw), nil, "body "+abbreviate(raw))
		}
		fallthrough
	default: // headers, on an otherwise valid request
		if kind >= 0 {
			h := g.pick([]string{"If-Match", "X-Vexil-Reason", "X-Request-Id", "Content-Type"})
			val := g.pick([]string{"\xff\xfe", "garbage", `"-1"`, `"99999999999999999999"`, "text/plain", "\xc3\x28",
				strings.Repeat("é", 600)})
			headers = []string{h, val}
			what = "header " + h + "=" + abbreviate(val)
		}
	}
	var raw []byte
	if body != nil {
		raw = marshalWithRawBytes(body)
	}
	return g.build(params, query, raw, headers, what)
}

func (g *fuzzGen) build(params, query map[string]string, body []byte, headers []string, what string) fuzzRequest {
	path := g.op.path
	for _, p := range g.op.params {
		path = strings.Replace(path, "{"+p+"}", params[p], 1)
	}
	if len(query) > 0 {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range query {
				if !yield(k) {
					return
				}
			}
		})
		sep := "?"
		for _, k := range keys {
			path += sep + k + "=" + query[k]
			sep = "&"
		}
	}
	return fuzzRequest{method: g.op.method, path: path, body: body, headers: headers,
		what: g.op.method + " " + g.op.path + ": " + what, op: g.op.method + " " + g.op.path}
}

// validBody is the example of the operation, or a body generated from its schema.
func (g *fuzzGen) validBody() any {
	if g.op.body == nil {
		return nil
	}
	if ex := g.fx.example(g.op); ex != nil {
		return ex
	}
	return g.fromSchema(g.op.body, 0)
}

func (g *fuzzGen) resolve(s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		s = g.doc["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
	}
}

func (g *fuzzGen) fromSchema(s map[string]any, depth int) any {
	s = g.resolve(s)
	if depth > 6 {
		return nil
	}
	switch s["type"] {
	case "string":
		if s["format"] == "date-time" {
			return time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		}
		return g.pick([]string{"x", "f", "production", "g", "true", "a-key", "Name"})
	case "integer":
		return g.rng.IntN(100)
	case "number":
		return g.rng.Float64()
	case "boolean":
		return g.rng.IntN(2) == 0
	case "array":
		items, _ := s["items"].(map[string]any)
		if items == nil {
			return []any{}
		}
		return []any{g.fromSchema(items, depth+1)}
	case "object":
		m := map[string]any{}
		props, _ := s["properties"].(map[string]any)
		for _, k := range slices.Sorted(mapKeys(props)) {
			m[k] = g.fromSchema(props[k].(map[string]any), depth+1)
		}
		if add, ok := s["additionalProperties"].(map[string]any); ok {
			m["k"] = g.fromSchema(add, depth+1)
		}
		return m
	}
	return "any"
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// taintString puts a NUL or invalid UTF-8 into one string of body (a key, a name, a string
// nested in a variation value), keeping the rest of it valid.
func (g *fuzzGen) taintString(body any) (any, string, bool) {
	var strs [][]any
	var collect func(v any, path []any)
	collect = func(v any, path []any) {
		switch x := v.(type) {
		case string:
			strs = append(strs, slices.Clone(path))
		case map[string]any:
			for _, k := range slices.Sorted(mapKeys(x)) {
				collect(x[k], append(path, k))
			}
		case []any:
			for i, e := range x {
				collect(e, append(path, i))
			}
		}
	}
	collect(body, nil)
	if len(strs) == 0 {
		return body, "", false
	}
	path := strs[g.rng.IntN(len(strs))]
	taint := g.pick([]string{"\x00", "\x00", "\x00", badUTF8, badUTF8Seq})
	var orig string
	var find func(v any, p []any) string
	find = func(v any, p []any) string {
		if len(p) == 0 {
			s, _ := v.(string)
			return s
		}
		switch x := v.(type) {
		case map[string]any:
			return find(x[p[0].(string)], p[1:])
		case []any:
			return find(x[p[0].(int)], p[1:])
		}
		return ""
	}
	orig = find(body, path)
	val := orig + taint
	return setAt(body, path, val), fmt.Sprintf("%v = %q + %s", path, orig, abbreviate(taint)), true
}

// mutateBody replaces one leaf (or adds a field) of body with something broken.
func (g *fuzzGen) mutateBody(body any) (any, string) {
	var paths [][]any
	var collect func(v any, path []any)
	collect = func(v any, path []any) {
		paths = append(paths, slices.Clone(path))
		switch x := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(mapKeys(x)) {
				collect(x[k], append(path, k))
			}
		case []any:
			for i, e := range x {
				collect(e, append(path, i))
			}
		}
	}
	collect(body, nil)
	path := paths[g.rng.IntN(len(paths))]
	if len(path) == 0 && len(paths) > 1 {
		path = paths[1]
	}
	bad, what := g.badValue()
	if g.rng.IntN(8) == 0 { // an unknown field, or a broken object key
		if m, ok := body.(map[string]any); ok {
			m[g.pick([]string{"colour", "a\x00b", badUTF8})] = 1
			return body, "an unknown field"
		}
	}
	return setAt(body, path, bad), fmt.Sprintf("%v = %s", path, what)
}

func (g *fuzzGen) badValue() (any, string) {
	switch g.rng.IntN(14) {
	case 0:
		return "a\x00b", "NUL"
	case 1:
		return "\x00", "only NUL"
	case 2:
		return "x" + badUTF8, "invalid UTF-8"
	case 3:
		return badUTF8Seq, "invalid UTF-8 sequence"
	case 4:
		return strings.Repeat("n", 70000), "a 70,000-character string"
	case 5:
		return map[string]any{"a": []any{"x\x00"}, "k\x00": "v"}, "NUL nested in an object"
	case 6:
		var v any = "x"
		for range 200 {
			v = []any{v}
		}
		return v, "nested 200 deep"
	case 7:
		return 1e308, "1e308"
	case 8:
		return -1, "-1"
	case 9:
		return 1.5, "1.5"
	case 10:
		return true, "true"
	case 11:
		return nil, "null"
	case 12:
		return []any{}, "[]"
	}
	return map[string]any{}, "{}"
}

func setAt(v any, path []any, val any) any {
	if len(path) == 0 {
		return val
	}
	switch x := v.(type) {
	case map[string]any:
		k := path[0].(string)
		x[k] = setAt(x[k], path[1:], val)
		return x
	case []any:
		i := path[0].(int)
		x[i] = setAt(x[i], path[1:], val)
		return x
	}
	return val
}

// marshalWithRawBytes encodes v as JSON, then puts raw invalid UTF-8 where the placeholders are.
func marshalWithRawBytes(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	b = bytes.ReplaceAll(b, []byte(badUTF8), []byte("\xff\xfe"))
	return bytes.ReplaceAll(b, []byte(badUTF8Seq), []byte("\xc3\x28"))
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", s[:40], len(s))
	}
	return strconv.Quote(s)
}

// fuzzRun sends reqs with workers at once and returns what went wrong.
func fuzzRun(t *testing.T, v *vexil, reqs []fuzzRequest, workers int, succeeded map[string]int) []string {
	client := &http.Client{Timeout: 60 * time.Second}
	verbose := os.Getenv("VEXIL_FUZZ_VERBOSE") != "" // log every valid request that was refused
	var mu sync.Mutex
	var failures, slow []string
	next := make(chan fuzzRequest)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				began := time.Now()
				status, f, answer := fuzzOne(client, v.base, v.token, r)
				took := time.Since(began)
				mu.Lock()
				if took > 2*time.Second {
					slow = append(slow, fmt.Sprintf("%v %s (%d)", took.Round(time.Millisecond), r.what, status))
				}
				if f != "" {
					failures = append(failures, f)
				}
				if status < 300 {
					succeeded[r.op]++
				} else if verbose && strings.HasSuffix(r.what, ": valid") {
					t.Logf("%s (%s): %d %s -> %s", r.what, r.path, status, abbreviate(string(r.body)), answer)
				}
				mu.Unlock()
			}
		}()
	}
	for _, r := range reqs {
		next <- r
	}
	close(next)
	wg.Wait()
	if len(slow) > 0 {
		t.Logf("%d requests took over 2s, e.g. %v", len(slow), slow[:min(len(slow), 10)])
	}
	sort.Strings(failures)
	return failures
}

func fuzzOne(client *http.Client, base, admin string, r fuzzRequest) (status int, failure string, answer []byte) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, base+r.path, body)
	if err != nil {
		// The client refuses the URL itself (a control character): a server never sees it.
		return 0, "", nil
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	key := r.key
	if key == "" {
		key = admin
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(r.headers); i += 2 {
		req.Header[http.CanonicalHeaderKey(r.headers[i])] = []string{r.headers[i+1]}
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, fmt.Sprintf("%s: %v", r.what, err), nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 500 {
		return res.StatusCode, fmt.Sprintf("%s: status %d: %s", r.what, res.StatusCode, abbreviate(string(b))), b
	}
	if res.StatusCode < 400 {
		return res.StatusCode, "", b
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return res.StatusCode, fmt.Sprintf("%s: status %d with Content-Type %q: %s", r.what, res.StatusCode, ct, abbreviate(string(b))), b
	}
	var e map[string]any
	if err := json.Unmarshal(b, &e); err != nil {
		return res.StatusCode, fmt.Sprintf("%s: status %d, body not JSON: %s", r.what, res.StatusCode, abbreviate(string(b))), b
	}
	if strings.HasPrefix(r.what, "sdk ") {
		return res.StatusCode, "", b // OFREP's error format: {key, errorCode, errorDetails}
	}
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if code == "" || msg == "" {
		return res.StatusCode, fmt.Sprintf("%s: status %d, error without code or message: %s", r.what, res.StatusCode, abbreviate(string(b))), b
	}
	// Fields are JSON paths in snake_case (or a header's name); a capital is a Go name leaking.
	field, _ := e["field"].(string)
	if !strings.HasPrefix(field, "X-") && !strings.HasPrefix(field, "If-") && strings.ToLower(field) != field {
		return res.StatusCode, fmt.Sprintf("%s: status %d, field in Go's words: %s", r.what, res.StatusCode, field), b
	}
	if strings.Contains(msg, "Go value") || strings.Contains(msg, "domain.") || strings.Contains(msg, "[]") {
		return res.StatusCode, fmt.Sprintf("%s: status %d, message in Go's words: %s", r.what, res.StatusCode, msg), b
	}
	return res.StatusCode, "", b
}
