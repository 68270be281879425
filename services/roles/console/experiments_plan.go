package console

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/roles/analysis"
)

// planExperiment sizes an experiment (experiments.Analyzer.Plan) for the create flow.
func (s *Server) planExperiment(c echo.Context) error {
	if err := s.requireAnalyzer(); err != nil {
		return err
	}
	var in analysis.PlanRequest
	if err := s.decode(c, &in); err != nil {
		return err
	}
	p, err := s.analyzer.Plan(c.Request().Context(), c.Param("project"), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}
