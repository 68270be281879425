package web

// Change requests in the console (four eyes): a person's change to a protected environment
// comes back from the application layer as a change request (app.ChangeRequestPending), and the
// console takes the person to the request's page: its diff, comments, and approve, reject, apply,
// rebase or cancel, each one command of the application layer, as the REST API runs them.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/changerequests"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/app/identity"
)

// ChangeRequests is what the change request pages ask of the application; AppCommands implements
// it. It is apart from Commands so consoles built over another Commands keep working (the pages
// answer 404 without it).
type ChangeRequests interface {
	ListChangeRequests(ctx context.Context, q changerequests.ListQuery) ([]*domain.ChangeRequest, error)
	ChangeRequest(ctx context.Context, project, id string) (*domain.ChangeRequest, error)
	// ChangeRequestAction runs one action (comment, approve, reject, apply, rebase, cancel) as the
	// person of meta, who holds role in the project.
	ChangeRequestAction(ctx context.Context, meta domain.Metadata, role, project, id, action, text string) (*domain.ChangeRequest, error)
	// SetProtection protects an environment (p set) or lifts its protection (nil).
	SetProtection(ctx context.Context, meta domain.Metadata, project, env string, p *domain.Protection) error
}

// SetProtection runs SetEnvironmentProtection.
func (a *AppCommands) SetProtection(ctx context.Context, meta domain.Metadata, project, env string, p *domain.Protection) error {
	_, err := a.app.Commands.SetEnvironmentProtection(ctx, appMeta(meta, AnyVersion), app.SetEnvironmentProtection{
		Project: project, Environment: env, Protection: p})
	return err
}

var _ ChangeRequests = (*AppCommands)(nil)

// ListChangeRequests lists from the read model.
func (a *AppCommands) ListChangeRequests(ctx context.Context, q changerequests.ListQuery) ([]*domain.ChangeRequest, error) {
	return a.app.Queries.ListChangeRequests(ctx, q)
}

// ChangeRequest folds one request from its events.
func (a *AppCommands) ChangeRequest(ctx context.Context, project, id string) (*domain.ChangeRequest, error) {
	if !domain.ValidKey(id) {
		return nil, domain.Errorf(domain.ENotFound, "change request not found")
	}
	r, _, err := a.app.Queries.ChangeRequest(ctx, project, id)
	return r, err
}

// ChangeRequestAction runs one command on a request.
func (a *AppCommands) ChangeRequestAction(ctx context.Context, meta domain.Metadata, role, project, id, action, text string) (*domain.ChangeRequest, error) {
	m := appMeta(meta, AnyVersion)
	ref := app.ChangeRequestRef{Project: project, ID: id}
	cmds := a.app.Commands
	var r *domain.ChangeRequest
	var err error
	switch action {
	case "comment":
		r, _, err = cmds.CommentChangeRequest(ctx, m, app.CommentChangeRequest{ChangeRequestRef: ref, Text: text})
	case "approve":
		r, _, err = cmds.ApproveChangeRequest(ctx, m, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: role, Comment: text})
	case "reject":
		r, _, err = cmds.RejectChangeRequest(ctx, m, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: role, Comment: text})
	case "apply":
		r, _, err = cmds.ApplyChangeRequest(ctx, m, app.ApplyChangeRequest(ref))
	case "rebase":
		r, _, err = cmds.RebaseChangeRequest(ctx, m, app.RebaseChangeRequest(ref))
	case "cancel":
		r, _, err = cmds.CancelChangeRequest(ctx, m, app.CancelChangeRequest(ref))
	default:
		return nil, domain.Errorf(domain.ENotFound, "no action %q on a change request", action)
	}
	return r, err
}

func (s *Server) changeRequests() (ChangeRequests, error) {
	cr, ok := s.cmds.(ChangeRequests)
	if !ok {
		return nil, domain.Errorf(domain.ENotFound, "change requests are not available in this console")
	}
	return cr, nil
}

// pending takes the person to the change request their command opened instead of applying (a
// protected environment); htmx requests (the list's switches) are told to go there.
func (s *Server) pending(c echo.Context, err error) (bool, error) {
	var p *app.ChangeRequestPending
	if !errors.As(err, &p) {
		return false, nil
	}
	to := "/projects/" + url.PathEscape(p.Request.Project) + "/change-requests/" + url.PathEscape(p.Request.ID) + "?done=" +
		url.QueryEscape("Environment "+p.Request.Environment+" is protected: your change is waiting for approval in this change request.")
	if c.Request().Header.Get("HX-Request") != "" {
		c.Response().Header().Set("HX-Redirect", to)
		return true, c.NoContent(http.StatusOK)
	}
	return true, c.Redirect(http.StatusSeeOther, to)
}

type changeRequestsData struct {
	frame
	Requests     []changeRequestRow
	Status       string
	IsAdmin      bool
	Environments []*domain.Environment
	Err          string
}

type changeRequestRow struct {
	Request *domain.ChangeRequest
	Author  string
}

type changeRequestData struct {
	frame
	Request    *domain.ChangeRequest
	Author     string
	Approvals  []namedNote
	Comments   []namedNote
	Diff       []diffLine
	IsAuthor   bool
	MayApprove bool
	Conflict   *rebaseData
	Err        string
}

type namedNote struct {
	By, Text string
	At       string
}

// rebaseData is the new diff of a request whose flag moved since it was made.
type rebaseData struct {
	Message string
	Diff    []diffLine
}

func (s *Server) changeRequestsPage(c echo.Context) error {
	return s.showChangeRequests(c, http.StatusOK, "")
}

