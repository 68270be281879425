package console

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	exprm "github.com/vexil-flags/vexil/projections/experiments"
	"github.com/vexil-flags/vexil/services/experiments"
	"github.com/vexil-flags/vexil/services/httpapi"
)

// WithAnalyzer lets the API run analyses on demand and serve reports.
func (s *Server) WithAnalyzer(a *experiments.Analyzer) *Server {
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

// experimentCatalog folds the project's goals and experiments, on top of the flag catalog.
func (a *App) experimentCatalog(ctx context.Context, project string) (*domain.ExperimentCatalog, error) {
	cat, err := a.Catalog(ctx, project)
	if err != nil {
		return nil, err
	}
	var goals []*domain.Goal
	var exps []*domain.Experiment
	var rollouts []*domain.Rollout
	for _, prefix := range []string{"goal/" + project + "/", "experiment/" + project + "/", "rollout/" + project + "/"} {
		byStream, err := a.store.LoadPrefix(ctx, prefix)
		if err != nil {
			return nil, err
		}
		for id, events := range byStream {
			agg, err := projections.Fold(id, events)
			if err != nil {
				return nil, err
			}
			switch v := agg.(type) {
			case *domain.Goal:
				goals = append(goals, v)
			case *domain.Experiment:
				exps = append(exps, v)
			case *domain.Rollout:
				rollouts = append(rollouts, v)
			}
		}
	}
	ec := domain.BuildExperimentCatalog(cat, goals, exps)
	for _, r := range rollouts {
		ec.AddRollout(r) // an experiment does not start on a flag being rolled out
	}
	return ec, nil
}

func (s *Server) listGoals(c echo.Context) error {
	archived, err := queryBool(c, "archived")
	if err != nil {
		return err
	}
	items, err := exprm.List[domain.Goal](c.Request().Context(), s.app.pool, c.Param("project"), archived != nil && *archived)
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
	if !domain.ValidKey(in.Key) {
		return domain.Invalid("key", "key must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
	}
	if _, err := s.app.LoadProject(c.Request().Context(), project); err != nil {
		return err
	}
	agg, v, err := s.app.Execute(c.Request().Context(), domain.GoalStream(project, in.Key), 0, meta(c),
		func(projections.Aggregate) ([]domain.Event, error) { return domain.CreateGoal(in) })
	if err != nil {
		return alreadyExists(err, "goal", in.Key)
	}
	return withVersion(c, http.StatusCreated, v, agg)
}

func (s *Server) getGoal(c echo.Context) error {
	agg, v, err := s.app.load(c.Request().Context(), domain.GoalStream(c.Param("project"), c.Param("goal")), "goal "+c.Param("goal"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

func (s *Server) goalCommand(c echo.Context, cmd func(*domain.Goal, *domain.ExperimentCatalog) ([]domain.Event, error)) error {
	expected, err := expectedVersion(c)
	if err != nil {
		return err
	}
	project, key := c.Param("project"), c.Param("goal")
	cat, err := s.app.experimentCatalog(c.Request().Context(), project)
	if err != nil {
		return err
	}
	agg, v, err := s.app.Execute(c.Request().Context(), domain.GoalStream(project, key), expected, meta(c),
		func(cur projections.Aggregate) ([]domain.Event, error) {
			if cur == nil {
				return nil, domain.Errorf(domain.ENotFound, "goal %q not found in project %q", key, project)
			}
			return cmd(cur.(*domain.Goal), cat)
		})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

// updateGoal is a JSON Merge Patch (RFC 7396): null clears the description and the value cap (no
// cap); name and direction cannot be removed.
func (s *Server) updateGoal(c echo.Context) error {
	patch, err := s.readPatch(c, "name", "direction")
	if err != nil {
		return err
	}
	return s.goalCommand(c, func(g *domain.Goal, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
		var in domain.GoalSettings
		cur := domain.GoalSettings{Name: g.Name, Description: g.Description, Direction: g.Direction, ValueCap: g.ValueCap}
		if err := httpapi.ApplyMergePatch(cur, patch, &in); err != nil {
			return nil, err
		}
		return g.Update(in)
	})
}

func (s *Server) archiveGoal(c echo.Context) error {
	return s.goalCommand(c, func(g *domain.Goal, cat *domain.ExperimentCatalog) ([]domain.Event, error) { return g.Archive(cat) })
}

func (s *Server) restoreGoal(c echo.Context) error {
	return s.goalCommand(c, func(g *domain.Goal, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return g.Restore() })
}

func (s *Server) listExperiments(c echo.Context) error {
	archived, err := queryBool(c, "archived")
	if err != nil {
		return err
	}
	items, err := exprm.List[domain.Experiment](c.Request().Context(), s.app.pool, c.Param("project"), archived != nil && *archived)
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
	project := c.Param("project")
	if !domain.ValidKey(in.Key) {
		return domain.Invalid("key", "key must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
	}
	cat, err := s.app.experimentCatalog(c.Request().Context(), project)
	if err != nil {
		return err
	}
	if in.Seed == "" {
		in.Seed = NewID(8) // the experiment's own bucketing seed
	}
	agg, v, err := s.app.Execute(c.Request().Context(), domain.ExperimentStream(project, in.Key), 0, meta(c),
		func(projections.Aggregate) ([]domain.Event, error) {
			return domain.CreateExperiment(domain.NewExperiment{Project: project, Key: in.Key, ExperimentDefinition: in.ExperimentDefinition}, cat)
		})
	if err != nil {
		return alreadyExists(err, "experiment", in.Key)
	}
	return withVersion(c, http.StatusCreated, v, agg)
}

func (s *Server) getExperiment(c echo.Context) error {
	agg, v, err := s.app.load(c.Request().Context(), domain.ExperimentStream(c.Param("project"), c.Param("experiment")), "experiment "+c.Param("experiment"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

func (s *Server) experimentCommand(c echo.Context, cmd func(*domain.Experiment, *domain.ExperimentCatalog) ([]domain.Event, error)) (*domain.Experiment, int64, error) {
	expected, err := expectedVersion(c)
	if err != nil {
		return nil, 0, err
	}
	project, key := c.Param("project"), c.Param("experiment")
	cat, err := s.app.experimentCatalog(c.Request().Context(), project)
	if err != nil {
		return nil, 0, err
	}
	agg, v, err := s.app.Execute(c.Request().Context(), domain.ExperimentStream(project, key), expected, meta(c),
		func(cur projections.Aggregate) ([]domain.Event, error) {
			if cur == nil {
				return nil, domain.Errorf(domain.ENotFound, "experiment %q not found in project %q", key, project)
			}
			return cmd(cur.(*domain.Experiment), cat)
		})
	if err != nil {
		return nil, 0, err
	}
	return agg.(*domain.Experiment), v, nil
}

func (s *Server) answerExperiment(c echo.Context, cmd func(*domain.Experiment, *domain.ExperimentCatalog) ([]domain.Event, error)) error {
	e, v, err := s.experimentCommand(c, cmd)
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
	return s.answerExperiment(c, func(e *domain.Experiment, cat *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.UpdateDraft(in, cat)
	})
}

func (s *Server) startExperiment(c echo.Context) error {
	return s.answerExperiment(c, func(e *domain.Experiment, cat *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.Start(cat, time.Now())
	})
}

func (s *Server) stopExperiment(c echo.Context) error {
	return s.answerExperiment(c, func(e *domain.Experiment, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.Stop(time.Now())
	})
}

func (s *Server) archiveExperiment(c echo.Context) error {
	return s.answerExperiment(c, func(e *domain.Experiment, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.Archive()
	})
}

// concludeExperiment records the decision and, with apply_to_flag, makes the chosen variation the
// flag's default serve in the experiment's environment: two commands on two streams, each audited.
func (s *Server) concludeExperiment(c echo.Context) error {
	var in concludeRequest
	if err := s.decode(c, &in); err != nil {
		return err
	}
	e, _, err := s.experimentCommand(c, func(e *domain.Experiment, _ *domain.ExperimentCatalog) ([]domain.Event, error) {
		return e.Conclude(in.Variation, in.Reason, time.Now())
	})
	if err != nil {
		return err
	}
	out := concludeResponse{Experiment: e}
	if in.ApplyToFlag {
		cat, err := s.app.Catalog(c.Request().Context(), e.Project)
		if err != nil {
			return err
		}
		m := meta(c)
		m.Reason = "concluded experiment " + e.Key + ": " + in.Reason
		agg, v, err := s.app.Execute(c.Request().Context(), domain.FlagStream(e.Project, e.Flag), AnyVersion, m,
			func(cur projections.Aggregate) ([]domain.Event, error) {
				if cur == nil {
					return nil, domain.Errorf(domain.ENotFound, "flag %q not found", e.Flag)
				}
				f := cur.(*domain.Flag)
				t := f.ConfigFor(e.Environment).Targeting
				t.Default = domain.Serve{Variation: in.Variation}
				return f.UpdateTargeting(e.Environment, t, cat)
			})
		if err != nil {
			return err
		}
		f := agg.(*domain.Flag)
		out.Flag = &targetingView{Flag: f.Key, Environment: e.Environment, Version: v, Targeting: f.ConfigFor(e.Environment).Targeting}
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
