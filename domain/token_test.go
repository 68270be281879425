package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

var hash = strings.Repeat("ab", 32)

func TestIssueToken(t *testing.T) {
	tests := []struct {
		name                            string
		id, tname, hash, scope, project string
		then                            []domain.Event
		code, field                     string
	}{
		{name: "unbound", id: "tok-1", tname: "CI", hash: hash, scope: "write",
			then: []domain.Event{&domain.TokenIssued{ID: "tok-1", Name: "CI", Hash: hash, Scope: "write"}}},
		{name: "bound to a project", id: "tok-1", tname: "CI", hash: hash, scope: "read", project: "acme",
			then: []domain.Event{&domain.TokenIssued{ID: "tok-1", Name: "CI", Hash: hash, Scope: "read", Project: "acme"}}},
		{name: "invalid id", id: "", tname: "CI", hash: hash, scope: "read", code: domain.EInvalid, field: "id"},
		{name: "missing name", id: "tok-1", hash: hash, scope: "read", code: domain.EInvalid, field: "name"},
		{name: "short hash", id: "tok-1", tname: "CI", hash: "abc", scope: "read", code: domain.EInvalid, field: "hash"},
		{name: "uppercase hash", id: "tok-1", tname: "CI", hash: strings.ToUpper(hash), scope: "read", code: domain.EInvalid, field: "hash"},
		{name: "unknown scope", id: "tok-1", tname: "CI", hash: hash, scope: "root", code: domain.EInvalid, field: "scope"},
		{name: "invalid project", id: "tok-1", tname: "CI", hash: hash, scope: "read", project: "a b", code: domain.EInvalid, field: "project"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.IssueToken(tc.id, tc.tname, tc.hash, tc.scope, tc.project)
			then(t, got, err, tc.then, tc.code, tc.field)
		})
	}
}

func TestRevokeToken(t *testing.T) {
	issued := &domain.TokenIssued{ID: "tok-1", Name: "CI", Hash: hash, Scope: "admin"}
	tests := []struct {
		name  string
		given []domain.Event
		then  []domain.Event
		code  string
	}{
		{name: "revoke", given: []domain.Event{issued}, then: []domain.Event{&domain.TokenRevoked{ID: "tok-1"}}},
		{name: "revoke twice", given: []domain.Event{issued, &domain.TokenRevoked{ID: "tok-1"}}, code: domain.EConflict},
		{name: "revoke a missing token", code: domain.ENotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := fold[domain.APIToken](record(t, "token/tok-1", tc.given...))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tok.Revoke()
			then(t, got, err, tc.then, tc.code, "")
		})
	}
}

func TestScopeAllows(t *testing.T) {
	tests := []struct {
		have, need string
		want       bool
	}{
		{"read", "read", true}, {"read", "write", false}, {"read", "admin", false},
		{"write", "read", true}, {"write", "write", true}, {"write", "admin", false},
		{"admin", "read", true}, {"admin", "write", true}, {"admin", "admin", true},
		{"", "read", false}, {"root", "read", false}, {"admin", "", false}, {"admin", "root", false},
	}
	for _, tc := range tests {
		if got := domain.ScopeAllows(tc.have, tc.need); got != tc.want {
			t.Errorf("ScopeAllows(%q, %q) = %v, want %v", tc.have, tc.need, got, tc.want)
		}
	}
}

