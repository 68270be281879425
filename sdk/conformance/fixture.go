// Package conformance holds Vexil's cross-client conformance fixture (fixture.json): flags,
// segments, an experiment and contexts that every client (the server's OFREP, the Go SDK, the
// browser package) must answer identically. This package loads it, seeds a Vexil through its
// management API, and draws random contexts from its value pools. The format is in README.md.
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Fixture is fixture.json.
type Fixture struct {
	Description string           `json:"description"`
	Project     string           `json:"project"`
	Environment string           `json:"environment"`
	Goals       []map[string]any `json:"goals"`
	// Segments and Flags are created in order (a segment or prerequisite before its users).
	Segments    []map[string]any `json:"segments"`
	Flags       []FlagSpec       `json:"flags"`
	Experiments []map[string]any `json:"experiments"`
	Contexts    ContextPools     `json:"contexts"`
	Cases       []Case           `json:"cases"`
}

// FlagSpec is a flag (the body of POST /flags) and its targeting in the fixture's environment
// (the body of PUT /flags/{key}/environments/{env}).
type FlagSpec struct {
	Flag      map[string]any `json:"flag"`
	Targeting map[string]any `json:"targeting"`
}

// Key is the flag's key.
func (f FlagSpec) Key() string { s, _ := f.Flag["key"].(string); return s }

// Type is the flag's type: boolean (the default), string, number or json.
func (f FlagSpec) Type() string {
	if s, _ := f.Flag["type"].(string); s != "" {
		return s
	}
	return "boolean"
}

// ContextPools say how random contexts are drawn.
type ContextPools struct {
	Keys struct {
		Prefix  string  `json:"prefix"`
		Count   int     `json:"count"`
		Missing float64 `json:"missing"` // probability that the context has no targeting key
	} `json:"keys"`
	// Attributes maps an attribute to the values it takes (any JSON: the wrong types are there
	// on purpose).
	Attributes map[string][]any `json:"attributes"`
	Missing    float64          `json:"missing"` // probability that an attribute is absent
}

// Case is a context and the answers expected for some flags.
type Case struct {
	Name    string            `json:"name"`
	Context map[string]any    `json:"context"`
	Expect  map[string]Answer `json:"expect"`
}

// Answer is an expected (or observed) answer, in OFREP's terms. Empty fields of an expectation
// are not checked; Value is checked when present.
type Answer struct {
	Value     any    `json:"value,omitempty"`
	Variant   string `json:"variant,omitempty"`
	Reason    string `json:"reason,omitempty"`
	ErrorCode string `json:"errorCode,omitempty"`
}

// Path is the fixture file beside this source file.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "fixture.json")
}

// Load reads the fixture.
func Load(path string) (*Fixture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("conformance: %w", err)
	}
	var f Fixture
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("conformance: decode %s: %w", path, err)
	}
	// Numbers stay json.Number while decoding (so an integer is sent back as written), then
	// become float64 in contexts and expectations, as every JSON client sees them.
	for i := range f.Cases {
		f.Cases[i].Context = plain(f.Cases[i].Context).(map[string]any)
		for k, a := range f.Cases[i].Expect {
			a.Value = plain(a.Value)
			f.Cases[i].Expect[k] = a
		}
	}
	for k, vs := range f.Contexts.Attributes {
		for i := range vs {
			vs[i] = plain(vs[i])
		}
		f.Contexts.Attributes[k] = vs
	}
	return &f, nil
}

func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = plain(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = plain(e)
		}
		return x
	}
	return v
}

// FlagKeys are the fixture's flags, in order.
func (f *Fixture) FlagKeys() []string {
	out := make([]string, len(f.Flags))
	for i, fl := range f.Flags {
		out[i] = fl.Key()
	}
	return out
}

// RandomContext draws a flattened OpenFeature context (targetingKey and attributes).
func (f *Fixture) RandomContext(rng *rand.Rand) map[string]any {
	p := &f.Contexts
	ctx := make(map[string]any, len(p.Attributes)+1)
	if rng.Float64() >= p.Keys.Missing {
		ctx["targetingKey"] = fmt.Sprintf("%s%d", p.Keys.Prefix, rng.IntN(max(p.Keys.Count, 1)))
	}
	for name, values := range p.Attributes {
		if len(values) == 0 || rng.Float64() < p.Missing {
			continue
		}
		ctx[name] = values[rng.IntN(len(values))]
	}
	return ctx
}

// Admin calls a Vexil's management API with an admin token.
type Admin struct {
	Base, Token string
	Client      *http.Client
}

// Call sends body as JSON and fails unless the answer has status want.
func (a *Admin) Call(ctx context.Context, want int, method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := a.Client
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("conformance: %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		return nil, fmt.Errorf("conformance: %s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	var m map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("conformance: %s %s: %w", method, path, err)
		}
	}
	return m, nil
}

// Keys are the SDK keys of the fixture's environment.
type Keys struct{ Server, Client string }

// Seed creates the fixture's project, goals, segments, flags and their targeting, and
// experiments (started when "start" is true) through the management API, and returns the
// environment's SDK keys.
func (f *Fixture) Seed(ctx context.Context, a *Admin) (Keys, error) {
	p := "/api/v1/projects/" + f.Project
	if _, err := a.Call(ctx, 201, "POST", "/api/v1/projects", map[string]any{"key": f.Project, "name": f.Project}); err != nil {
		return Keys{}, err
	}
	for _, g := range f.Goals {
		if _, err := a.Call(ctx, 201, "POST", p+"/goals", g); err != nil {
			return Keys{}, err
		}
	}
	for _, s := range f.Segments {
		if _, err := a.Call(ctx, 201, "POST", p+"/segments", s); err != nil {
			return Keys{}, err
		}
	}
	for _, fl := range f.Flags {
		if _, err := a.Call(ctx, 201, "POST", p+"/flags", fl.Flag); err != nil {
			return Keys{}, err
		}
		if _, err := a.Call(ctx, 200, "PUT", p+"/flags/"+fl.Key()+"/environments/"+f.Environment, fl.Targeting); err != nil {
			return Keys{}, err
		}
	}
	for _, x := range f.Experiments {
		body := map[string]any{}
		for k, v := range x {
			if k != "start" {
				body[k] = v
			}
		}
		if _, err := a.Call(ctx, 201, "POST", p+"/experiments", body); err != nil {
			return Keys{}, err
		}
		if x["start"] == true {
			if _, err := a.Call(ctx, 200, "POST", p+"/experiments/"+x["key"].(string)+"/start", nil); err != nil {
				return Keys{}, err
			}
		}
	}
	env, err := a.Call(ctx, 200, "GET", p+"/environments/"+f.Environment, nil)
	if err != nil {
		return Keys{}, err
	}
	k := Keys{}
	k.Server, _ = env["server_key"].(string)
	k.Client, _ = env["client_key"].(string)
	if !strings.HasPrefix(k.Server, "server-") {
		return Keys{}, fmt.Errorf("conformance: no server key in %v", env)
	}
	return k, nil
}
