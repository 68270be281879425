package console

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/changerequests"
	"github.com/vexil-flags/vexil/services/app"
)

// changeRequestRoutes are protected environments and their change requests (four eyes).
func changeRequestRoutes() []route {
	const base = "/projects/:project/change-requests/:id"
	return []route{
		{method: put, path: "/projects/:project/environments/:environment/protection", scope: admin, tag: "change-requests",
			summary: "Protect an environment: every person's change to what it serves becomes a change request (required_approvals default 1, approver_role editor or admin)",
			status:  200, request: protectionRequest{}, response: domain.Environment{}, handler: (*Server).protectEnvironment},
		{method: del, path: "/projects/:project/environments/:environment/protection", scope: admin, tag: "change-requests",
			summary: "Lift an environment's protection: changes apply directly again", status: 200,
			response: domain.Environment{}, handler: (*Server).unprotectEnvironment},
		{method: get, path: "/projects/:project/change-requests", scope: read, tag: "change-requests",
			summary: "List change requests, newest first (filters: status, flag, environment, pending=true for open and approved ones)",
			status:  200, query: []string{"status", "flag", "environment", "pending", "limit"},
			response: page[domain.ChangeRequest]{}, handler: (*Server).listChangeRequests},
		{method: get, path: base, scope: read, tag: "change-requests", summary: "Get a change request: the proposed command, its diff, approvals and comments; ETag is its version",
			status: 200, response: domain.ChangeRequest{}, handler: (*Server).getChangeRequest},
		{method: post, path: base + "/comments", scope: write, tag: "change-requests", summary: "Comment on a change request",
			status: 200, request: commentRequest{}, response: domain.ChangeRequest{}, handler: (*Server).commentChangeRequest},
		{method: post, path: base + "/approve", scope: write, tag: "change-requests",
			summary: "Approve a change request (never its author; the environment's approver role)", status: 200,
			request: reviewRequest{}, response: domain.ChangeRequest{}, handler: (*Server).approveChangeRequest},
		{method: post, path: base + "/reject", scope: write, tag: "change-requests",
			summary: "Reject a change request for good (never its author; the environment's approver role)", status: 200,
			request: reviewRequest{}, response: domain.ChangeRequest{}, handler: (*Server).rejectChangeRequest},
		{method: post, path: base + "/apply", scope: write, tag: "change-requests",
			summary: "Apply an approved change request through the command it proposes; 409 with details.before/after (the new diff) and details.rebase when the flag changed since",
			status:  200, response: domain.ChangeRequest{}, handler: (*Server).applyChangeRequest},
		{method: post, path: base + "/rebase", scope: write, tag: "change-requests",
			summary: "Rebase a change request onto the flag's current version: the diff is recomputed and approvals start again",
			status:  200, response: domain.ChangeRequest{}, handler: (*Server).rebaseChangeRequest},
		{method: post, path: base + "/cancel", scope: write, tag: "change-requests", summary: "Withdraw a change request (its author only)",
			status: 200, response: domain.ChangeRequest{}, handler: (*Server).cancelChangeRequest},
		{method: put, path: base + "/schedule", scope: write, tag: "change-requests",
			summary: "Apply an approved change request at a time (apply_at, RFC 3339; null or absent: only by hand); the scheduler applies it",
			status:  200, request: applyAtRequest{}, response: domain.ChangeRequest{}, handler: (*Server).scheduleChangeRequest},
	}
}

type protectionRequest struct {
	RequiredApprovals int    `json:"required_approvals,omitempty"`
	ApproverRole      string `json:"approver_role,omitempty"`
}

type commentRequest struct {
	Text string `json:"text"`
}

type reviewRequest struct {
	Comment string `json:"comment,omitempty"`
}

type applyAtRequest struct {
	ApplyAt *time.Time `json:"apply_at"`
}

// pendingView is the 202 answer of a command that a protected environment turned into a change
// request.
type pendingView struct {
	ChangeRequest *domain.ChangeRequest `json:"change_request"`
}

// answerPending answers 202 with the change request a gated command opened.
func answerPending(c echo.Context, p *app.ChangeRequestPending) error {
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/projects/"+p.Request.Project+"/change-requests/"+p.Request.ID)
	return withVersion(c, http.StatusAccepted, p.Version, pendingView{ChangeRequest: p.Request})
}

// roleOf is the project role a token's scope stands for (the console maps roles onto scopes the
// same way), which approval policies name.
func roleOf(c echo.Context) string {
	switch principal(c).Scope {
	case domain.ScopeAdmin:
		return domain.ApproverAdmin
	case domain.ScopeWrite:
		return domain.ApproverEditor
	}
	return "viewer"
}

func (s *Server) protectEnvironment(c echo.Context) error {
	var req protectionRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	return s.setProtection(c, &domain.Protection{RequiredApprovals: req.RequiredApprovals, ApproverRole: req.ApproverRole})
}

func (s *Server) unprotectEnvironment(c echo.Context) error { return s.setProtection(c, nil) }

func (s *Server) setProtection(c echo.Context, p *domain.Protection) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	e, err := s.app.Commands.SetEnvironmentProtection(c.Request().Context(), m, app.SetEnvironmentProtection{
		Project: c.Param("project"), Environment: c.Param("environment"), Protection: p})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, visibleEnvironment(c, e))
}

