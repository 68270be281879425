package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// diffLine is one changed value between two JSON documents, by path: what a person reads in the
// audit log, the save confirmation, the conflict notice and time travel.
type diffLine struct {
	Path          string
	Before, After string // "" when absent on that side
	Kind          string // "added", "removed" or "changed"
}

// jsonDiff compares two JSON documents leaf by leaf. Either may be empty (nothing before a
// creation). Volatile bookkeeping (version, timestamps) is left out: it changes with every event
// and says nothing about what a person changed.
func jsonDiff(before, after []byte) []diffLine {
	b, a := map[string]string{}, map[string]string{}
	flattenJSON(before, b)
	flattenJSON(after, a)
	var out []diffLine
	for p, av := range a {
		bv, had := b[p]
		switch {
		case !had:
			out = append(out, diffLine{Path: p, After: av, Kind: "added"})
		case bv != av:
			out = append(out, diffLine{Path: p, Before: bv, After: av, Kind: "changed"})
		}
	}
	for p, bv := range b {
		if _, has := a[p]; !has {
			out = append(out, diffLine{Path: p, Before: bv, Kind: "removed"})
		}
	}
	// An empty list or object that gained (or lost) entries shows as those entries, not as the
	// empty marker disappearing (or appearing) too.
	out = slices.DeleteFunc(out, func(l diffLine) bool {
		switch {
		case l.Kind == "removed" && isEmptyMarker(l.Before):
			return hasBeneath(a, l.Path)
		case l.Kind == "added" && isEmptyMarker(l.After):
			return hasBeneath(b, l.Path)
		}
		return false
	})
	slices.SortFunc(out, func(x, y diffLine) int { return comparePaths(x.Path, y.Path) })
	return out
}

func isEmptyMarker(v string) bool { return v == "(none)" || v == "{}" }

func hasBeneath(leaves map[string]string, path string) bool {
	for p := range leaves {
		if strings.HasPrefix(p, path+"[") || strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// valueDiff is jsonDiff of two values.
func valueDiff(before, after any) []diffLine {
	bb, _ := json.Marshal(before)
	ab, _ := json.Marshal(after)
	if before == nil {
		bb = nil
	}
	return jsonDiff(bb, ab)
}

var volatile = map[string]bool{"version": true, "created_at": true, "updated_at": true, "salt": true}

func flattenJSON(doc []byte, out map[string]string) {
	if len(doc) == 0 || string(doc) == "null" {
		return
	}
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		out[""] = string(doc)
		return
	}
	flatten("", v, out)
}

func flatten(path string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if path == "" && volatile[k] {
				continue
			}
			p := k
			if path != "" {
				p = path + "." + k
			}
			flatten(p, e, out)
		}
		if len(x) == 0 && path != "" {
			out[path] = "{}"
		}
	case []any:
		for i, e := range x {
			flatten(fmt.Sprintf("%s[%d]", path, i), e, out)
		}
		if len(x) == 0 && path != "" {
			out[path] = "(none)"
		}
	case string:
		out[path] = strconv.Quote(x)
	default:
		b, _ := json.Marshal(x)
		out[path] = string(b)
	}
}

// comparePaths orders paths naturally: rules[2] before rules[10].
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		na, ra := leadingNumber(a)
		nb, rb := leadingNumber(b)
		if na >= 0 && nb >= 0 {
			if na != nb {
				return na - nb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func leadingNumber(s string) (int, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return -1, s
	}
	n, _ := strconv.Atoi(s[:i])
	return n, s[i:]
}
