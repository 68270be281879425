package console

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
)

type autoOpsRuleRequest struct {
	ID          string `json:"id,omitempty"` // generated (UUIDv7) when empty
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	domain.AutoOpsDefinition
	Enabled *bool `json:"enabled,omitempty"` // default true
}

func (s *Server) listAutoOpsRules(c echo.Context) error {
	return listDelivery(s, c, false, s.app.Queries.ListAutoOpsRules)
}

func (s *Server) createAutoOpsRule(c echo.Context) error {
	var req autoOpsRuleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	r, v, err := s.app.Commands.CreateAutoOpsRule(c.Request().Context(), meta(c), app.CreateAutoOpsRule{Project: c.Param("project"),
		ID: req.ID, Flag: req.Flag, Env: req.Environment, AutoOpsDefinition: req.AutoOpsDefinition,
		Enabled: req.Enabled == nil || *req.Enabled})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, r)
}

func (s *Server) getAutoOpsRule(c echo.Context) error {
	r, v, err := s.app.Queries.AutoOpsRule(c.Request().Context(), c.Param("project"), c.Param("id"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, r)
}

func (s *Server) updateAutoOpsRule(c echo.Context) error {
	var d domain.AutoOpsDefinition
	if err := s.decode(c, &d); err != nil {
		return err
	}
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.AutoOpsRule, int64, error) {
		return s.app.Commands.UpdateAutoOpsRule(ctx, m, app.UpdateAutoOpsRule{Project: ref.Project, ID: ref.ID, Definition: d})
	}, same)
}

func (s *Server) enableAutoOpsRule(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.AutoOpsRule, int64, error) {
		return s.app.Commands.EnableAutoOpsRule(ctx, m, app.EnableAutoOpsRule(ref))
	}, same)
}

func (s *Server) disableAutoOpsRule(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.AutoOpsRule, int64, error) {
		return s.app.Commands.DisableAutoOpsRule(ctx, m, app.DisableAutoOpsRule(ref))
	}, same)
}

func (s *Server) deleteAutoOpsRule(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.AutoOpsRule, int64, error) {
		return s.app.Commands.DeleteAutoOpsRule(ctx, m, app.DeleteAutoOpsRule(ref))
	}, same)
}

func (s *Server) listAutoOpsFirings(c echo.Context) error {
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	cursor, err := s.cursor(c)
	if err != nil {
		return err
	}
	items, next, err := s.app.Queries.ListAutoOpsFirings(c.Request().Context(), c.Param("project"), c.Param("id"), cursor, limit)
	if err != nil {
		return err
	}
	if next, err = s.nextCursor(c, next); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}
