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

// clientViewOf computes the client view of a ruleset.
func clientViewOf(rs *domain.Ruleset) (clientView, error) {
	cv := clientView{digests: map[string][sha256.Size]byte{}}
	flagJSON := map[string][]byte{} // each flag and segment is encoded once, however many flags use it
	segJSON := map[string][]byte{}
	encode := func(memo map[string][]byte, key string, v any) ([]byte, error) {
		if b, ok := memo[key]; ok {
			return b, nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		memo[key] = b
		return b, nil
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
			h.Write([]byte("flag\x00" + k + "\x00"))
			if f := rs.Flags[k]; f != nil {
				b, err := encode(flagJSON, k, f)
				if err != nil {
					return clientView{}, fmt.Errorf("sdkapi: client view of %s/%s: flag %s: %w", rs.Project, rs.Environment, k, err)
				}
				h.Write(b)
			}
			h.Write([]byte{0})
		}
		for _, k := range segments {
			h.Write([]byte("segment\x00" + k + "\x00"))
			if s := rs.Segments[k]; s != nil && !s.Archived {
				b, err := encode(segJSON, k, s)
				if err != nil {
					return clientView{}, fmt.Errorf("sdkapi: client view of %s/%s: segment %s: %w", rs.Project, rs.Environment, k, err)
				}
				h.Write(b)
			}
			h.Write([]byte{0})
		}
		var d [sha256.Size]byte
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
