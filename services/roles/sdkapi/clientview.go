package sdkapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/vexil-flags/vexil/domain"
)

// clientView is what the client-side keys of an environment can observe: the answers for the
// flags marked client_side. Each such flag has a digest of everything its answers depend on: its
// own configuration (its version, which OFREP answers carry, included), the flags its
// prerequisites name and the segments its rules name, transitively. A change that moves no
// digest (a server-only flag, a segment no client-side flag uses) is invisible to client-side
// keys: their bulk ETag stays, and their streams are not told.
type clientView struct {
	digests map[string][sha256.Size]byte // client-side flag key -> digest of its inputs
	etag    string                       // hex, over every client-side flag and its digest
}

// clientViewOf computes the client view of a ruleset. Each flag and segment is encoded and
// hashed once, however many client-side flags depend on it; a flag's digest combines those.
func clientViewOf(rs *domain.Ruleset) (clientView, error) {
	type digest = [sha256.Size]byte
	cv := clientView{digests: map[string]digest{}}
	flagDigests, segDigests := map[string]digest{}, map[string]digest{}
	digestOf := func(memo map[string]digest, kind, key string, v any) (digest, error) {
		if d, ok := memo[key]; ok {
			return d, nil
		}
		h := sha256.New()
		h.Write([]byte(kind + "\x00" + key + "\x00"))
		if v != nil { // nil: missing, which is a state too (its creation moves the digest)
			b, err := json.Marshal(v)
			if err != nil {
				return digest{}, fmt.Errorf("sdkapi: client view of %s/%s: %s %s: %w", rs.Project, rs.Environment, kind, key, err)
			}
			h.Write(b)
		}
		var d digest
		h.Sum(d[:0])
		memo[key] = d
		return d, nil
	}
	keys := make([]string, 0, len(rs.Flags))
	for k, f := range rs.Flags {
		if f != nil && f.ClientSide {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	all := sha256.New()
	for _, key := range keys {
		flags, segments := dependencies(rs, key)
		h := sha256.New()
		for _, k := range flags {
			var v any
			if f := rs.Flags[k]; f != nil {
				v = f
			}
			d, err := digestOf(flagDigests, "flag", k, v)
			if err != nil {
				return clientView{}, err
			}
			h.Write(d[:])
		}
		for _, k := range segments {
			var v any
			if s := rs.Segments[k]; s != nil && !s.Archived {
				v = s
			}
			d, err := digestOf(segDigests, "segment", k, v)
			if err != nil {
				return clientView{}, err
			}
			h.Write(d[:])
		}
		var d digest
		h.Sum(d[:0])
		cv.digests[key] = d
		all.Write([]byte(key + "\x00"))
		all.Write(d[:])
	}
	cv.etag = hex.EncodeToString(all.Sum(nil)[:12])
	return cv, nil
}

// dependencies lists, sorted, the flags (key itself included) and segments a flag's evaluation
// reads: prerequisites and in_segment references, followed transitively (cycles included once;
// a missing flag or segment is listed too, so its later creation moves the digest).
func dependencies(rs *domain.Ruleset, key string) (flags, segments []string) {
	seenFlag := map[string]bool{}
	seenSeg := map[string]bool{}
	var visitSeg func(string)
	visitSeg = func(k string) {
		if seenSeg[k] {
			return
		}
		seenSeg[k] = true
		segments = append(segments, k)
		if s := rs.Segments[k]; s != nil {
			for _, ref := range domain.ClauseSegments(s.Clauses) {
				visitSeg(ref)
			}
		}
	}
	var visitFlag func(string)
	visitFlag = func(k string) {
		if seenFlag[k] {
			return
		}
		seenFlag[k] = true
		flags = append(flags, k)
		f := rs.Flags[k]
		if f == nil {
			return
		}
		for _, p := range f.Targeting.Prerequisites {
			visitFlag(p.Flag)
		}
		for _, r := range f.Targeting.Rules {
			for _, ref := range domain.ClauseSegments(r.Clauses) {
				visitSeg(ref)
			}
		}
	}
	visitFlag(key)
	slices.Sort(flags)
	slices.Sort(segments)
	return flags, segments
}

// changedFor lists, sorted, the client-side flags whose answers may differ between two views:
// digests that moved, and flags that became client-side or stopped being so (or were added or
// removed).
func (cv clientView) changedFor(prev clientView) []string {
	var out []string
	for k, d := range cv.digests {
		if pd, ok := prev.digests[k]; !ok || pd != d {
			out = append(out, k)
		}
	}
	for k := range prev.digests {
		if _, ok := cv.digests[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
