package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"

	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/app/identity/oidc"
	"github.com/vexil-flags/vexil/services/roles/web"
)

// groupsProvider is zitadel/oidc's example OpenID provider (a real implementation of the
// provider side: discovery, authorization with PKCE, its own login form, token endpoint,
// signed ID tokens, userinfo) whose ID tokens also carry a "groups" claim when the client asks
// for the groups scope, as Okta, Dex or Keycloak do.
type groupsProvider struct {
	*storage.Storage
	groups map[string][]string // by user id
}

// groupsClient lets the registered client ask for the groups scope (the example's clients allow
// only its own custom scope besides the standard ones).
type groupsClient struct{ op.Client }

func (c groupsClient) IsScopeAllowed(scope string) bool {
	return scope == "groups" || c.Client.IsScopeAllowed(scope)
}

func (g groupsProvider) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := g.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return groupsClient{c}, nil
}

func (g groupsProvider) SetUserinfoFromRequest(ctx context.Context, info *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := g.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	if slices.Contains(scopes, "groups") {
		info.AppendClaims("groups", g.groups[req.GetSubject()])
	}
	return nil
}

func TestSingleSignOnCreatesThePersonWithTheRolesOfTheirGroups(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	defer slog.SetDefault(slog.Default()) // the example provider replaces the default logger

	// The console, started first so the provider knows its callback.
	e := echo.New()
	console := httptest.NewServer(e)
	t.Cleanup(console.Close)
	callback := console.URL + "/login/sso/callback"

	// The provider, in this test, on its own port.
	providerMux := http.NewServeMux()
	provider := httptest.NewServer(providerMux)
	t.Cleanup(provider.Close)
	users := storage.NewUserStore(provider.URL) // test-user@127.0.0.1 / verysecure, id1, email verified
	storage.RegisterClients(storage.WebClient("vexil-console", "console-secret", callback))
	router := exampleop.SetupServer(provider.URL, groupsProvider{Storage: storage.NewStorage(users),
		groups: map[string][]string{"id1": {"eng", "ops", "sales"}}}, quiet, false, op.WithAllowInsecure())
	providerMux.Handle("/", router)

	pool, store := pgtest.NewEventStore(t)
	a, err := app.New(app.Config{Store: store, Pool: pool, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"shop", "blog"} {
		if _, _, err := a.Commands.CreateProject(context.Background(), app.Meta{Actor: "system:test"}, app.CreateProject{Key: p, Name: p}); err != nil {
			t.Fatal(err)
		}
	}
	cmds, err := web.NewAppCommands(a)
	if err != nil {
		t.Fatal(err)
	}
	people, err := identity.NewStore(pool)
	if err != nil {
		t.Fatal(err)
	}
	mapping, err := identity.ParseGroupRoles("eng:shop=editor, ops:blog=viewer, ops:shop=viewer, admins:*=admin")
	if err != nil {
		t.Fatal(err)
	}
	sso, err := oidc.New(oidc.Config{Issuer: provider.URL, ClientID: "vexil-console", ClientSecret: "console-secret",
		RedirectURL: callback, Scopes: []string{"openid", "email", "profile", "groups"}})
	if err != nil {
		t.Fatal(err)
	}
	opts := web.DefaultOptions
	opts.SSO, opts.GroupRoles, opts.NoLocalPasswords = sso, mapping, true
	srv, err := web.NewServer(cmds, people, quiet, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(e)

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// The sign-in page offers SSO only: local passwords are off, and a password is refused.
	_, page := get(console.URL + "/login")
	if !strings.Contains(page, `href="/login/sso?next=`) || strings.Contains(page, `name="password"`) {
		t.Fatalf("sign-in page: %s", page)
	}
	resp, err := browser.PostForm(console.URL+"/login", url.Values{"email": {"test-user@zitadel.ch"}, "password": {"verysecure"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("password sign-in with local passwords off: %d", resp.StatusCode)
	}

	// Vexil sends the browser to the provider, whose login form is what a person sees.
	resp, page = get(console.URL + "/login/sso?next=/projects")
	if resp.Request.URL.Host != strings.TrimPrefix(provider.URL, "http://") || !strings.Contains(page, `name="password"`) {
		t.Fatalf("not at the provider's login form: %s %s", resp.Request.URL, page)
	}
	authorize := resp.Request.URL
	for resp := resp; resp != nil; resp = resp.Request.Response {
		if q := resp.Request.URL.Query(); q.Get("code_challenge") != "" {
			authorize = resp.Request.URL
		}
	}
	if q := authorize.Query(); q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" {
		t.Fatalf("authorization request without PKCE, nonce or state: %s", authorize)
	}
	id := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(page)
	if id == nil {
		t.Fatalf("no auth request id in the provider's form: %s", page)
	}
	resp, err = browser.PostForm(provider.URL+"/login/username", url.Values{"id": {id[1]}, "username": {"test-user@127.0.0.1"}, "password": {"verysecure"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != console.URL+"/projects" {
		t.Fatalf("after the provider's login: %d at %s: %s", resp.StatusCode, resp.Request.URL, b)
	}
	if !strings.Contains(string(b), "Test User") {
		t.Errorf("the console does not show the person signed in: %s", b)
	}

	// The person was created on first sign-in, with the roles their groups map to.
	ctx := context.Background()
	u, err := people.UserByEmail(ctx, "test-user@zitadel.ch")
	if err != nil {
		t.Fatal(err)
	}
	if u.InstanceAdmin || u.DisplayName != "Test User" {
		t.Errorf("person %+v", u)
	}
	for project, want := range map[string]string{"shop": identity.RoleEditor, "blog": identity.RoleViewer, "other": ""} {
		if got, err := people.Role(ctx, u, project); err != nil || got != want {
			t.Errorf("role in %s: %q (%v), want %q", project, got, err, want)
		}
	}
	// And it is the editor role the console applies: an editor's page opens.
	if resp, _ := get(console.URL + "/projects/shop/flags/new"); resp.StatusCode != http.StatusOK {
		t.Errorf("an editor's page: %d", resp.StatusCode)
	}
	if resp, _ := get(console.URL + "/projects/blog/flags/new"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an editor's page in a project where the person is a viewer: %d", resp.StatusCode)
	}
}
