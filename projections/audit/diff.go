package audit

import (
	"encoding/json"
	"reflect"
)

// bookkeeping fields change with every event and say nothing about the change itself.
var bookkeeping = map[string]bool{"version": true, "updated_at": true}

// Diff reduces two snapshots of an entity to the parts that changed: objects are compared key by
// key (recursively), anything else (scalars, arrays) is kept whole when it differs. So a toggle
// records {"environments":{"production":{"on":true}}} before and {... false} after, not two
// copies of the whole flag. A creation (no before) keeps the whole after.
func Diff(before, after json.RawMessage) (json.RawMessage, json.RawMessage) {
	if before == nil || after == nil {
		return before, after
	}
	var b, a any
	if json.Unmarshal(before, &b) != nil || json.Unmarshal(after, &a) != nil {
		return before, after
	}
	db, da := diff(b, a, true)
	bb, err1 := json.Marshal(db)
	ab, err2 := json.Marshal(da)
	if err1 != nil || err2 != nil {
		return before, after
	}
	return bb, ab
}

// diff returns the differing parts of b and a; absent keys show as null on their side.
func diff(b, a any, top bool) (any, any) {
	bm, bok := b.(map[string]any)
	am, aok := a.(map[string]any)
	if !bok || !aok {
		return b, a
	}
	ob, oa := map[string]any{}, map[string]any{}
	for k, bv := range bm {
		if top && bookkeeping[k] {
			continue
		}
		av, ok := am[k]
		if !ok {
			ob[k], oa[k] = bv, nil
			continue
		}
		if !reflect.DeepEqual(bv, av) {
			ob[k], oa[k] = diff(bv, av, false)
		}
	}
	for k, av := range am {
		if top && bookkeeping[k] {
			continue
		}
		if _, ok := bm[k]; !ok {
			ob[k], oa[k] = nil, av
		}
	}
	return ob, oa
}
