package platform_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func normalize(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return v
}

// afterLastChange is a moment strictly between the last change and the next one: a microsecond
// (the store's resolution) after the newest event. The next change is stamped by the same server
// clock after this query ran, so it is later; no sleep is needed to separate the moments.
func afterLastChange(t *testing.T, v *vexil) time.Time {
	t.Helper()
	var last time.Time
	if err := v.p.Pool.QueryRow(context.Background(), `SELECT max(occurred_at) FROM events`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	return last.Add(time.Microsecond).UTC()
}

// The state of a flag and of a whole environment's ruleset at any moment, folded from the events,
// equals what the read models held at that moment.
func TestTimeTravelEqualsReadModelSnapshots(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t)
	v := e.v
	ctx := context.Background()
	type snapshot struct {
		at      time.Time
		flag    []byte
		configs map[string]any
	}
	take := func() snapshot {
		s := snapshot{at: afterLastChange(t, v), configs: map[string]any{}} // strictly between two changes
		if err := v.p.Pool.QueryRow(ctx, `SELECT state FROM rm_flags WHERE project='app' AND key='dark-mode'`).Scan(&s.flag); err != nil {
			t.Fatal(err)
		}
		rows, err := v.p.Pool.Query(ctx, `SELECT flag, config FROM rm_ruleset_flags WHERE project='app' AND environment='production'`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			var c []byte
			if err := rows.Scan(&k, &c); err != nil {
				t.Fatal(err)
			}
			s.configs[k] = normalize(t, c)
		}
		rows.Close()
		return s
	}
	var snaps []snapshot
	snaps = append(snaps, take())
	v.must(200, "POST", "/api/v1/projects/app/flags/dark-mode/environments/production/toggle", map[string]any{"on": false})
	snaps = append(snaps, take())
	v.must(200, "PUT", "/api/v1/projects/app/flags/dark-mode/environments/production", map[string]any{"on": true, "off_variation": "false",
		"rules": []any{map[string]any{"clauses": []any{map[string]any{"attribute": "plan", "op": "in", "values": []any{"pro", "team"}}},
			"serve": map[string]any{"variation": "true"}}},
		"default": map[string]any{"split": map[string]any{"variations": []any{
			map[string]any{"variation": "true", "weight": 30000}, map[string]any{"variation": "false", "weight": 70000}}}}})
	snaps = append(snaps, take())
	v.must(200, "POST", "/api/v1/projects/app/flags/greeting/archive", nil)
	snaps = append(snaps, take())

	for i, s := range snaps {
		at := url.QueryEscape(s.at.Format(time.RFC3339Nano))
		r := v.do("GET", "/api/v1/projects/app/flags/dark-mode/at?at="+at, nil)
		if r.Status != 200 || !reflect.DeepEqual(normalize(t, r.Body), normalize(t, s.flag)) {
			t.Fatalf("snapshot %d: flag at %s differs from the read model then:\n%s\n%s", i, s.at, r.Body, s.flag)
		}
		r = v.do("GET", "/api/v1/projects/app/environments/production/ruleset?at="+at, nil)
		var rs struct {
			Flags map[string]any `json:"flags"`
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &rs) != nil {
			t.Fatalf("ruleset at %s: %d %s", s.at, r.Status, r.Body)
		}
		if !reflect.DeepEqual(rs.Flags, s.configs) {
			t.Fatalf("snapshot %d: ruleset at %s differs from the read model then:\n%v\n%v", i, s.at, rs.Flags, s.configs)
		}
	}
	if r := v.do("GET", "/api/v1/projects/app/flags/dark-mode/at?at=2000-01-01T00:00:00Z", nil); r.Status != 404 {
		t.Fatalf("before the flag existed: %d", r.Status)
	}
	v.must(400, "GET", "/api/v1/projects/app/flags/dark-mode/at?at=yesterday", nil)
}

