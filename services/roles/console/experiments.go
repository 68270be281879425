package console

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/roles/analysis"
)

// WithAnalyzer lets the API run analyses on demand and serve reports.
func (s *Server) WithAnalyzer(a *analysis.Analyzer) *Server {
	s.analyzer = a
	return s
}

type createExperimentRequest struct {
	Key string `json:"key"`
	domain.ExperimentDefinition
}

type concludeRequest struct {
	Variation   string `json:"variation"`
	Reason      string `json:"reason,omitempty"`
	ApplyToFlag bool   `json:"apply_to_flag,omitempty"` // make the variation the flag's default serve
}

// concludeResponse is the concluded experiment and, when asked, the flag's new targeting.
type concludeResponse struct {
	Experiment *domain.Experiment `json:"experiment"`
	Flag       *targetingView     `json:"flag,omitempty"`
}

func (s *Server) listGoals(c echo.Context) error {
	archived, err := queryBool(c, "archived")
	if err != nil {
		return err
	}
	items, err := s.app.Queries.ListGoals(c.Request().Context(), c.Param("project"), archived != nil && *archived)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, ""))
}

func (s *Server) createGoal(c echo.Context) error {
	var in domain.NewGoal
	if err := s.decode(c, &in); err != nil {
		return err
	}
	project := c.Param("project")
	if in.Project != "" && in.Project != project {
		return domain.Invalid("project", "the project is the one in the path")
	}
	in.Project = project
	g, v, err := s.app.Commands.CreateGoal(c.Request().Context(), meta(c), app.CreateGoal{Goal: in})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, g)
}

func (s *Server) getGoal(c echo.Context) error {
	g, v, err := s.app.Queries.Goal(c.Request().Context(), c.Param("project"), c.Param("goal"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, g)
}

// goalCommand runs a command on the goal named in the path and answers the goal after it.
func (s *Server) goalCommand(c echo.Context, run func(context.Context, app.Meta, app.GoalRef) (*domain.Goal, int64, error)) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	g, v, err := run(c.Request().Context(), m, app.GoalRef{Project: c.Param("project"), Goal: c.Param("goal")})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, g)
}

// updateGoal is a JSON Merge Patch (RFC 7396): null clears the description and the value cap (no
// cap); name and direction cannot be removed.
func (s *Server) updateGoal(c echo.Context) error {
	patch, err := s.readPatch(c, "name", "direction")
	if err != nil {
		return err
	}
	return s.goalCommand(c, func(ctx context.Context, m app.Meta, ref app.GoalRef) (*domain.Goal, int64, error) {
		return s.app.Commands.UpdateGoal(ctx, m, app.UpdateGoal{Project: ref.Project, Goal: ref.Goal,
			Edit: func(cur domain.GoalSettings) (domain.GoalSettings, error) {
				var in domain.GoalSettings
				err := httpapi.ApplyMergePatch(cur, patch, &in)
				return in, err
			}})
	})
}

func (s *Server) archiveGoal(c echo.Context) error {
	return s.goalCommand(c, func(ctx context.Context, m app.Meta, ref app.GoalRef) (*domain.Goal, int64, error) {
		return s.app.Commands.ArchiveGoal(ctx, m, app.ArchiveGoal(ref))
	})
}

func (s *Server) restoreGoal(c echo.Context) error {
	return s.goalCommand(c, func(ctx context.Context, m app.Meta, ref app.GoalRef) (*domain.Goal, int64, error) {
		return s.app.Commands.RestoreGoal(ctx, m, app.RestoreGoal(ref))
	})
}

func (s *Server) listExperiments(c echo.Context) error {
	archived, err := queryBool(c, "archived")
	if err != nil {
		return err
	}
	items, err := s.app.Queries.ListExperiments(c.Request().Context(), c.Param("project"), archived != nil && *archived)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, ""))
}

func (s *Server) createExperiment(c echo.Context) error {
	var in createExperimentRequest
	if err := s.decode(c, &in); err != nil {
		return err
	}
	e, v, err := s.app.Commands.CreateExperiment(c.Request().Context(), meta(c), app.CreateExperiment{Project: c.Param("project"),
		Key: in.Key, Definition: in.ExperimentDefinition})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, e)
}

func (s *Server) getExperiment(c echo.Context) error {
	e, v, err := s.app.Queries.Experiment(c.Request().Context(), c.Param("project"), c.Param("experiment"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, e)
}

// experimentCommand runs a command on the experiment named in the path and answers the
// experiment after it.
func (s *Server) experimentCommand(c echo.Context, run func(context.Context, app.Meta, app.ExperimentRef) (*domain.Experiment, int64, error)) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	e, v, err := run(c.Request().Context(), m, app.ExperimentRef{Project: c.Param("project"), Experiment: c.Param("experiment")})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, e)
}