func (s *Server) listChangeRequests(c echo.Context) error {
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	pending, err := queryBool(c, "pending")
	if err != nil {
		return err
	}
	lq := changerequests.ListQuery{Project: c.Param("project"), Flag: c.QueryParam("flag"),
		Environment: c.QueryParam("environment"), Status: c.QueryParam("status"), Limit: limit, Pending: pending != nil && *pending}
	if _, _, err := s.app.Queries.Project(c.Request().Context(), lq.Project); err != nil {
		return err
	}
	items, err := s.app.Queries.ListChangeRequests(c.Request().Context(), lq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, ""))
}

func crRef(c echo.Context) app.ChangeRequestRef {
	return app.ChangeRequestRef{Project: c.Param("project"), ID: c.Param("id")}
}

func (s *Server) getChangeRequest(c echo.Context) error {
	ref := crRef(c)
	if !domain.ValidKey(ref.ID) {
		return domain.Errorf(domain.ENotFound, "change request not found")
	}
	r, v, err := s.app.Queries.ChangeRequest(c.Request().Context(), ref.Project, ref.ID)
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, r)
}

// onChangeRequest runs one change request command with the request's meta (If-Match is the
// request's version).
func (s *Server) onChangeRequest(c echo.Context, run func(app.Meta, app.ChangeRequestRef) (*domain.ChangeRequest, int64, error)) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	r, v, err := run(m, crRef(c))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, r)
}

func (s *Server) commentChangeRequest(c echo.Context) error {
	var req commentRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	return s.onChangeRequest(c, func(m app.Meta, ref app.ChangeRequestRef) (*domain.ChangeRequest, int64, error) {
		return s.app.Commands.CommentChangeRequest(c.Request().Context(), m, app.CommentChangeRequest{ChangeRequestRef: ref, Text: req.Text})
	})
}

func (s *Server) review(c echo.Context, approve bool) error {
	var req reviewRequest
	if c.Request().ContentLength != 0 {
		if err := s.decode(c, &req); err != nil {
			return err
		}
	}
	return s.onChangeRequest(c, func(m app.Meta, ref app.ChangeRequestRef) (*domain.ChangeRequest, int64, error) {
		cmd := app.ReviewChangeRequest{ChangeRequestRef: ref, Role: roleOf(c), Comment: req.Comment}
		if approve {
			return s.app.Commands.ApproveChangeRequest(c.Request().Context(), m, cmd)
		}
		return s.app.Commands.RejectChangeRequest(c.Request().Context(), m, cmd)
	})
}

func (s *Server) approveChangeRequest(c echo.Context) error { return s.review(c, true) }
func (s *Server) rejectChangeRequest(c echo.Context) error  { return s.review(c, false) }

func (s *Server) applyChangeRequest(c echo.Context) error {
	return s.onChangeRequest(c, func(m app.Meta, ref app.ChangeRequestRef) (*domain.ChangeRequest, int64, error) {
		m.Expected = nil // the request's own version does not matter; the flag's does
		return s.app.Commands.ApplyChangeRequest(c.Request().Context(), m, app.ApplyChangeRequest(ref))
	})
}

func (s *Server) rebaseChangeRequest(c echo.Context) error {
	return s.onChangeRequest(c, func(m app.Meta, ref app.ChangeRequestRef) (*domain.ChangeRequest, int64, error) {
		return s.app.Commands.RebaseChangeRequest(c.Request().Context(), m, app.RebaseChangeRequest(ref))
	})
}

func (s *Server) cancelChangeRequest(c echo.Context) error {
	return s.onChangeRequest(c, func(m app.Meta, ref app.ChangeRequestRef) (*domain.ChangeRequest, int64, error) {
		return s.app.Commands.CancelChangeRequest(c.Request().Context(), m, app.CancelChangeRequest(ref))
	})
}

func (s *Server) scheduleChangeRequest(c echo.Context) error {
	var req applyAtRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	var at time.Time
	if req.ApplyAt != nil {
		at = *req.ApplyAt
	}
	return s.onChangeRequest(c, func(m app.Meta, ref app.ChangeRequestRef) (*domain.ChangeRequest, int64, error) {
		return s.app.Commands.ScheduleChangeRequest(c.Request().Context(), m, app.ScheduleChangeRequest{ChangeRequestRef: ref, ApplyAt: at})
	})
}

// gatedRoutes answer 202 with a change request in a protected environment.
var gatedRoutes = map[string]bool{
	put + " /projects/:project/flags/:flag/variations":                        true,
	put + " /projects/:project/flags/:flag/environments/:environment":         true,
	post + " /projects/:project/flags/:flag/environments/:environment/toggle": true,
	put + " /projects/:project/segments/:segment":                             true,
	post + " /projects/:project/schedules":                                    true,
	put + " /projects/:project/schedules/:id":                                 true,
	post + " /projects/:project/schedules/:id/cancel":                         true,
	post + " /projects/:project/rollouts":                                     true,
	post + " /projects/:project/rollouts/:id/pause":                           true,
	post + " /projects/:project/rollouts/:id/resume":                          true,
	post + " /projects/:project/rollouts/:id/abort":                           true,
}
