package web

import (
	"reflect"
	"testing"
)

func TestJSONDiffReadsAsChanges(t *testing.T) {
	for _, c := range []struct {
		name, before, after string
		want                []diffLine
	}{
		{"toggle", `{"on":false,"version":3}`, `{"on":true,"version":4}`, []diffLine{{Path: "on", Before: "false", After: "true", Kind: "changed"}}},
		{"first rule", `{"rules":[]}`, `{"rules":[{"id":"r"}]}`, []diffLine{{Path: "rules[0].id", After: `"r"`, Kind: "added"}}},
		{"last rule removed", `{"rules":[{"id":"r"}]}`, `{"rules":[]}`, []diffLine{{Path: "rules[0].id", Before: `"r"`, Kind: "removed"}}},
		{"creation", ``, `{"key":"k"}`, []diffLine{{Path: "key", After: `"k"`, Kind: "added"}}},
		{"natural order", `{}`, `{"r":[0,1,2,3,4,5,6,7,8,9,10]}`, nil},
	} {
		got := jsonDiff([]byte(c.before), []byte(c.after))
		if c.name == "natural order" {
			if got[2].Path != "r[2]" || got[10].Path != "r[10]" {
				t.Errorf("%s: %v", c.name, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
