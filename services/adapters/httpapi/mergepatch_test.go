package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

// The examples of RFC 7396, Appendix A.
func TestMergePatchRFC7396Examples(t *testing.T) {
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	} {
		var target, patch, want any
		for _, p := range []struct {
			s string
			v *any
		}{{tc.target, &target}, {tc.patch, &patch}, {tc.want, &want}} {
			if err := json.Unmarshal([]byte(p.s), p.v); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := json.Marshal(MergePatch(target, patch))
		wantJSON, _ := json.Marshal(want)
		if string(got) != string(wantJSON) {
			t.Errorf("MergePatch(%s, %s) = %s, want %s", tc.target, tc.patch, got, wantJSON)
		}
	}
}

type patchedThing struct {
	Name     string            `json:"name"`
	Note     string            `json:"note,omitempty"`
	Count    int64             `json:"count"`
	Settings map[string]string `json:"settings,omitempty"`
}

func TestApplyMergePatchKeepsUnsentMembers(t *testing.T) {
	cur := patchedThing{Name: "a", Note: "n", Count: 9007199254740993, Settings: map[string]string{"x": "1", "y": "2"}}
	patch, err := ParseMergePatch([]byte(`{"note":null,"settings":{"y":null,"z":"3"}}`), "name")
	if err != nil {
		t.Fatal(err)
	}
	var out patchedThing
	if err := ApplyMergePatch(cur, patch, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != "a" || out.Note != "" || out.Count != 9007199254740993 || len(out.Settings) != 2 ||
		out.Settings["x"] != "1" || out.Settings["z"] != "3" {
		t.Fatalf("patched = %+v", out)
	}
	// The patch is not consumed: applying it again gives the same result.
	var again patchedThing
	if err := ApplyMergePatch(cur, patch, &again); err != nil || len(again.Settings) != 2 {
		t.Fatalf("second application = %+v, %v", again, err)
	}
}

func TestMergePatchRefusals(t *testing.T) {
	for _, tc := range []struct {
		body, field string
	}{
		{`{"name":null}`, "name"},
		{`{"inner":{"key":null}}`, "inner.key"},
		{`["name"]`, ""},
		{`"x"`, ""},
		{``, ""},
		{`{"name":`, ""},
		{`{"name":"a"} {}`, ""},
	} {
		_, err := ParseMergePatch([]byte(tc.body), "name", "inner.key")
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.EInvalid || de.Field != tc.field {
			t.Errorf("ParseMergePatch(%q) = %v, want invalid with field %q", tc.body, err, tc.field)
		}
	}
	// Members the resource does not have, and wrong types, are named.
	for _, tc := range []struct{ body, field string }{{`{"colour":"red"}`, "colour"}, {`{"count":"many"}`, "count"}} {
		patch, err := ParseMergePatch([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		err = ApplyMergePatch(patchedThing{Name: "a"}, patch, &patchedThing{})
		var de *domain.Error
		if !errors.As(err, &de) || de.Field != tc.field {
			t.Errorf("ApplyMergePatch(%s) = %v, want field %q", tc.body, err, tc.field)
		}
	}
}

// FuzzMergePatch checks ParseMergePatch against encoding/json (it accepts exactly the JSON
// objects) and that applying a patch twice gives what applying it once gives (RFC 7396 patches
// are idempotent).
func FuzzMergePatch(f *testing.F) {
	for _, s := range [][2]string{
		{`{"a":"b","c":{"d":1}}`, `{"a":null,"c":{"e":[1,2]}}`},
		{`[1]`, `{"x":{"y":null}}`},
		{`{"n":9007199254740993}`, `{"n":1e400}`},
		{`{}`, ` {"a":{}} `},
		{`null`, `{"a":"\u00e9"} x`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, target, patch string) {
		p, err := ParseMergePatch([]byte(patch))
		var ref map[string]any
		trimmed := bytes.TrimSpace([]byte(patch))
		refDec := json.NewDecoder(bytes.NewReader(trimmed))
		refDec.UseNumber() // numbers are kept as written, whatever their range
		isObject := json.Valid(trimmed) && len(trimmed) > 0 && trimmed[0] == '{' && refDec.Decode(&ref) == nil
		if (err == nil) != isObject {
			t.Fatalf("ParseMergePatch(%q): err %v, encoding/json says object %v", patch, err, isObject)
		}
		if err != nil || !json.Valid([]byte(target)) {
			return
		}
		decode := func(s string) any {
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		once, err1 := json.Marshal(MergePatch(decode(target), deepCopy(p)))
		twice, err2 := json.Marshal(MergePatch(MergePatch(decode(target), deepCopy(p)), deepCopy(p)))
		if err1 != nil || err2 != nil {
			return // numbers json.Number cannot marshal back (e.g. 1e400) fail both ways alike
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent: once %s, twice %s", once, twice)
		}
	})
}
