package identity_test

import (
	"maps"
	"testing"

	"github.com/vexil-flags/vexil/services/app/identity"
)

func TestGroupRolesParseAndGiveTheStrongestRolePerProject(t *testing.T) {
	m, err := identity.ParseGroupRoles(" eng:shop=editor, acme:ops:shop=admin ,eng:blog=viewer,qa:blog=editor, admins:*=admin,")
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 5 || m[1] != (identity.GroupRole{Group: "acme:ops", Project: "shop", Role: "admin"}) {
		t.Fatalf("parsed %+v", m)
	}
	cases := []struct {
		groups []string
		roles  map[string]string
		admin  bool
	}{
		{nil, map[string]string{}, false},
		{[]string{"eng"}, map[string]string{"shop": "editor", "blog": "viewer"}, false},
		{[]string{"eng", "qa", "acme:ops"}, map[string]string{"shop": "admin", "blog": "editor"}, false},
		{[]string{"admins"}, map[string]string{}, true},
		{[]string{"Eng"}, map[string]string{}, false}, // groups are compared exactly
	}
	for _, c := range cases {
		roles, admin := identity.RolesOf(c.groups, m)
		if !maps.Equal(roles, c.roles) || admin != c.admin {
			t.Errorf("groups %v: %v admin=%v, want %v admin=%v", c.groups, roles, admin, c.roles, c.admin)
		}
	}
	for _, bad := range []string{"eng=editor", "eng:shop=owner", "eng:*=editor", ":shop=editor", "eng:=viewer", "eng:shop"} {
		if _, err := identity.ParseGroupRoles(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
