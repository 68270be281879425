package platform

import (
	"context"
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/app/identity/oidc"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/roles/web"
	"github.com/vexil-flags/vexil/services/roles/webhooks"
)

// registerWebConsole serves the web console (services/roles/web) at / beside the management API: the
// console role's pages, over the same application.
func registerWebConsole(e *echo.Echo, p *Platform) error {
	people, err := identity.NewStore(p.Pool)
	if err != nil {
		return err
	}
	cmds, err := web.NewAppCommands(p.App)
	if err != nil {
		return err
	}
	cmds.WithAnalyzer(p.Analyzer) // the REST API's analyzer: reports and plans on the pages are its numbers
	opts, err := webOptions(p.Config.SSO)
	if err != nil {
		return err
	}
	cc := p.Config.Console
	opts.Sessions = identity.SessionPolicy{Idle: cc.SessionIdle, Absolute: cc.SessionAbsolute}
	opts.LoginAttempts, opts.LoginInterval = cc.LoginAttempts, cc.LoginInterval
	if opts.Webhooks, err = webhooks.NewStore(p.Pool); err != nil {
		return err
	}
	opts.WakeWebhooks = p.wakeWebhooks
	srv, err := web.NewServer(cmds, people, p.Log, opts)
	if err != nil {
		return err
	}
	srv.Register(e)
	return nil
}

// webOptions are the console's options with single sign-on as configured (VEXIL_OIDC_*).
func webOptions(sso config.SSO) (web.Options, error) {
	opts := web.DefaultOptions
	opts.NoLocalPasswords = !sso.LocalPasswords
	if !sso.Enabled() {
		return opts, nil
	}
	roles, err := identity.ParseGroupRoles(sso.GroupRoles)
	if err != nil {
		return opts, fmt.Errorf("config: oidc-group-roles: %w", err)
	}
	client, err := oidc.New(oidc.Config{Issuer: sso.Issuer, ClientID: sso.ClientID, ClientSecret: sso.ClientSecret,
		RedirectURL: sso.RedirectURL, Scopes: sso.Scopes, GroupsClaim: sso.GroupsClaim})
	if err != nil {
		return opts, err
	}
	opts.SSO, opts.GroupRoles = client, roles
	return opts, nil
}

// Demo sign-in of `serve --demo`: an editor of the demo project, so a person can try the console
// at once. The password is public (it is printed and documented): the demo is for a laptop.
const (
	DemoEmail    = "demo@vexil.local"
	DemoPassword = "vexil-demo-password"
	demoName     = "Demo Editor"
)

// EnsureDemoLogin creates the demo person (editor of the demo project) if missing.
func EnsureDemoLogin(ctx context.Context, p *Platform) error {
	people, err := identity.NewStore(p.Pool)
	if err != nil {
		return err
	}
	u, err := people.UserByEmail(ctx, DemoEmail)
	if err != nil {
		if u, err = people.CreateUser(ctx, identity.NewUser{Email: DemoEmail, DisplayName: demoName, Password: DemoPassword, CreatedBy: "system:demo"}); err != nil {
			return fmt.Errorf("demo login: %w", err)
		}
	}
	return people.SetRole(ctx, u.ID, DemoProject, identity.RoleEditor, "system:demo")
}
