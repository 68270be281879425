package console

// Release pipelines in the management API: pipelines (named templates of stages) and releases
// (a flag put through a pipeline). The scheduler advances releases; people approve, pause,
// resume, skip and abort through these endpoints, all commands of services/app.

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
)

type pipelineRequest struct {
	Key  string `json:"key"`
	Name string `json:"name"`
	// Stages in order: environment, action (toggle_on or rollout with {every, percents, guards,
	// on_guard_failure}), and the gate before the stage: wait ("1h", "1d") and/or approval.
	Stages []domain.PipelineStage `json:"stages"`
}

type releaseRequest struct {
	ID       string `json:"id,omitempty"` // generated (UUIDv7) when empty; at most 80 characters
	Pipeline string `json:"pipeline"`
	Flag     string `json:"flag"`
}

// stageRequest names the stage an approval or a skip is meant for (the current one).
type stageRequest struct {
	Stage  int    `json:"stage"`
	Reason string `json:"reason,omitempty"`
}

// releaseRoutes are release pipelines and releases.
func releaseRoutes() []route {
	return []route{
		{method: get, path: "/projects/:project/pipelines", scope: read, tag: "releases", summary: "List release pipelines",
			status: 200, query: []string{"cursor", "limit"}, response: page[domain.Pipeline]{}, handler: (*Server).listPipelines},
		{method: post, path: "/projects/:project/pipelines", scope: write, tag: "releases",
			summary: "Create a release pipeline: stages of an environment, a toggle or a guarded rollout, and a wait or an approval before each",
			status:  201, request: pipelineRequest{}, response: domain.Pipeline{}, handler: (*Server).createPipeline},
		{method: get, path: "/projects/:project/pipelines/:id", scope: read, tag: "releases", summary: "Get a release pipeline",
			status: 200, response: domain.Pipeline{}, handler: (*Server).getPipeline},
		{method: get, path: "/projects/:project/releases", scope: read, tag: "releases",
			summary: "List releases (filters: flag, environment of the current stage, status)",
			status:  200, query: deliveryStatusListParams, response: page[domain.Release]{}, handler: (*Server).listReleases},
		{method: post, path: "/projects/:project/releases", scope: write, tag: "releases", summary: "Put a flag through a pipeline",
			status: 201, request: releaseRequest{}, response: domain.Release{}, handler: (*Server).startRelease},
		{method: get, path: "/projects/:project/releases/:id", scope: read, tag: "releases",
			summary: "Get a release with the status and evidence of each stage; at (RFC 3339) shows it as it was then",
			status:  200, query: []string{"at"}, response: domain.Release{}, handler: (*Server).getRelease},
		{method: post, path: "/projects/:project/releases/:id/approve", scope: write, tag: "releases", summary: "Approve the gate of the current stage",
			status: 200, request: stageRequest{}, response: domain.Release{}, handler: (*Server).approveRelease},
		{method: post, path: "/projects/:project/releases/:id/pause", scope: write, tag: "releases", summary: "Pause a release and its stage's rollout",
			status: 200, request: reasonRequest{}, response: domain.Release{}, handler: (*Server).pauseRelease},
		{method: post, path: "/projects/:project/releases/:id/resume", scope: write, tag: "releases", summary: "Resume a paused release and its stage's paused rollout",
			status: 200, response: domain.Release{}, handler: (*Server).resumeRelease},
		{method: post, path: "/projects/:project/releases/:id/skip", scope: write, tag: "releases", summary: "Skip the current stage (its rollout must have ended)",
			status: 200, request: stageRequest{}, response: domain.Release{}, handler: (*Server).skipReleaseStage},
		{method: post, path: "/projects/:project/releases/:id/abort", scope: write, tag: "releases", summary: "Abort a release, aborting its stage's active rollout",
			status: 200, request: reasonRequest{}, response: domain.Release{}, handler: (*Server).abortRelease},
	}
}

func (s *Server) listPipelines(c echo.Context) error {
	return listDelivery(s, c, false, s.app.Queries.ListPipelines)
}

func (s *Server) createPipeline(c echo.Context) error {
	var req pipelineRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	p, v, err := s.app.Commands.CreatePipeline(c.Request().Context(), meta(c), app.CreatePipeline{Project: c.Param("project"),
		Key: req.Key, Name: req.Name, Stages: req.Stages})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, p)
}

func (s *Server) getPipeline(c echo.Context) error {
	p, v, err := s.app.Queries.Pipeline(c.Request().Context(), c.Param("project"), c.Param("id"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, p)
}

func (s *Server) listReleases(c echo.Context) error {
	return listDelivery(s, c, true, s.app.Queries.ListReleases)
}

func (s *Server) startRelease(c echo.Context) error {
	var req releaseRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	r, v, err := s.app.Commands.StartRelease(c.Request().Context(), meta(c), app.StartRelease{Project: c.Param("project"),
		ID: req.ID, Pipeline: req.Pipeline, Flag: req.Flag})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, r)
}

func (s *Server) getRelease(c echo.Context) error {
	at, err := parseAt(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var r *domain.Release
	var v int64
	if at.IsZero() {
		r, v, err = s.app.Queries.Release(ctx, c.Param("project"), c.Param("id"))
	} else {
		r, v, err = s.app.Queries.ReleaseAt(ctx, c.Param("project"), c.Param("id"), at)
	}
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, r)
}

func (s *Server) approveRelease(c echo.Context) error {
	var req stageRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Release, int64, error) {
		return s.app.Commands.ApproveReleaseStage(ctx, m, app.ApproveReleaseStage{Project: ref.Project, ID: ref.ID, Stage: req.Stage, Reason: req.Reason})
	}, same[*domain.Release])
}

func (s *Server) pauseRelease(c echo.Context) error {
	var req reasonRequest
	if err := s.decodeOptional(c, &req); err != nil {
		return err
	}
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Release, int64, error) {
		return s.app.Commands.PauseRelease(ctx, m, app.PauseRelease{Project: ref.Project, ID: ref.ID, Reason: req.Reason})
	}, same[*domain.Release])
}

func (s *Server) resumeRelease(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Release, int64, error) {
		return s.app.Commands.ResumeRelease(ctx, m, app.ResumeRelease(ref))
	}, same[*domain.Release])
}

func (s *Server) skipReleaseStage(c echo.Context) error {
	var req stageRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Release, int64, error) {
		return s.app.Commands.SkipReleaseStage(ctx, m, app.SkipReleaseStage{Project: ref.Project, ID: ref.ID, Stage: req.Stage, Reason: req.Reason})
	}, same[*domain.Release])
}

func (s *Server) abortRelease(c echo.Context) error {
	var req reasonRequest
	if err := s.decodeOptional(c, &req); err != nil {
		return err
	}
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Release, int64, error) {
		return s.app.Commands.AbortRelease(ctx, m, app.AbortRelease{Project: ref.Project, ID: ref.ID, Reason: req.Reason})
	}, same[*domain.Release])
}
