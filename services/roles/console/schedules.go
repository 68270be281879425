package console

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app"
)

type scheduleRequest struct {
	ID          string `json:"id,omitempty"` // generated (UUIDv7) when empty
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	scheduleEditRequest
}

// scheduleEditRequest is when and what: at is an RFC 3339 time with its offset, or a local time
// ("2026-12-24T09:00") in time_zone; a recurrence (toggles only) replaces at.
type scheduleEditRequest struct {
	At         string             `json:"at,omitempty"`
	TimeZone   string             `json:"time_zone,omitempty"` // IANA name, e.g. "Europe/Paris"
	Recurrence *domain.Recurrence `json:"recurrence,omitempty"`
	Kind       domain.ChangeKind  `json:"kind"` // toggle, targeting or default
	On         *bool              `json:"on,omitempty"`
	Targeting  *domain.Targeting  `json:"targeting,omitempty"`
	Default    *domain.Serve      `json:"default,omitempty"`
}

// change reads the request's time in its time zone: a time without offset and without zone is a
// 400 at field at (it used to be "malformed JSON", with no field).
func (r scheduleEditRequest) change() (app.ChangeSpec, error) {
	at, err := domain.ParseScheduleTime(r.At, r.TimeZone)
	if err != nil {
		return app.ChangeSpec{}, err
	}
	return app.ChangeSpec{At: at, TimeZone: r.TimeZone, Recurrence: r.Recurrence, Kind: r.Kind, On: r.On,
		Targeting: r.Targeting, Default: r.Default}, nil
}

// NextRunsShown is how many coming runs a schedule's answer lists.
const NextRunsShown = 5

// scheduleView is a scheduled change with its coming runs, in its time zone (the due time of a
// pending one-off change; the next NextRunsShown occurrences of a recurring one; none once it is
// resolved).
type scheduleView struct {
	domain.ScheduledChange
	NextRuns []time.Time `json:"next_runs"`
}

func viewSchedule(sc *domain.ScheduledChange) scheduleView {
	return scheduleView{ScheduledChange: *sc, NextRuns: sc.NextRuns(NextRunsShown)}
}

func (s *Server) listSchedules(c echo.Context) error {
	return listDelivery(s, c, true, func(ctx context.Context, q delivery.ListQuery) ([]scheduleView, string, error) {
		items, next, err := s.app.Queries.ListSchedules(ctx, q)
		views := make([]scheduleView, len(items))
		for i, sc := range items {
			views[i] = viewSchedule(sc)
		}
		return views, next, err
	})
}

func (s *Server) createSchedule(c echo.Context) error {
	var req scheduleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	change, err := req.change()
	if err != nil {
		return err
	}
	sc, v, err := s.app.Commands.ScheduleChange(c.Request().Context(), meta(c), app.ScheduleChange{Project: c.Param("project"),
		ID: req.ID, Flag: req.Flag, Env: req.Environment, Change: change})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, viewSchedule(sc))
}

func (s *Server) getSchedule(c echo.Context) error {
	sc, v, err := s.app.Queries.ScheduledChange(c.Request().Context(), c.Param("project"), c.Param("id"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, viewSchedule(sc))
}

func (s *Server) editSchedule(c echo.Context) error {
	var req scheduleEditRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	change, err := req.change()
	if err != nil {
		return err
	}
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.ScheduledChange, int64, error) {
		return s.app.Commands.EditSchedule(ctx, m, app.EditSchedule{Project: ref.Project, ID: ref.ID, Change: change})
	}, viewSchedule)
}

func (s *Server) cancelSchedule(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.ScheduledChange, int64, error) {
		return s.app.Commands.CancelSchedule(ctx, m, app.CancelSchedule(ref))
	}, viewSchedule)
}
