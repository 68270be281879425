package sdkapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/deploy/load/fixture"
	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/projections/access"
)

// The shapes of OFREP's answers as encoding/json writes them: the reference the hand-written
// encoder is compared with.
type evaluationSuccess struct {
	Key      string         `json:"key"`
	Value    any            `json:"value"`
	Reason   string         `json:"reason"`
	Variant  string         `json:"variant,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

type refreshConnection struct {
	Type               string `json:"type"`
	URL                string `json:"url"`
	InactivityDelaySec int    `json:"inactivityDelaySec,omitempty"`
}

type bulkSuccess struct {
	Flags              []any               `json:"flags"`
	RefreshConnections []refreshConnection `json:"refreshConnections,omitempty"`
	EventStreams       []refreshConnection `json:"eventStreams,omitempty"`
	Metadata           map[string]any      `json:"metadata,omitempty"`
}

// slowDecode is what encoding/json makes of a request body: ok false on any error.
func slowDecode(body []byte) (attrs map[string]any, raw []byte, ok bool) {
	attrs, raw, code, _ := decodeRequestJSON(body)
	return attrs, raw, code == ""
}

// checkSameDecoding fails unless the fast path either declines body or decodes it exactly as
// encoding/json does (attributes and the raw context the ETag hashes).
func checkSameDecoding(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	attrs, raw, ok := decodeFlatRequest(body, nil)
	pooled := getEvalState() // the handlers' way: filling a pooled, empty map
	defer pooled.put()
	attrs2, raw2, ok2 := decodeFlatRequest(body, pooled.attrs)
	if ok != ok2 || !bytes.Equal(raw, raw2) || (len(attrs) > 0 || len(attrs2) > 0) && !reflect.DeepEqual(attrs, attrs2) {
		t.Fatalf("%q: decoding into a new map (%v %v %q) and into a pooled one (%v %v %q) differ", body, ok, attrs, raw, ok2, attrs2, raw2)
	}
	if !ok {
		return false
	}
	want, wantRaw, wantOK := slowDecode(body)
	if !wantOK {
		t.Fatalf("fast path accepted %q, which encoding/json refuses", body)
	}
	if len(attrs) != 0 || len(want) != 0 {
		if !reflect.DeepEqual(attrs, want) {
			t.Fatalf("fast path decoded %q as %#v, encoding/json as %#v", body, attrs, want)
		}
	}
	if !bytes.Equal(raw, wantRaw) {
		t.Fatalf("raw context of %q: %q, encoding/json %q", body, raw, wantRaw)
	}
	return true
}

func TestDecodeFlatRequest(t *testing.T) {
	for _, tc := range []struct {
		body string
		fast bool // the hand-written path takes it (otherwise encoding/json does)
	}{
		{``, true},
		{"  \n", true},
		{`{}`, true},
		{`{"context":null}`, true},
		{`{"context":{}}`, true},
		{` { "context" : { "targetingKey" : "u-1" , "age" : 42 } } `, true},
		{`{"context":{"targetingKey":"user-1","email":"u1@example.com","plan":"pro","age":30,"beta":false,"x":null,"ratio":-0.25e-3,"big":1E+300}}`, true},
		{`{"context":{"city":"Zürich","emoji":"😀"}}`, true},
		{`{"context":{"a":1,"a":2}}`, true}, // the last duplicate wins, as in encoding/json
		// Declined: encoding/json decides (and answers its own error where there is one).
		{`{"context":{"address":{"city":"Paris"}}}`, false},
		{`{"context":{"tags":["a","b"]}}`, false},
		{`{"context":{"name":"a\"b"}}`, false},
		{`{"context":{"name":"\u00e9"}}`, false},
		{`{"Context":{"a":1}}`, false}, // encoding/json matches field names case-insensitively
		{`{"context":{"a":1},"extra":true}`, false},
		{`{"extra":true,"context":{"a":1}}`, false},
		{`{"context":[1]}`, false},
		{`{"context":"x"}`, false},
		{`[]`, false},
		{`null`, false},
		{`{"context":{"a":01}}`, false},
		{`{"context":{"a":+1}}`, false},
		{`{"context":{"a":.5}}`, false},
		{`{"context":{"a":1.}}`, false},
		{`{"context":{"a":1e}}`, false},
		{`{"context":{"a":0x10}}`, false},
		{`{"context":{"a":1e400}}`, false}, // out of float64's range: encoding/json's error
		{`{"context":{"a":Infinity}}`, false},
		{`{"context":{"a":tru}}`, false},
		{`{"context":{"a":1,}}`, false},
		{`{"context":{"a" 1}}`, false},
		{`{"context":{"a":1}`, false},
		{`{"context":{"a":1}}}`, false},
		{`{"context":{"a":1}} x`, false},
		{"{\"context\":{\"a\":\"\x01\"}}", false},
		{"{\"context\":{\"a\":\"\xff\"}}", false},
	} {
		if got := checkSameDecoding(t, []byte(tc.body)); got != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.body, got, tc.fast)
		}
	}
}

// FuzzDecodeRequest: for any body the hand-written decoder either declines or agrees with
// encoding/json exactly.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"context":null}`, `{"context":{"targetingKey":"u","n":1.5e3,"b":true,"z":null}}`,
		`{"context":{"a":-0}}`, `{"context":{"a":"x","a":"y"}}`, `{"context":{"a":{}}}`, `{"context":{"a":1e999}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSameDecoding(t, body)
	})
}

// The hand-written answers are byte for byte what encoding/json (echo's c.JSON) wrote before.
func TestAnswersMatchEncodingJSON(t *testing.T) {
	rs := &domain.Ruleset{Project: "p", Environment: "e", Version: 7, Flags: map[string]*domain.FlagConfig{
		"f": {Key: "f", Type: domain.FlagJSON, Version: 3, Variations: []domain.Variation{
			{Key: "a", Value: map[string]any{"html": "<b>&</b>", "n": 1.5, "list": []any{"x", nil, true}}},
			{Key: "b<c>", Value: "line\nbreak \"quoted\" \u2028"},
			{Key: "c", Value: math.MaxInt32 * 1024.0},
		}},
	}}
	snap, err := newSnapshot(envID{"p", "e"}, rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range []evaluation.Result{
		{FlagKey: "f", Value: rs.Flags["f"].Variations[0].Value, Variation: "a", VariationIndex: 0, Reason: "TARGETING_MATCH", RuleID: "rule-1", FlagVersion: 3},
		{FlagKey: "f", Value: rs.Flags["f"].Variations[1].Value, Variation: "b<c>", VariationIndex: 1, Reason: "SPLIT", FlagVersion: 3, Experiment: "exp&1"},
		{FlagKey: "f", Value: rs.Flags["f"].Variations[2].Value, Variation: "c", VariationIndex: 2, Reason: "DEFAULT", FlagVersion: 3},
		{FlagKey: "f", VariationIndex: -1, Reason: "DISABLED", FlagVersion: 3}, // empty off variation
		{FlagKey: "gone", Value: "v", Variation: "v", VariationIndex: 0, Reason: "STATIC", FlagVersion: 1},
	} {
		for _, kind := range []string{domain.ServerSideKey, domain.ClientSideKey} {
			md := map[string]any{"flagVersion": r.FlagVersion}
			if r.RuleID != "" && kind == domain.ServerSideKey { // rule ids are for server keys only
				md["ruleId"] = r.RuleID
			}
			if r.Experiment != "" {
				md["experiment"] = r.Experiment
			}
			want, _ := json.Marshal(evaluationSuccess{Key: r.FlagKey, Value: r.Value, Reason: r.Reason, Variant: r.Variation, Metadata: md})
			if got := snap.appendSuccess(nil, &r, kind); !bytes.Equal(got, want) {
				t.Errorf("result %d, %s key:\n got %s\nwant %s", i, kind, got, want)
			}
		}
	}
	for _, f := range []evaluationFailure{
		{Key: "f", ErrorCode: "FLAG_NOT_FOUND", ErrorDetails: "flag f is not found"},
		{ErrorCode: "PARSE_ERROR", ErrorDetails: `malformed JSON: invalid character '<' looking for "value"`},
		{Key: "k", ErrorCode: "GENERAL"},
	} {
		want, _ := json.Marshal(f)
		if got := appendFailure(nil, f); !bytes.Equal(got, want) {
			t.Errorf("failure:\n got %s\nwant %s", got, want)
		}
	}
	for _, s := range []string{"", "plain", "tab\there", "ünï", "a\\b", "\x7f", strings.Repeat("x", 100)} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("string %q: got %s want %s", s, got, want)
		}
	}
}

func TestReadBodyLimit(t *testing.T) {
	for _, tc := range []struct {
		body     string
		declared int64 // -1: unknown (chunked)
		want     error
	}{
		{"", 0, nil},
		{"0123456789", -1, nil},
		{"0123456789", 10, nil},
		{"0123456789a", -1, errTooLarge},
		{"0123456789a", 11, errTooLarge}, // refused from the declared length, unread
		{strings.Repeat("x", 5000), -1, errTooLarge},
	} {
		st := getEvalState()
		buf := &st.buf
		err := readBody(strings.NewReader(tc.body), tc.declared, 10, buf)
		if err != tc.want {
			t.Errorf("%q (declared %d): %v, want %v", tc.body, tc.declared, err, tc.want)
		}
		if err == nil && string(*buf) != tc.body {
			t.Errorf("read %q, want %q", *buf, tc.body)
		}
		st.put()
	}
}

// The handlers answer, for every flag of the load fixture and contexts both flat (the
// hand-written decoder) and not (encoding/json), exactly what decoding with encoding/json,
// evaluating and encoding with encoding/json gives.
func TestHandlersMatchTheEncodingJSONPath(t *testing.T) {
	e, snaps := benchServer(t)
	snap := snaps.snapshotOf(envID{"load", fixture.Environment})
	bodies := [][]byte{[]byte(`{}`), []byte(`{"context":null}`), []byte(``)}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 12; i++ {
		c := fixture.Context(r)
		if i%3 == 1 { // nested and escaped values take the encoding/json path
			c["address"] = map[string]any{"city": "Zürich", "zip": "8001"}
			c["note"] = "line\nbreak"
		}
		body := fixture.RequestBody(c)
		if i%3 == 2 { // the fast path fills attributes, then declines: the last "context" wins
			body = append(body[:len(body)-1], `,"context":null}`...)
		}
		bodies = append(bodies, body)
	}
	w := &benchWriter{h: http.Header{}, keep: true}
	serve := func(path string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1"+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+benchServerKey)
		w.reset()
		e.ServeHTTP(w, req)
		return w.status, append([]byte(nil), w.last...)
	}
	for _, body := range bodies {
		attrs, _, ok := slowDecode(body)
		if !ok {
			t.Fatalf("bad fixture body %s", body)
		}
		if attrs == nil {
			attrs = map[string]any{}
		}
		ctx := evaluation.FromOpenFeature(attrs)
		var bulkWant []any
		for _, key := range snap.compiled.Flags() {
			res := snap.compiled.Evaluate(key, ctx)
			var want []byte
			wantStatus := http.StatusOK
			if res.IsError() {
				var f evaluationFailure
				wantStatus, f = failure(&res)
				want, _ = json.Marshal(f)
				bulkWant = append(bulkWant, f)
			} else {
				md := map[string]any{"flagVersion": res.FlagVersion}
				if res.RuleID != "" {
					md["ruleId"] = res.RuleID
				}
				if res.Experiment != "" {
					md["experiment"] = res.Experiment
				}
				success := evaluationSuccess{Key: res.FlagKey, Value: res.Value, Reason: res.Reason, Variant: res.Variation, Metadata: md}
				want, _ = json.Marshal(success)
				want = append(want, '\n')
				bulkWant = append(bulkWant, success)
			}
			status, got := serve("/ofrep/v1/evaluate/flags/"+key, body)
			if status != wantStatus || !bytes.Equal(got, want) {
				t.Fatalf("flag %s, body %s:\n got %d %s\nwant %d %s", key, body, status, got, wantStatus, want)
			}
		}
		status, got := serve("/ofrep/v1/evaluate/flags", body)
		conn := refreshConnection{Type: "sse", URL: "http://127.0.0.1/sdk/v1/stream", InactivityDelaySec: 120}
		want, _ := json.Marshal(bulkSuccess{Flags: bulkWant, RefreshConnections: []refreshConnection{conn},
			EventStreams: []refreshConnection{conn}, Metadata: map[string]any{"version": snap.version}})
		want = append(want, '\n')
		if status != http.StatusOK || !bytes.Equal(got, want) {
			t.Fatalf("bulk, body %s:\n got %d %.300s\nwant %.300s", body, status, got, want)
		}
	}
}

// A client key never sees a rule id, in single or bulk answers; a server key does. Otherwise
// the two answers are the same.
func TestRuleIDsOnlyForServerKeys(t *testing.T) {
	e, snaps := benchServer(t)
	snap := snaps.snapshotOf(envID{"load", fixture.Environment})
	w := &benchWriter{h: http.Header{}, keep: true}
	serve := func(path, key string, body []byte) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1"+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		w.reset()
		e.ServeHTTP(w, req)
		var m map[string]any
		if err := json.Unmarshal(w.last, &m); err != nil {
			t.Fatalf("%s: %v: %s", path, err, w.last)
		}
		return w.status, m
	}
	withRule := 0
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20; i++ {
		body := fixture.RequestBody(fixture.Context(r))
		for _, key := range snap.compiled.Flags() {
			f, _ := snap.compiled.Flag(key)
			if !f.ClientSide {
				continue
			}
			path := "/ofrep/v1/evaluate/flags/" + key
			sStatus, server := serve(path, benchServerKey, body)
			cStatus, client := serve(path, benchClientKey, body)
			if sStatus != 200 || cStatus != 200 {
				continue
			}
			smd, cmd := server["metadata"].(map[string]any), client["metadata"].(map[string]any)
			if _, ok := cmd["ruleId"]; ok {
				t.Fatalf("%s: a client key sees a rule id: %v", key, client)
			}
			if _, ok := smd["ruleId"]; ok {
				withRule++
				delete(smd, "ruleId")
			}
			if sb, cb := fmt.Sprint(server), fmt.Sprint(client); sb != cb {
				t.Fatalf("%s: answers differ beyond the rule id:\nserver %s\nclient %s", key, sb, cb)
			}
		}
		_, bulk := serve("/ofrep/v1/evaluate/flags", benchClientKey, body)
		for _, f := range bulk["flags"].([]any) {
			if md, ok := f.(map[string]any)["metadata"].(map[string]any); ok && md["ruleId"] != nil {
				t.Fatalf("a client key's bulk answer has a rule id: %v", f)
			}
		}
	}
	if withRule == 0 {
		t.Fatal("no server answer matched a rule: the fixture does not exercise rule ids")
	}
}

// A key whose environment's ruleset is not in memory yet answers 503 with Retry-After, in
// OFREP's shape.
func TestUnloadedEnvironmentAnswers503WithRetryAfter(t *testing.T) {
	e, snaps := benchServer(t)
	keys := *snaps.keys.Load()
	withNew := make(map[string]access.SDKKey, len(keys)+1)
	for k, v := range keys {
		withNew[k] = v
	}
	withNew["server-not-loaded-yet-000000000"] = access.SDKKey{Project: "later", Environment: "production", Kind: domain.ServerSideKey}
	snaps.keys.Store(&withNew)
	w := &benchWriter{h: http.Header{}, keep: true}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/ofrep/v1/evaluate/flags/f", strings.NewReader(`{"context":{"targetingKey":"u"}}`))
	req.Header.Set("Authorization", "Bearer server-not-loaded-yet-000000000")
	e.ServeHTTP(w, req)
	if w.status != http.StatusServiceUnavailable || w.h.Get("Retry-After") == "" || !strings.Contains(string(w.last), `"errorCode":"GENERAL"`) {
		t.Fatalf("%d Retry-After %q: %s", w.status, w.h.Get("Retry-After"), w.last)
	}
}
