package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/app/identity"
)

// The admin pages of a project: its members and their roles, its API tokens, and the audit of
// account and membership changes. Members are operational records (services/app/identity),
// audited in console_account_audit with the change; tokens are event-sourced through
// services/app and audited in the project's audit log.

type membersData struct {
	frame
	Members              []identity.Member
	Email, Name, AddRole string
	Err                  *fieldErrors
}

func (s *Server) membersPage(c echo.Context) error {
	return s.showMembers(c, http.StatusOK, membersData{AddRole: identity.RoleViewer})
}

func (s *Server) showMembers(c echo.Context, status int, d membersData) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	if d.Members, err = s.people.Members(ctx, p.Key); err != nil {
		return s.fail(c, err)
	}
	d.frame = s.baseFrame(c, "Members", "members", p)
	return s.render(c, status, "members", d)
}

// addMember gives a person a role in the project: an existing account by email, or, when the
// admin types a name and a first password too, a new account (the person changes nothing else).
func (s *Server) addMember(c echo.Context) error {
	ctx := c.Request().Context()
	project := c.Param("project")
	d := membersData{Email: strings.TrimSpace(c.FormValue("email")), Name: strings.TrimSpace(c.FormValue("name")), AddRole: c.FormValue("role")}
	actor := sessionOf(c).User.Actor()
	if identity.ScopeOf(d.AddRole) == "" {
		d.Err = &fieldErrors{Field: "role", Message: "Choose viewer, editor or admin."}
		return s.showMembers(c, http.StatusBadRequest, d)
	}
	u, err := s.people.UserByEmail(ctx, d.Email)
	if domain.ErrorCode(err) == domain.ENotFound {
		if d.Name == "" && c.FormValue("password") == "" {
			d.Err = &fieldErrors{Field: "email", Message: "Nobody has this email yet. Type a name and a first password to create the account."}
			return s.showMembers(c, http.StatusBadRequest, d)
		}
		u, err = s.people.CreateUser(ctx, identity.NewUser{Email: d.Email, DisplayName: d.Name, Password: c.FormValue("password"), CreatedBy: actor})
	}
	if fe := asFieldError(err); fe != nil {
		d.Err = fe
		return s.showMembers(c, httpStatus(err), d)
	}
	if err != nil {
		return s.fail(c, err)
	}
	if err := s.people.SetRole(ctx, u.ID, project, d.AddRole, actor); err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, projectURL(project)+"/members?done="+url.QueryEscape(u.DisplayName+" is "+article(d.AddRole)+" now."))
}

// setMember changes a member's role, or removes them (role "").
func (s *Server) setMember(c echo.Context) error {
	ctx := c.Request().Context()
	project, userID, role := c.Param("project"), c.Param("user"), c.FormValue("role")
	if c.FormValue("action") == "remove" {
		role = ""
	}
	if role != "" && identity.ScopeOf(role) == "" {
		return s.showMembers(c, http.StatusBadRequest, membersData{AddRole: identity.RoleViewer,
			Err: &fieldErrors{Field: "role", Message: "Choose viewer, editor or admin."}})
	}
	members, err := s.people.Members(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	var name string
	for _, m := range members {
		if m.User.ID == userID {
			name = m.User.DisplayName
		}
	}
	if name == "" {
		return s.errorPage(c, http.StatusNotFound, "This person is not a member of the project.")
	}
	if err := s.people.SetRole(ctx, userID, project, role, sessionOf(c).User.Actor()); err != nil {
		return s.fail(c, err)
	}
	done := name + " was removed from the project."
	if role != "" {
		done = name + " is " + article(role) + " now."
	}
	return c.Redirect(http.StatusSeeOther, projectURL(project)+"/members?done="+url.QueryEscape(done))
}

func projectURL(project string) string { return "/projects/" + url.PathEscape(project) }

// ---- API tokens ----

type tokensData struct {
	frame
	Tokens      []app.TokenSummary
	Name, Scope string
	Err         *fieldErrors
	// Issued is the token just created, with its secret: shown this once.
	Issued *app.IssuedToken
}

func (s *Server) tokensPage(c echo.Context) error {
	return s.showTokens(c, http.StatusOK, tokensData{Scope: domain.ScopeRead})
}

func (s *Server) showTokens(c echo.Context, status int, d tokensData) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	if d.Tokens, err = s.cmds.Tokens(ctx, p.Key); err != nil {
		return s.fail(c, err)
	}
	d.frame = s.baseFrame(c, "API tokens", "tokens", p)
	return s.render(c, status, "tokens", d)
}

// createToken issues a token restricted to the project; the answer is the page with the secret,
// never a redirect, so the secret is in no URL, history entry or log.
func (s *Server) createToken(c echo.Context) error {
	d := tokensData{Name: strings.TrimSpace(c.FormValue("name")), Scope: c.FormValue("scope")}
	if d.Scope != domain.ScopeRead && d.Scope != domain.ScopeWrite && d.Scope != domain.ScopeAdmin {
		d.Err = &fieldErrors{Field: "scope", Message: "Choose read, write or admin."}
		return s.showTokens(c, http.StatusBadRequest, d)
	}
	issued, err := s.cmds.IssueToken(c.Request().Context(), meta(c), c.Param("project"), d.Name, d.Scope)
	if fe := asFieldError(err); fe != nil {
		d.Err = fe
		return s.showTokens(c, httpStatus(err), d)
	}
	if err != nil {
		return s.fail(c, err)
	}
	return s.showTokens(c, http.StatusCreated, tokensData{Scope: domain.ScopeRead, Issued: &issued})
}

func (s *Server) revokeToken(c echo.Context) error {
	project := c.Param("project")
	t, err := s.cmds.RevokeToken(c.Request().Context(), meta(c), project, c.Param("id"))
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, projectURL(project)+"/tokens?done="+url.QueryEscape("Token "+t.Name+" ("+t.ID+") revoked: requests with it are refused from now on."))
}

// ---- account audit ----

type accountAuditData struct {
	frame
	Entries []accountRow
	Next    string
}

type accountRow struct {
	identity.AccountEntry
	Who, Whom string
}

func (s *Server) accountAuditPage(c echo.Context) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	entries, next, err := s.people.AccountAudit(ctx, identity.AccountQuery{Project: p.Key, Before: before, Limit: 50})
	if err != nil {
		return s.fail(c, err)
	}
	names, err := s.people.DisplayNames(ctx)
	if err != nil {
		return s.fail(c, err)
	}
	d := accountAuditData{frame: s.baseFrame(c, "Members audit", "audit", p), Next: next}
	for _, e := range entries {
		d.Entries = append(d.Entries, accountRow{AccountEntry: e, Who: actorName(e.Actor, names), Whom: actorName(e.Subject, names)})
	}
	return s.render(c, http.StatusOK, "accounts", d)
}