func TestFoldToken(t *testing.T) {
	tok, err := fold[domain.APIToken](record(t, "token/tok-1",
		&domain.TokenIssued{ID: "tok-1", Name: "CI", Hash: hash, Scope: "write", Project: "acme"}))
	if err != nil {
		t.Fatal(err)
	}
	if tok.ID != "tok-1" || tok.Scope != "write" || tok.Project != "acme" || tok.Revoked ||
		tok.Version != 1 || !tok.CreatedAt.Equal(t0) || !tok.RevokedAt.IsZero() {
		t.Fatalf("issued: %+v", tok)
	}
	if !tok.Permits("acme", "write") || tok.Permits("acme", "admin") || tok.Permits("other", "read") || tok.Permits("", "read") {
		t.Errorf("permits of a project-bound write token are wrong")
	}
	tok, err = fold[domain.APIToken](record(t, "token/tok-1",
		&domain.TokenIssued{ID: "tok-1", Name: "CI", Hash: hash, Scope: "admin"}, &domain.TokenRevoked{ID: "tok-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Revoked || tok.Version != 2 || !tok.RevokedAt.Equal(t0.Add(60e9)) {
		t.Fatalf("revoked: %+v", tok)
	}
	if tok.Permits("acme", "read") {
		t.Errorf("a revoked token permits")
	}
	if tok, err := fold[domain.APIToken](nil); tok != nil || err != nil {
		t.Fatalf("empty stream: %v %v", tok, err)
	}
	if _, err := fold[domain.APIToken](record(t, "token/tok-1", &domain.TokenRevoked{ID: "tok-1"})); err == nil {
		t.Fatalf("a stream without TokenIssued folded")
	}
}

// Permits is the whole authorization rule of the management API: a token acts only within its
// project and scope, where project "" is the instance as a whole (or an unrestricted token as the
// thing acted on), which only unrestricted tokens reach.
func TestTokenPermits(t *testing.T) {
	admin := &domain.APIToken{ID: "a", Scope: "admin"}
	acmeAdmin := &domain.APIToken{ID: "b", Scope: "admin", Project: "acme"}
	acmeRead := &domain.APIToken{ID: "c", Scope: "read", Project: "acme"}
	revoked := &domain.APIToken{ID: "d", Scope: "admin", Revoked: true}
	tests := []struct {
		name          string
		tok           *domain.APIToken
		project, need string
		want          bool
	}{
		{"unrestricted admin in a project", admin, "acme", "admin", true},
		{"unrestricted admin on the instance", admin, "", "admin", true},
		{"restricted admin in its project", acmeAdmin, "acme", "admin", true},
		{"restricted admin in another project", acmeAdmin, "other", "read", false},
		{"restricted admin on the instance (or an unrestricted token)", acmeAdmin, "", "read", false},
		{"restricted reader reads its project", acmeRead, "acme", "read", true},
		{"restricted reader cannot write it (nor make a write token)", acmeRead, "acme", "write", false},
		{"unknown scope needed", admin, "acme", "root", false},
		{"revoked", revoked, "acme", "read", false},
		{"no token", nil, "acme", "read", false},
	}
	for _, tc := range tests {
		if got := tc.tok.Permits(tc.project, tc.need); got != tc.want {
			t.Errorf("%s: Permits(%q, %q) = %v, want %v", tc.name, tc.project, tc.need, got, tc.want)
		}
	}
}

// Edge tokens stand apart from read < write < admin: they allow no management scope, only
// admins may issue them, and only they are narrowed to environments.
func TestEdgeTokens(t *testing.T) {
	for _, have := range []string{domain.ScopeRead, domain.ScopeWrite, domain.ScopeAdmin} {
		if domain.ScopeAllows(domain.ScopeEdge, have) {
			t.Errorf("an edge token allows %s", have)
		}
	}
	if !domain.ScopeAllows(domain.ScopeAdmin, domain.ScopeEdge) || domain.ScopeAllows(domain.ScopeWrite, domain.ScopeEdge) ||
		domain.ScopeAllows(domain.ScopeEdge, domain.ScopeEdge) {
		t.Error("only admins issue edge tokens")
	}
	edge := &domain.APIToken{ID: "e", Scope: domain.ScopeEdge, Project: "shop"}
	if edge.Permits("shop", domain.ScopeRead) {
		t.Error("an edge token reads the management API")
	}
	tests := []struct {
		name, scope, project string
		envs                 []string
		field                string
	}{
		{name: "narrowed", scope: domain.ScopeEdge, project: "shop", envs: []string{"production", "staging"}},
		{name: "whole project", scope: domain.ScopeEdge, project: "shop"},
		{name: "every project", scope: domain.ScopeEdge},
		{name: "environments of no project", scope: domain.ScopeEdge, envs: []string{"production"}, field: "environments"},
		{name: "environments on a read token", scope: domain.ScopeRead, project: "shop", envs: []string{"production"}, field: "environments"},
		{name: "twice", scope: domain.ScopeEdge, project: "shop", envs: []string{"production", "production"}, field: "environments"},
		{name: "bad key", scope: domain.ScopeEdge, project: "shop", envs: []string{"Prod uction"}, field: "environments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := domain.IssueEdgeToken("tok-e", "edge", hash, tt.scope, tt.project, tt.envs)
			if tt.field != "" {
				var de *domain.Error
				if !errors.As(err, &de) || de.Code != domain.EInvalid || de.Field != tt.field {
					t.Fatalf("got %v, want invalid %s", err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var tok domain.APIToken
			tok.Apply(events[0])
			if tok.Scope != tt.scope || tok.Project != tt.project || !slices.Equal(tok.Environments, tt.envs) {
				t.Fatalf("token %+v", tok)
			}
		})
	}
}
