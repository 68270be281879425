package sdkapi

import (
	"slices"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

func TestClientViewFollowsWhatClientSideFlagsDependOn(t *testing.T) {
	base := newTestRuleset()
	// banner's segment beta names segment nested, which does not exist yet; gated and ops-mode
	// require each other (a cycle Compile reports; the view must still terminate).
	base.segments["beta"].Clauses = []domain.Clause{{Operator: domain.OpInSegment, Values: []any{"nested"}}}
	base.flags["ops-mode"].Targeting.Prerequisites = []domain.Prerequisite{{Flag: "gated", Variation: "on"}}
	view := func(r *testRuleset) clientView {
		t.Helper()
		cv, err := clientViewOf(r.ruleset())
		if err != nil {
			t.Fatal(err)
		}
		return cv
	}
	before := view(base)
	if len(before.digests) != 2 {
		t.Fatalf("client-side flags in the view: %d, want banner and gated", len(before.digests))
	}
	cases := []struct {
		name   string
		change func(r *testRuleset)
		want   []string
	}{
		{"server-only flag", func(r *testRuleset) { r.toggle("ops-limit") }, nil},
		{"segment only a server-only flag uses", func(r *testRuleset) { r.include("staff", "u9") }, nil},
		{"client-side flag", func(r *testRuleset) { r.toggle("banner") }, []string{"banner"}},
		{"server-only prerequisite", func(r *testRuleset) { r.toggle("ops-mode") }, []string{"gated"}},
		{"segment a client-side flag uses", func(r *testRuleset) { r.include("beta", "u5") }, []string{"banner"}},
		{"segment nested in it appears", func(r *testRuleset) {
			r.segments["nested"] = &domain.Segment{Project: testProject, Key: "nested", Included: []string{"u6"}, Version: 1}
		}, []string{"banner"}},
		{"flag becomes client-side", func(r *testRuleset) { r.flags["ops-limit"].ClientSide = true }, []string{"ops-limit"}},
		{"flag stops being client-side", func(r *testRuleset) { r.flags["banner"].ClientSide = false }, []string{"banner"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTestRuleset()
			r.segments["beta"].Clauses = base.segments["beta"].Clauses
			r.flags["ops-mode"].Targeting.Prerequisites = base.flags["ops-mode"].Targeting.Prerequisites
			// Mutations below replace the maps' values, never the shared base ones.
			for k, f := range r.flags {
				c := *f
				r.flags[k] = &c
			}
			c.change(r)
			after := view(r)
			if got := after.changedFor(before); !slices.Equal(got, c.want) {
				t.Fatalf("changed client-side flags %q, want %q", got, c.want)
			}
			if (after.etag == before.etag) != (c.want == nil) {
				t.Fatalf("client ETag %s -> %s, want it to move only with a client-visible change", before.etag, after.etag)
			}
		})
	}
}

// BenchmarkClientView is the cost the client view adds to installing a new snapshot of an
// environment of 1,000 flags (100 client_side).
func BenchmarkClientView(b *testing.B) {
	rs := benchRuleset(b, "load", benchClientKey, benchServerKey, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := clientViewOf(rs); err != nil {
			b.Fatal(err)
		}
	}
}
