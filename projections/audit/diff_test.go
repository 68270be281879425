package audit_test

import (
	"encoding/json"
	"testing"

	"github.com/vexil-flags/vexil/projections/audit"
)

func TestDiffKeepsOnlyWhatChanged(t *testing.T) {
	cases := []struct{ name, before, after, wantBefore, wantAfter string }{
		{"toggle", `{"key":"f","version":2,"environments":{"prod":{"on":true,"rules":[1]},"dev":{"on":false}}}`,
			`{"key":"f","version":3,"environments":{"prod":{"on":false,"rules":[1]},"dev":{"on":false}}}`,
			`{"environments":{"prod":{"on":true}}}`, `{"environments":{"prod":{"on":false}}}`},
		{"array replaced whole", `{"tags":["a"],"name":"x"}`, `{"tags":["a","b"],"name":"x"}`, `{"tags":["a"]}`, `{"tags":["a","b"]}`},
		{"key added and removed", `{"a":1}`, `{"b":2}`, `{"a":1,"b":null}`, `{"a":null,"b":2}`},
		{"nothing but bookkeeping", `{"version":1,"updated_at":"t1","n":1}`, `{"version":2,"updated_at":"t2","n":1}`, `{}`, `{}`},
		{"nested version is data", `{"e":{"version":1}}`, `{"e":{"version":2}}`, `{"e":{"version":1}}`, `{"e":{"version":2}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, a := audit.Diff(json.RawMessage(c.before), json.RawMessage(c.after))
			if string(b) != c.wantBefore || string(a) != c.wantAfter {
				t.Fatalf("got %s -> %s, want %s -> %s", b, a, c.wantBefore, c.wantAfter)
			}
		})
	}
	if b, a := audit.Diff(nil, json.RawMessage(`{"x":1}`)); b != nil || string(a) != `{"x":1}` {
		t.Fatalf("creation: %s -> %s", b, a)
	}
}
