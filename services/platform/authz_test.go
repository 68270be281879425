package platform_test

import (
	"slices"
	"strings"
	"testing"
)

// restrictedAdmin starts a platform with projects demo and other, and returns the bootstrap admin,
// an admin token restricted to demo, and that token's id.
func restrictedAdmin(t *testing.T) (root, demo *vexil, demoID string) {
	t.Helper()
	root = startVexil(t)
	root.must(201, "POST", "/api/v1/projects", map[string]any{"key": "demo", "name": "Demo"})
	root.must(201, "POST", "/api/v1/projects", map[string]any{"key": "other", "name": "Other"})
	tok := root.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "demo admin", "scope": "admin", "project": "demo"})
	return root, root.as(tok["token"].(string)), tok["id"].(string)
}

// forbidden fails the test unless the answer is 403 with code forbidden.
func forbidden(t *testing.T, r response, what string) {
	t.Helper()
	if r.Status != 403 {
		t.Fatalf("%s: status %d, want 403: %s", what, r.Status, r.Body)
	}
	if b := r.JSON(t); b["code"] != "forbidden" {
		t.Fatalf("%s: error %v", what, b)
	}
}

// Escalation 1 of issue 10: an admin token restricted to demo minted an unrestricted admin token,
// which then read another project's server key.
func TestRestrictedTokenCannotMintAnUnrestrictedToken(t *testing.T) {
	t.Parallel()
	root, demo, _ := restrictedAdmin(t)
	before := root.tv.Count(`SELECT count(*) FROM rm_api_tokens`)
	r := demo.do("POST", "/api/v1/tokens", map[string]any{"name": "escape", "scope": "admin"})
	if r.Status == 201 {
		escaped := root.as(r.JSON(t)["token"].(string))
		env := escaped.do("GET", "/api/v1/projects/other/environments/production", nil)
		t.Fatalf("a demo token minted an unrestricted admin token, which reads other's environment (%d): %s", env.Status, env.Body)
	}
	forbidden(t, r, "restricted admin creates an unrestricted token")
	if after := root.tv.Count(`SELECT count(*) FROM rm_api_tokens`); after != before {
		t.Fatalf("tokens %d -> %d after a refused creation", before, after)
	}
	// Within its own project it still creates tokens, of every scope it holds.
	for _, scope := range []string{"read", "write", "admin"} {
		tok := demo.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "demo " + scope, "scope": scope, "project": "demo"})
		if tok["project"] != "demo" || tok["scope"] != scope {
			t.Fatalf("created %v", tok)
		}
	}
}

// Escalation 2: a restricted admin created tokens for other projects.
func TestRestrictedTokenCannotCreateTokensForOtherProjects(t *testing.T) {
	t.Parallel()
	_, demo, _ := restrictedAdmin(t)
	for _, scope := range []string{"read", "write", "admin"} {
		forbidden(t, demo.do("POST", "/api/v1/tokens", map[string]any{"name": "x", "scope": scope, "project": "other"}),
			"restricted admin creates a "+scope+" token for another project")
	}
}

// Escalation 3: a restricted admin listed every token of every project.
func TestRestrictedTokenListsOnlyItsProjectsTokens(t *testing.T) {
	t.Parallel()
	root, demo, demoID := restrictedAdmin(t)
	otherTok := root.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "other reader", "scope": "read", "project": "other"})
	unrestricted := root.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "ci", "scope": "write"})
	demoReader := root.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "demo reader", "scope": "read", "project": "demo"})

	var seen []string
	for _, it := range items(t, demo.must(200, "GET", "/api/v1/tokens", nil)) {
		if it["project"] != "demo" {
			t.Errorf("a demo token lists token %v", it)
		}
		seen = append(seen, it["id"].(string))
	}
	slices.Sort(seen)
	want := []string{demoID, demoReader["id"].(string)}
	slices.Sort(want)
	if !slices.Equal(seen, want) {
		t.Fatalf("a demo token lists %v, want %v", seen, want)
	}
	// The unrestricted admin still sees them all.
	all := map[string]bool{}
	for _, it := range items(t, root.must(200, "GET", "/api/v1/tokens", nil)) {
		all[it["id"].(string)] = true
	}
	for _, id := range []string{demoID, demoReader["id"].(string), otherTok["id"].(string), unrestricted["id"].(string)} {
		if !all[id] {
			t.Fatalf("the unrestricted admin does not list %s: %v", id, all)
		}
	}
}

// Escalation 4: a restricted admin revoked unrestricted admin tokens (and other projects' tokens).
func TestRestrictedTokenCannotRevokeTokensOutsideItsProject(t *testing.T) {
	t.Parallel()
	root, demo, _ := restrictedAdmin(t)
	admin2 := root.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "second admin", "scope": "admin"})
	otherTok := root.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "other admin", "scope": "admin", "project": "other"})
	for _, tok := range []map[string]any{admin2, otherTok} {
		forbidden(t, demo.do("DELETE", "/api/v1/tokens/"+tok["id"].(string), nil), "restricted admin revokes "+tok["name"].(string))
		if n := root.tv.Count(`SELECT count(*) FROM rm_api_tokens WHERE id = $1 AND NOT revoked`, tok["id"]); n != 1 {
			t.Fatalf("%s was revoked by a demo token", tok["name"])
		}
	}
	root.as(admin2["token"].(string)).must(200, "GET", "/api/v1/projects/other", nil)
	// A token of its own project it may revoke; an unknown one is still 404.
	demoReader := root.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "demo reader", "scope": "read", "project": "demo"})
	demo.must(200, "DELETE", "/api/v1/tokens/"+demoReader["id"].(string), nil)
	demo.must(404, "DELETE", "/api/v1/tokens/0123456789abcdef", nil)
}

// Escalation 5: a restricted admin created projects (an instance-wide action).
func TestRestrictedTokenCannotCreateProjects(t *testing.T) {
	t.Parallel()
	root, demo, _ := restrictedAdmin(t)
	forbidden(t, demo.do("POST", "/api/v1/projects", map[string]any{"key": "mine", "name": "Mine"}), "restricted admin creates a project")
	if ks := keys(t, root.must(200, "GET", "/api/v1/projects", nil)); slices.Contains(ks, "mine") {
		t.Fatalf("project created by a restricted token: %v", ks)
	}
	// And it still lists only its own project.
	if ks := keys(t, demo.must(200, "GET", "/api/v1/projects", nil)); strings.Join(ks, ",") != "demo" {
		t.Fatalf("a demo token lists projects %v", ks)
	}
}
