package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/vexil-flags/vexil/sdk/conformance"
	vexil "github.com/vexil-flags/vexil/sdk/go"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
	"github.com/vexil-flags/vexil/services/testkit"
)

// server is a running platform that a test can stop and start again on the same database,
// stream prefix and address (so SDKs that know its URL find it again).
type server struct {
	t    *testing.T
	tv   *ingesttest.Vexil
	p    *platform.Platform
	addr string
	args []string
}

// startServer runs every role of the real program on a fresh database and stream prefix.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	tv := ingesttest.Start(t, args...)
	return &server{t: t, tv: tv, p: tv.P, addr: tv.P.Addr, args: args}
}

func (s *server) base() string { return "http://" + s.addr }

// stop stops the platform: its listener closes, open requests and streams are cut.
func (s *server) stop() {
	s.t.Helper()
	if err := s.p.Close(); err != nil {
		s.t.Fatal(err)
	}
}

// restart starts the platform again on the same database, prefix and address.
func (s *server) restart() {
	s.t.Helper()
	all := append([]string{"--database-url", s.tv.Database, "--redis-url", s.tv.Redis, "--stream-prefix", s.tv.Prefix,
		"--http-addr", s.addr, "--admin-token", ingesttest.AdminToken, "--consistency-wait", "5s"}, s.args...)
	cfg, err := config.Parse("test", all, func(string) (string, bool) { return "", false })
	if err != nil {
		s.t.Fatal(err)
	}
	ctx := context.Background()
	var p *platform.Platform
	// The old listener's port may take a moment to be free again.
	testkit.WaitFor(s.t, 30*time.Second, "the platform to start again on "+s.addr, func() bool {
		p, err = platform.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			s.t.Logf("open: %v", err)
			return false
		}
		if err = p.Start(ctx); err != nil {
			s.t.Logf("start: %v", err)
			p.Close()
			return false
		}
		return true
	})
	s.t.Cleanup(func() { p.Close() })
	s.p = p
}

// admin is the management API client of the platform.
func (s *server) admin() *conformance.Admin {
	return &conformance.Admin{Base: s.base(), Token: ingesttest.AdminToken}
}

func (s *server) must(want int, method, path string, body any) map[string]any {
	s.t.Helper()
	m, err := s.admin().Call(context.Background(), want, method, path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// count runs a count query on the platform's database.
func (s *server) count(sql string, args ...any) int64 {
	s.t.Helper()
	var n int64
	if err := s.p.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// seed seeds the fixture and waits until the api role serves all of it.
func seed(t *testing.T, s *server) (*conformance.Fixture, conformance.Keys) {
	t.Helper()
	fx, err := conformance.Load(conformance.Path())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := fx.Seed(context.Background(), s.admin())
	if err != nil {
		t.Fatal(err)
	}
	// The experiment's start is the last write: wait until OFREP answers with it.
	testkit.WaitFor(t, 30*time.Second, "the api role to serve the fixture", func() bool {
		for i := 0; i < 20; i++ {
			a, status := ofrepSingle(t, s.base(), keys.Server, "experiment-flag", map[string]any{"targetingKey": "user-" + string(rune('a'+i))})
			if status == 200 && a.metadata["experiment"] != nil {
				return true
			}
		}
		return false
	})
	return fx, keys
}

// provider starts a Go SDK provider against base.
func provider(t *testing.T, base, key string, edit func(o *vexil.Options)) *vexil.Provider {
	t.Helper()
	o := vexil.Options{BaseURL: base, ServerKey: key, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if edit != nil {
		edit(&o)
	}
	p, err := vexil.NewProvider(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Init(openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Shutdown)
	return p
}

type tlog struct{ t *testing.T }

func (w tlog) Write(b []byte) (int, error) { w.t.Log(string(bytes.TrimSpace(b))); return len(b), nil }

// answer is one flag's answer in OFREP terms, with its metadata.
type answer struct {
	conformance.Answer
	metadata map[string]any
}

var ofrepClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}

func postJSON(t *testing.T, url, key string, body any) ([]byte, int) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := ofrepClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return out, res.StatusCode
}

// ofrepAnswer reads one evaluationSuccess or evaluationFailure.
func ofrepAnswer(m map[string]any) answer {
	var a answer
	if code, ok := m["errorCode"].(string); ok {
		a.Reason, a.ErrorCode = "ERROR", code
		return a
	}
	a.Value = m["value"]
	a.Variant, _ = m["variant"].(string)
	a.Reason, _ = m["reason"].(string)
	a.metadata, _ = m["metadata"].(map[string]any)
	return a
}

func ofrepSingle(t *testing.T, base, key, flag string, ctx map[string]any) (answer, int) {
	t.Helper()
	body, status := postJSON(t, base+"/ofrep/v1/evaluate/flags/"+flag, key, map[string]any{"context": ctx})
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("OFREP answer %d: %s", status, body)
	}
	return ofrepAnswer(m), status
}

// ofrepBulk evaluates every flag for ctx.
func ofrepBulk(t *testing.T, base, key string, ctx map[string]any) map[string]answer {
	t.Helper()
	body, status := postJSON(t, base+"/ofrep/v1/evaluate/flags", key, map[string]any{"context": ctx})
	if status != 200 {
		t.Fatalf("bulk OFREP %d: %s", status, body)
	}
	var res struct {
		Flags []map[string]any `json:"flags"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("bulk OFREP: %v: %s", err, body)
	}
	out := make(map[string]answer, len(res.Flags))
	for _, f := range res.Flags {
		k, _ := f["key"].(string)
		out[k] = ofrepAnswer(f)
	}
	return out
}

// local evaluates flag through the provider's typed OpenFeature method for its type, and
// returns what it answered in OFREP terms.
func local(p *vexil.Provider, flag, typ string, ctx map[string]any) answer {
	bg := context.Background()
	flat := openfeature.FlattenedContext(ctx)
	var value any
	var d openfeature.ProviderResolutionDetail
	switch typ {
	case "boolean":
		r := p.BooleanEvaluation(bg, flag, false, flat)
		value, d = r.Value, r.ProviderResolutionDetail
	case "string":
		r := p.StringEvaluation(bg, flag, "", flat)
		value, d = r.Value, r.ProviderResolutionDetail
	case "number":
		r := p.FloatEvaluation(bg, flag, 0, flat)
		value, d = r.Value, r.ProviderResolutionDetail
	default:
		r := p.ObjectEvaluation(bg, flag, nil, flat)
		value, d = r.Value, r.ProviderResolutionDetail
	}
	rd := d.ResolutionDetail()
	var a answer
	if rd.ErrorCode != "" {
		a.Reason, a.ErrorCode = "ERROR", string(rd.ErrorCode)
		return a
	}
	a.Reason, a.Variant = string(rd.Reason), rd.Variant
	if a.Variant != "" {
		a.Value = value
	}
	a.metadata = map[string]any(rd.FlagMetadata)
	return a
}
