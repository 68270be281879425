package console

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
)

// Authorization follows the principal, not the route. A token has a scope (read < write < admin)
// and may be restricted to one project; it may act on a thing only if the thing lies within both:
// its project (a restricted token never reaches another project, nor anything instance-wide) and
// its scope. domain.APIToken.Permits is that rule; permit below is the one place that applies it,
// and the route table says, per route, what the route acts on (its reach).

// reach is what a route acts on, which decides how the policy is asked.
type reach string

const (
	// reachPublic needs no token: the OpenAPI document.
	reachPublic reach = "public"
	// reachProject acts in the project named by the :project path parameter.
	reachProject reach = "project"
	// reachInstance acts on the whole instance (creating projects): unrestricted tokens only.
	reachInstance reach = "instance"
	// reachListing lists what the token may see: every token with the scope may call it, and the
	// handler keeps only the items within the token's reach.
	reachListing reach = "listing"
	// reachToken creates or revokes an API token: the handler asks permit about that token (its
	// project and scope), so no token can make or revoke one beyond itself.
	reachToken reach = "token"
)

// reachOf is a route's reach: as declared, or project for a route with a :project parameter, or
// else instance, so a new route nobody thought about is closed to restricted tokens.
func reachOf(r route) reach {
	switch {
	case r.scope == "":
		return reachPublic
	case r.reach != "":
		return r.reach
	case hasProjectParam(r.path):
		return reachProject
	}
	return reachInstance
}

func hasProjectParam(path string) bool { return strings.Contains(path+"/", "/:project/") }

// checkRoute panics on a route whose declared reach contradicts its path: the table is code, and
// a contradiction would open a project route to every project or close one by mistake.
func checkRoute(r route) {
	switch re := reachOf(r); {
	case re == reachPublic:
	case re == reachProject && !hasProjectParam(r.path), re != reachProject && hasProjectParam(r.path):
		panic("console: route " + r.method + " " + r.path + " has reach " + string(re) + " but its path says otherwise")
	case re != reachProject && re != reachInstance && re != reachListing && re != reachToken:
		panic("console: route " + r.method + " " + r.path + " has unknown reach " + string(re))
	case !domain.ValidScope(r.scope):
		panic("console: route " + r.method + " " + r.path + " has unknown scope " + r.scope)
	}
}

// permit is the decision: may token t act with scope need on project ("" is the instance as a
// whole, or an unrestricted token as the thing acted on)? what names the action in the 403.
func permit(t access.Token, project, need, what string) error {
	if sees(t, project, need) {
		return nil
	}
	switch {
	case !domain.ScopeAllows(t.Scope, need):
		return domain.Errorf(domain.EForbidden, "this API token has scope %q; %s needs scope %q", t.Scope, what, need)
	case project == "":
		return domain.Errorf(domain.EForbidden, "this API token is restricted to project %q; %s needs an unrestricted token", t.Project, what)
	default:
		return domain.Errorf(domain.EForbidden, "this API token is restricted to project %q; %s is outside it (project %q)", t.Project, what, project)
	}
}

// sees reports whether t reaches project with scope: permit's decision without the error, which
// is also what a listing shows t (the items it could act on).
func sees(t access.Token, project, scope string) bool {
	pt := &domain.APIToken{ID: t.ID, Scope: t.Scope, Project: t.Project, Revoked: t.Revoked}
	return pt.Permits(project, scope)
}

// authorize checks a route's reach and scope for the authenticated principal before the handler
// runs. Listing and token routes are narrowed again by their handlers, through permit.
func authorize(r route) echo.MiddlewareFunc {
	re := reachOf(r)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			t := principal(c)
			var err error
			switch re {
			case reachProject:
				err = permit(t, c.Param("project"), r.scope, "this operation")
			case reachInstance:
				err = permit(t, "", r.scope, "this operation acts on the whole instance and")
			case reachListing, reachToken:
				// Within the token's own project (or everywhere, unrestricted): the scope decides here.
				err = permit(t, t.Project, r.scope, "this operation")
			default:
				err = domain.Errorf(domain.EForbidden, "this operation is closed") // unreachable: checkRoute
			}
			if err != nil {
				return err
			}
			return next(c)
		}
	}
}
