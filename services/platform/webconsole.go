package platform

import (
	"context"
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/roles/web"
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
	cc := p.Config.Console
	opts := web.Options{Sessions: identity.SessionPolicy{Idle: cc.SessionIdle, Absolute: cc.SessionAbsolute},
		LoginAttempts: cc.LoginAttempts, LoginInterval: cc.LoginInterval}
	srv, err := web.NewServer(cmds, people, p.Log, opts)
	if err != nil {
		return err
	}
	srv.Register(e)
	return nil
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