func (s *Server) updateExperiment(c echo.Context) error {
	var in domain.ExperimentDefinition
	if err := s.decode(c, &in); err != nil {
		return err
	}
	return s.experimentCommand(c, func(ctx context.Context, m app.Meta, ref app.ExperimentRef) (*domain.Experiment, int64, error) {
		return s.app.Commands.UpdateExperiment(ctx, m, app.UpdateExperiment{Project: ref.Project, Experiment: ref.Experiment, Definition: in})
	})
}

// changeExperimentAnalysis replaces a started experiment's analysis settings (an audited event).
func (s *Server) changeExperimentAnalysis(c echo.Context) error {
	var in domain.ExperimentAnalysis
	if err := s.decode(c, &in); err != nil {
		return err
	}
	return s.experimentCommand(c, func(ctx context.Context, m app.Meta, ref app.ExperimentRef) (*domain.Experiment, int64, error) {
		return s.app.Commands.ChangeExperimentAnalysis(ctx, m, app.ChangeExperimentAnalysis{Project: ref.Project, Experiment: ref.Experiment, Analysis: in})
	})
}

func (s *Server) startExperiment(c echo.Context) error {
	return s.experimentCommand(c, func(ctx context.Context, m app.Meta, ref app.ExperimentRef) (*domain.Experiment, int64, error) {
		return s.app.Commands.StartExperiment(ctx, m, app.StartExperiment(ref))
	})
}

func (s *Server) stopExperiment(c echo.Context) error {
	return s.experimentCommand(c, func(ctx context.Context, m app.Meta, ref app.ExperimentRef) (*domain.Experiment, int64, error) {
		return s.app.Commands.StopExperiment(ctx, m, app.StopExperiment(ref))
	})
}

func (s *Server) archiveExperiment(c echo.Context) error {
	return s.experimentCommand(c, func(ctx context.Context, m app.Meta, ref app.ExperimentRef) (*domain.Experiment, int64, error) {
		return s.app.Commands.ArchiveExperiment(ctx, m, app.ArchiveExperiment(ref))
	})
}

// concludeExperiment records the decision and, with apply_to_flag, makes the chosen variation the
// flag's default serve in the experiment's environment: two commands on two streams, each audited.
func (s *Server) concludeExperiment(c echo.Context) error {
	var in concludeRequest
	if err := s.decode(c, &in); err != nil {
		return err
	}
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	res, err := s.app.Commands.ConcludeExperiment(c.Request().Context(), m, app.ConcludeExperiment{Project: c.Param("project"),
		Experiment: c.Param("experiment"), Variation: in.Variation, Reason: in.Reason, ApplyToFlag: in.ApplyToFlag})
	if err != nil {
		return err
	}
	out := concludeResponse{Experiment: res.Experiment}
	if res.Flag != nil {
		e := res.Experiment
		out.Flag = &targetingView{Flag: res.Flag.Key, Environment: e.Environment, Version: res.FlagVersion,
			Targeting: res.Flag.ConfigFor(e.Environment).Targeting}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) requireAnalyzer() error {
	if s.analyzer == nil {
		return domain.Errorf(domain.EUnavailable, "experiment analysis is not configured on this server")
	}
	return nil
}

func (s *Server) analyzeExperiment(c echo.Context) error {
	if err := s.requireAnalyzer(); err != nil {
		return err
	}
	a, err := s.analyzer.Analyze(c.Request().Context(), c.Param("project"), c.Param("experiment"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

func (s *Server) experimentResults(c echo.Context) error {
	if err := s.requireAnalyzer(); err != nil {
		return err
	}
	r, err := s.analyzer.Latest(c.Request().Context(), c.Param("project"), c.Param("experiment"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) experimentHistory(c echo.Context) error {
	if err := s.requireAnalyzer(); err != nil {
		return err
	}
	goal := c.QueryParam("goal")
	if goal == "" {
		return domain.Invalid("goal", "goal is required")
	}
	from, to := time.Time{}, time.Now().Add(time.Minute)
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := c.QueryParam(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return domain.Invalid(name, "%s must be an RFC 3339 time", name)
			}
			*dst = t
		}
	}
	points, err := s.analyzer.History(c.Request().Context(), c.Param("project"), c.Param("experiment"), goal, from, to)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(points, ""))
}