// Explain agrees with live evaluation, and shows why.
func TestExplainAgreesWithLiveEvaluation(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t)
	contexts := []map[string]any{
		{"targetingKey": "u1", "email": secretRuleValue},
		{"targetingKey": secretMember},
		{"targetingKey": "u2", "plan": "gold"},
		{"targetingKey": "u3", "plan": "free"},
		{"targetingKey": "u4"},
	}
	for _, flag := range []string{"dark-mode", "greeting", "layout"} {
		for _, cx := range contexts {
			body, _ := json.Marshal(map[string]any{"context": cx})
			live := e.call("POST", "/ofrep/v1/evaluate/flags/"+flag, e.serverKey, string(body)).JSON(t)
			ex := e.v.must(200, "POST", "/api/v1/projects/app/environments/production/explain", map[string]any{"flag": flag, "context": cx})
			if ex["variation"] != live["variant"] || ex["reason"] != live["reason"] {
				t.Fatalf("%s %v: explain %v/%v, live %v/%v", flag, cx, ex["variation"], ex["reason"], live["variant"], live["reason"])
			}
			// The deciding rule's clauses all matched; rules before it did not.
			idx := int(ex["rule_index"].(float64))
			for i, r := range ex["rules"].([]any) {
				rm := r.(map[string]any)
				if (i == idx) != rm["matched"].(bool) && i <= idx {
					t.Fatalf("%s %v: rule %d matched=%v but the decision was rule %d", flag, cx, i, rm["matched"], idx)
				}
			}
			if flag == "greeting" && ex["reason"] == "SPLIT" && ex["bucket"].(float64) < 0 {
				t.Fatalf("split without a bucket: %v", ex)
			}
		}
	}
	ex := e.v.must(200, "POST", "/api/v1/projects/app/environments/production/explain", map[string]any{"flag": "dark-mode",
		"context": map[string]any{"targetingKey": "u9", "email": secretRuleValue}})
	cl := ex["rules"].([]any)[0].(map[string]any)["clauses"].([]any)[0].(map[string]any)
	if cl["matched"] != true || cl["context_value"] != secretRuleValue || cl["present"] != true {
		t.Fatalf("clause explanation: %v", cl)
	}
	// Explain at a moment before a change gives the old answer.
	before := afterLastChange(t, e.v)
	e.v.must(200, "POST", "/api/v1/projects/app/flags/dark-mode/environments/production/toggle", map[string]any{"on": false})
	then := e.v.must(200, "POST", "/api/v1/projects/app/environments/production/explain", map[string]any{"flag": "dark-mode",
		"context": map[string]any{"targetingKey": "u9", "email": secretRuleValue}, "at": before.Format(time.RFC3339Nano)})
	now := e.v.must(200, "POST", "/api/v1/projects/app/environments/production/explain", map[string]any{"flag": "dark-mode",
		"context": map[string]any{"targetingKey": "u9", "email": secretRuleValue}})
	if then["reason"] != "TARGETING_MATCH" || now["reason"] != "DISABLED" {
		t.Fatalf("explain then %v, now %v", then["reason"], now["reason"])
	}
}

func TestAuditExportAsJSONLinesAndCSV(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t)
	page := e.v.must(200, "GET", "/api/v1/projects/app/environments/production/audit?limit=500", nil)
	want := len(items(t, page))
	if want == 0 {
		t.Fatal("no audit entries for production")
	}
	r := e.v.do("GET", "/api/v1/projects/app/environments/production/audit?format=jsonl", nil)
	lines := strings.Split(strings.TrimSpace(string(r.Body)), "\n")
	if r.Status != 200 || len(lines) != want || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-ndjson") {
		t.Fatalf("jsonl: %d, %d lines for %d entries", r.Status, len(lines), want)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["environment"] != "production" {
			t.Fatalf("jsonl line %q", l)
		}
	}
	r = e.v.do("GET", "/api/v1/projects/app/flags/dark-mode/audit?format=csv", nil)
	recs, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
	if err != nil || len(recs) < 3 || recs[0][0] != "position" || recs[1][4] != "dark-mode" {
		t.Fatalf("csv: %v %v", err, recs)
	}
	e.v.must(400, "GET", "/api/v1/projects/app/flags/dark-mode/audit?format=xml", nil)
	_ = fmt.Sprint
}
