package console

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
)

type scheduleRequest struct {
	ID          string            `json:"id,omitempty"` // generated (UUIDv7) when empty
	Flag        string            `json:"flag"`
	Environment string            `json:"environment"`
	At          time.Time         `json:"at"`
	Kind        domain.ChangeKind `json:"kind"` // toggle, targeting or default
	On          *bool             `json:"on,omitempty"`
	Targeting   *domain.Targeting `json:"targeting,omitempty"`
	Default     *domain.Serve     `json:"default,omitempty"`
}

type scheduleEditRequest struct {
	At        time.Time         `json:"at"`
	Kind      domain.ChangeKind `json:"kind"`
	On        *bool             `json:"on,omitempty"`
	Targeting *domain.Targeting `json:"targeting,omitempty"`
	Default   *domain.Serve     `json:"default,omitempty"`
}

func (s *Server) listSchedules(c echo.Context) error {
	return listDelivery(s, c, true, s.app.Queries.ListSchedules)
}

func (s *Server) createSchedule(c echo.Context) error {
	var req scheduleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	sc, v, err := s.app.Commands.ScheduleChange(c.Request().Context(), meta(c), app.ScheduleChange{Project: c.Param("project"),
		ID: req.ID, Flag: req.Flag, Env: req.Environment,
		Change: app.ChangeSpec{At: req.At, Kind: req.Kind, On: req.On, Targeting: req.Targeting, Default: req.Default}})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, sc)
}

func (s *Server) getSchedule(c echo.Context) error {
	sc, v, err := s.app.Queries.ScheduledChange(c.Request().Context(), c.Param("project"), c.Param("id"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, sc)
}

func (s *Server) editSchedule(c echo.Context) error {
	var req scheduleEditRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.ScheduledChange, int64, error) {
		return s.app.Commands.EditSchedule(ctx, m, app.EditSchedule{Project: ref.Project, ID: ref.ID,
			Change: app.ChangeSpec{At: req.At, Kind: req.Kind, On: req.On, Targeting: req.Targeting, Default: req.Default}})
	}, same)
}

func (s *Server) cancelSchedule(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.ScheduledChange, int64, error) {
		return s.app.Commands.CancelSchedule(ctx, m, app.CancelSchedule(ref))
	}, same)
}
