package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app/identity"
)

// Projects and environments: the list of a project's environments, one environment's settings,
// SDK keys (the server key to admins only: it reads every flag's targeting) with copy buttons,
// key rotation behind a confirmation that says what breaks, and OpenFeature snippets filled in
// with this Vexil's URL and the environment's keys.

type environmentsData struct {
	frame
	IsAdmin                 bool
	NewKey, NewName, Colour string
	Err                     *fieldErrors
}

func isAdmin(c echo.Context) bool { return roleOf(c) == identity.RoleAdmin }

func (s *Server) environmentsPage(c echo.Context) error {
	return s.showEnvironments(c, http.StatusOK, environmentsData{})
}

func (s *Server) showEnvironments(c echo.Context, status int, d environmentsData) error {
	p, err := s.cmds.Project(c.Request().Context(), c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	d.frame, d.IsAdmin = s.baseFrame(c, "Environments", "environments", p), isAdmin(c)
	return s.render(c, status, "environments", d)
}

func (s *Server) createEnvironment(c echo.Context) error {
	d := environmentsData{NewKey: strings.TrimSpace(c.FormValue("key")), NewName: strings.TrimSpace(c.FormValue("name")), Colour: strings.TrimSpace(c.FormValue("color"))}
	project := c.Param("project")
	e, err := s.cmds.CreateEnvironment(c.Request().Context(), meta(c), project, versionField(c),
		domain.NewEnvironment{Key: d.NewKey, Name: d.NewName, Color: d.Colour})
	if fe := asFieldError(err); fe != nil {
		fe.Field = strings.TrimPrefix(fe.Field, "environments[0].")
		d.Err = fe
		return s.showEnvironments(c, httpStatus(err), d)
	}
	if domain.ErrorCode(err) == domain.EConflict {
		d.Err = &fieldErrors{Field: "key", Message: "The project changed meanwhile: " + domain.ErrorMessage(err)}
		return s.showEnvironments(c, http.StatusConflict, d)
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, projectURL(project)+"/environments/"+url.PathEscape(e.Key)+"?done="+url.QueryEscape("Environment created with new SDK keys."))
}

func (s *Server) updateProject(c echo.Context) error {
	project := c.Param("project")
	_, err := s.cmds.UpdateProject(c.Request().Context(), meta(c), project, versionField(c), strings.TrimSpace(c.FormValue("name")), strings.TrimSpace(c.FormValue("description")))
	if fe := asFieldError(err); fe != nil {
		fe.Field = "project." + fe.Field
		return s.showEnvironments(c, http.StatusBadRequest, environmentsData{Err: fe})
	}
	if domain.ErrorCode(err) == domain.EConflict {
		return s.showEnvironments(c, http.StatusConflict, environmentsData{Err: &fieldErrors{Field: "project.name", Message: "The project was changed meanwhile; reload and try again."}})
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, projectURL(project)+"/environments?done="+url.QueryEscape("Project saved."))
}

// ---- one environment ----

type environmentData struct {
	frame
	Env          *domain.Environment
	IsAdmin      bool
	Production   bool
	Name, Colour string
	Err          *fieldErrors
	// Rotate is the key kind whose rotation waits for confirmation ("client" or "server").
	Rotate   string
	BaseURL  string
	Snippets []snippet
}

type snippet struct {
	ID, Title, Lang, Code string
}

func (s *Server) environmentPage(c echo.Context) error {
	return s.showEnvironment(c, http.StatusOK, func(*environmentData) {})
}

func (s *Server) showEnvironment(c echo.Context, status int, more func(*environmentData)) error {
	p, err := s.cmds.Project(c.Request().Context(), c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	env := p.Environments[c.Param("environment")]
	if env == nil {
		return s.errorPage(c, http.StatusNotFound, fmt.Sprintf("There is no environment %q in this project.", c.Param("environment")))
	}
	fr := s.baseFrame(c, env.Name+" environment", "environments", p)
	fr.Environment = env.Key
	d := environmentData{frame: fr, Env: env, IsAdmin: isAdmin(c), Production: isProduction(env), Name: env.Name, Colour: env.Color, BaseURL: baseURL(c)}
	d.Snippets = snippets(d.BaseURL, env, d.IsAdmin)
	more(&d)
	return s.render(c, status, "environment", d)
}

// baseURL is where this Vexil answers, as the browser reached it (the SDK API is on this port).
func baseURL(c echo.Context) string {
	return c.Scheme() + "://" + c.Request().Host
}

func (s *Server) updateEnvironment(c echo.Context) error {
	project, env := c.Param("project"), c.Param("environment")
	name, colour := strings.TrimSpace(c.FormValue("name")), strings.TrimSpace(c.FormValue("color"))
	_, err := s.cmds.UpdateEnvironment(c.Request().Context(), meta(c), project, env, versionField(c), name, colour)
	if fe := asFieldError(err); fe != nil {
		return s.showEnvironment(c, http.StatusBadRequest, func(d *environmentData) { d.Err, d.Name, d.Colour = fe, name, colour })
	}
	if domain.ErrorCode(err) == domain.EConflict {
		return s.showEnvironment(c, http.StatusConflict, func(d *environmentData) {
			d.Err, d.Name, d.Colour = &fieldErrors{Field: "name", Message: "The project was changed meanwhile: check the values below and save again."}, name, colour
		})
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, projectURL(project)+"/environments/"+url.PathEscape(env)+"?done="+url.QueryEscape("Environment saved."))
}

// rotateKey replaces an SDK key. The first post shows what breaks and asks again; the second,
// with confirm=yes, rotates. The old key stops working at once: Vexil keeps no grace period for
// it, and the confirmation says so.
func (s *Server) rotateKey(c echo.Context) error {
	project, env, kind := c.Param("project"), c.Param("environment"), c.FormValue("kind")
	if kind != domain.ClientSideKey && kind != domain.ServerSideKey {
		return s.errorPage(c, http.StatusBadRequest, "kind must be client or server")
	}
	if c.FormValue("confirm") != "yes" {
		return s.showEnvironment(c, http.StatusOK, func(d *environmentData) { d.Rotate = kind })
	}
	_, err := s.cmds.RotateSDKKey(c.Request().Context(), meta(c), project, env, versionField(c), kind)
	if domain.ErrorCode(err) == domain.EConflict {
		return s.errorPage(c, http.StatusConflict, "The project was changed meanwhile (perhaps the key was rotated already). Reload and check the keys.")
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, projectURL(project)+"/environments/"+url.PathEscape(env)+"?done="+
		url.QueryEscape("The "+kind+"-side key was rotated: deploy the new one now; the old one is refused from now on."))
}

// snippets are copy-paste OpenFeature setups with this Vexil's URL and the environment's keys:
// the server key only for admins (others get a placeholder and the client-side snippets work).
func snippets(base string, env *domain.Environment, admin bool) []snippet {
	server := "<server-side key: ask an admin of this project>"
	if admin {
		server = env.ServerKey
	}
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	return []snippet{
		{ID: "go", Title: "Go service (OpenFeature, sdk/go: evaluates in process with the server key)", Lang: "go", Code: `import (
	"github.com/open-feature/go-sdk/openfeature"
	vexil "github.com/vexil-flags/vexil/sdk/go"
)

provider, err := vexil.NewProvider(vexil.Options{
	BaseURL:   ` + q(base) + `,
	ServerKey: ` + q(server) + `, // better: os.Getenv("VEXIL_SERVER_KEY")
})
if err != nil { /* … */ }
if err := openfeature.SetProviderAndWait(provider); err != nil { /* … */ }
defer openfeature.Shutdown()

client := openfeature.NewClient("my-service")
on, _ := client.BooleanValue(ctx, "my-flag", false, openfeature.NewEvaluationContext("user-42", nil))`},
		{ID: "web", Title: "Web page (OpenFeature web SDK, @vexil-flags/web, with the public client key)", Lang: "ts", Code: `import { OpenFeature } from '@openfeature/web-sdk';
import { VexilWebProvider } from '@vexil-flags/web';

await OpenFeature.setProviderAndWait(
  new VexilWebProvider({ baseUrl: ` + q(base) + `, clientKey: ` + q(env.ClientKey) + ` }),
  { targetingKey: user.id },
);
const on = OpenFeature.getClient().getBooleanValue('my-flag', false);`},
		{ID: "node", Title: "Node.js service (OpenFeature server SDK with the OFREP provider, server key)", Lang: "ts", Code: `import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

await OpenFeature.setProviderAndWait(new OFREPProvider({
  baseUrl: ` + q(base) + `,
  headers: [['Authorization', 'Bearer ' + ` + q(server) + `]], // better: process.env.VEXIL_SERVER_KEY
}));
const on = await OpenFeature.getClient().getBooleanValue('my-flag', false, { targetingKey: 'user-42' });`},
		{ID: "ofrep", Title: "Any language: OFREP over HTTP", Lang: "sh", Code: `curl -H 'Authorization: Bearer ` + env.ClientKey + `' -H 'Content-Type: application/json' \
     -d '{"context": {"targetingKey": "user-42"}}' \
     ` + base + `/ofrep/v1/evaluate/flags/my-flag`},
	}
}

// ---- new project ----

type newProjectData struct {
	frame
	Key, Name, Description string
	Err                    *fieldErrors
}

// Projects are created by instance admins only (as the API asks an unrestricted admin token).
func (s *Server) newProjectPage(c echo.Context) error {
	sess := sessionOf(c)
	if !sess.User.InstanceAdmin {
		return s.errorPage(c, http.StatusForbidden, "Only instance admins create projects.")
	}
	return s.render(c, http.StatusOK, "newproject", newProjectData{frame: frame{Title: "New project", User: &sess.User, CSRF: sess.CSRF, Nav: "projects"}})
}

func (s *Server) createProject(c echo.Context) error {
	sess := sessionOf(c)
	if !sess.User.InstanceAdmin {
		return s.errorPage(c, http.StatusForbidden, "Only instance admins create projects.")
	}
	d := newProjectData{frame: frame{Title: "New project", User: &sess.User, CSRF: sess.CSRF, Nav: "projects"},
		Key: strings.TrimSpace(c.FormValue("key")), Name: strings.TrimSpace(c.FormValue("name")), Description: strings.TrimSpace(c.FormValue("description"))}
	p, err := s.cmds.CreateProject(c.Request().Context(), meta(c), d.Key, d.Name, d.Description)
	if fe := asFieldError(err); fe != nil {
		d.Err = fe
		return s.render(c, httpStatus(err), "newproject", d)
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, projectURL(p.Key)+"/environments?done="+url.QueryEscape("Project created with development and production environments."))
}
