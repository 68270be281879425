package oidc

import (
	"slices"
	"testing"
)

// Providers send groups as a JSON list, or (a few) as one string, space- or comma-separated.
func TestGroupsClaimShapes(t *testing.T) {
	cases := []struct {
		claim any
		want  []string
	}{
		{[]any{"eng", "ops", 3.0}, []string{"eng", "ops"}},
		{"eng", []string{"eng"}},
		{"eng ops,sales", []string{"eng", "ops", "sales"}},
		{nil, nil},
		{map[string]any{"eng": true}, nil},
	}
	for _, c := range cases {
		if got := groupsOf(c.claim); !slices.Equal(got, c.want) {
			t.Errorf("groupsOf(%v) = %v, want %v", c.claim, got, c.want)
		}
	}
	if _, err := New(Config{Issuer: "https://id.example.com"}); err == nil {
		t.Error("a client without client id and redirect URL was accepted")
	}
	c, err := New(Config{Issuer: "https://id.example.com", ClientID: "vexil", RedirectURL: "https://vexil.example.com/login/sso/callback", Scopes: []string{"email"}})
	if err != nil || c.cfg.Scopes[0] != "openid" || c.cfg.GroupsClaim != "groups" {
		t.Errorf("defaults: %+v %v", c, err)
	}
}