func (s *Server) showChangeRequests(c echo.Context, code int, errMsg string) error {
	ctx := c.Request().Context()
	cr, err := s.changeRequests()
	if err != nil {
		return s.fail(c, err)
	}
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	status := c.QueryParam("status")
	q := changerequests.ListQuery{Project: p.Key, Pending: status == "", Status: status}
	if status == "all" {
		q.Status, q.Pending = "", false
	}
	list, err := cr.ListChangeRequests(ctx, q)
	if err != nil {
		return s.fail(c, err)
	}
	names, err := s.people.DisplayNames(ctx)
	if err != nil {
		return s.fail(c, err)
	}
	d := changeRequestsData{frame: s.baseFrame(c, "Change requests", "changes", p), Status: status,
		IsAdmin: roleOf(c) == identity.RoleAdmin, Environments: sortedEnvironments(p), Err: errMsg}
	for _, r := range list {
		d.Requests = append(d.Requests, changeRequestRow{Request: r, Author: actorName(r.Author, names)})
	}
	return s.render(c, code, "changerequests", d)
}

// protect sets or lifts an environment's protection from the change requests page (admins).
func (s *Server) protect(c echo.Context) error {
	cr, err := s.changeRequests()
	if err != nil {
		return s.fail(c, err)
	}
	var p *domain.Protection
	if c.FormValue("protected") == "true" {
		n, _ := strconv.Atoi(c.FormValue("required_approvals"))
		p = &domain.Protection{RequiredApprovals: n, ApproverRole: c.FormValue("approver_role")}
	}
	env := c.Param("environment")
	if err := cr.SetProtection(c.Request().Context(), meta(c), c.Param("project"), env, p); err != nil {
		var de *domain.Error
		if errors.As(err, &de) && de.Code != domain.EInternal && de.Code != domain.EUnavailable {
			return s.showChangeRequests(c, httpapi.StatusOf(de.Code), de.Message)
		}
		return s.fail(c, err)
	}
	done := "Environment " + env + " is no longer protected."
	if p != nil {
		done = "Environment " + env + " is protected: changes there need approval."
	}
	return c.Redirect(http.StatusSeeOther, "/projects/"+url.PathEscape(c.Param("project"))+"/change-requests?done="+url.QueryEscape(done))
}

func (s *Server) changeRequestPage(c echo.Context) error {
	return s.showChangeRequest(c, http.StatusOK, nil, "")
}

func (s *Server) showChangeRequest(c echo.Context, status int, conflict *rebaseData, errMsg string) error {
	ctx := c.Request().Context()
	cr, err := s.changeRequests()
	if err != nil {
		return s.fail(c, err)
	}
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	r, err := cr.ChangeRequest(ctx, p.Key, c.Param("id"))
	if err != nil {
		return s.fail(c, err)
	}
	names, err := s.people.DisplayNames(ctx)
	if err != nil {
		return s.fail(c, err)
	}
	me := sessionOf(c).User.Actor()
	d := changeRequestData{frame: s.baseFrame(c, "Change request", "changes", p), Request: r, Author: actorName(r.Author, names),
		Diff: jsonDiff(r.Before, r.After), IsAuthor: me == r.Author, Conflict: conflict, Err: errMsg}
	d.MayApprove = !d.IsAuthor && r.Protection.RoleMayApprove(roleOf(c)) && !r.Final()
	for _, a := range r.Approvals {
		d.Approvals = append(d.Approvals, namedNote{By: actorName(a.By, names), Text: a.Comment, At: a.At.UTC().Format("2006-01-02 15:04:05 UTC")})
	}
	for _, cm := range r.Comments {
		d.Comments = append(d.Comments, namedNote{By: actorName(cm.By, names), Text: cm.Text, At: cm.At.UTC().Format("2006-01-02 15:04:05 UTC")})
	}
	return s.render(c, status, "changerequest", d)
}

func (s *Server) changeRequestAction(c echo.Context) error {
	ctx := c.Request().Context()
	cr, err := s.changeRequests()
	if err != nil {
		return s.fail(c, err)
	}
	project, id, action := c.Param("project"), c.Param("id"), c.Param("action")
	_, err = cr.ChangeRequestAction(ctx, meta(c), roleOf(c), project, id, action, c.FormValue("text"))
	var de *domain.Error
	switch {
	case err == nil:
	case errors.As(err, &de) && de.Details["rebase"] == true:
		// The flag moved since the request was made: show the change as it would be now.
		rd := &rebaseData{Message: de.Message}
		if b, ok := de.Details["before"]; ok {
			rd.Diff = valueDiff(b, de.Details["after"])
		}
		return s.showChangeRequest(c, http.StatusConflict, rd, "")
	case errors.As(err, &de) && de.Code != domain.EInternal && de.Code != domain.EUnavailable:
		return s.showChangeRequest(c, httpapi.StatusOf(de.Code), nil, de.Message)
	default:
		return s.fail(c, err)
	}
	done := map[string]string{"comment": "Comment added.", "approve": "Approved.", "reject": "Rejected.",
		"apply": "Applied.", "rebase": "Rebased: approvals start again.", "cancel": "Cancelled."}[action]
	return c.Redirect(http.StatusSeeOther, "/projects/"+url.PathEscape(project)+"/change-requests/"+url.PathEscape(id)+"?done="+url.QueryEscape(done))
}

// pendingRequests are the open and approved requests of a flag, for its page.
func (s *Server) pendingRequests(ctx context.Context, project, flag string) []*domain.ChangeRequest {
	cr, err := s.changeRequests()
	if err != nil {
		return nil
	}
	list, err := cr.ListChangeRequests(ctx, changerequests.ListQuery{Project: project, Flag: flag, Pending: true})
	if err != nil {
		s.log.Warn("pending change requests of a flag not listed", "project", project, "flag", flag, "err", err)
		return nil
	}
	return list
}
