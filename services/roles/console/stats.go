package console

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/telemetry"
)

// Stats of the telemetry rollups (never raw events): evaluations per flag and variation, last
// evaluation per flag and stale flags, goal conversions per variation.

var statsParams = []string{"interval", "from", "to"}

// staleFlags is the answer of GET …/stale-flags.
type staleFlags struct {
	Days  int                      `json:"days"`
	Since time.Time                `json:"since"` // not evaluated since then (and created before)
	Items []telemetry.FlagActivity `json:"items"`
}

// statsQuery reads interval, from and to: RFC 3339 times, widened to whole buckets; to defaults
// to now and from to the interval's default range before to. A range longer than the interval
// allows, or reversed, is invalid.
func statsQuery(c echo.Context, allowed ...telemetry.Interval) (telemetry.StatsQuery, error) {
	q := telemetry.StatsQuery{Project: c.Param("project"), Environment: c.Param("environment"), Interval: telemetry.Hour}
	if v := c.QueryParam("interval"); v != "" {
		q.Interval = telemetry.Interval(v)
	}
	ok := false
	for _, a := range allowed {
		ok = ok || q.Interval == a
	}
	if !ok {
		names := ""
		for i, a := range allowed {
			if i > 0 {
				names += ", "
			}
			names += string(a)
		}
		return q, domain.Invalid("interval", "interval must be one of %s", names)
	}
	to := time.Now()
	if v := c.QueryParam("to"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return q, domain.Invalid("to", "to must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
		}
		to = t
	}
	from := to.Add(-q.Interval.DefaultRange())
	if v := c.QueryParam("from"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return q, domain.Invalid("from", "from must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
		}
		from = t
	}
	if !from.Before(to) {
		return q, domain.Invalid("from", "from must be before to")
	}
	q.From, q.To = q.Interval.Align(from, to)
	if q.To.Sub(q.From) > q.Interval.MaxRange() {
		return q, domain.Invalid("from", "a %s series spans at most %s; narrow the range or use a wider interval",
			q.Interval, q.Interval.MaxRange())
	}
	return q, nil
}

// environmentExists answers 404 for an unknown project or environment (and flag, if not "").
func (s *Server) environmentExists(ctx context.Context, project, environment, flag string) error {
	var env, fl bool
	if err := s.app.Queries.Pool().QueryRow(ctx, `SELECT
		  EXISTS (SELECT 1 FROM rm_environments WHERE project = $1 AND key = $2),
		  $3 = '' OR EXISTS (SELECT 1 FROM rm_flags WHERE project = $1 AND key = $3)`, project, environment, flag).Scan(&env, &fl); err != nil {
		return err
	}
	if !env {
		return domain.Errorf(domain.ENotFound, "environment %q not found in project %q", environment, project)
	}
	if !fl {
		return domain.Errorf(domain.ENotFound, "flag %q not found in project %q", flag, project)
	}
	return nil
}

// GET /projects/{project}/environments/{environment}/flags/{flag}/stats
func (s *Server) flagStats(c echo.Context) error {
	q, err := statsQuery(c, telemetry.Minute, telemetry.Hour, telemetry.Day)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := s.environmentExists(ctx, q.Project, q.Environment, c.Param("flag")); err != nil {
		return err
	}
	stats, err := telemetry.FlagEvaluations(ctx, s.app.Queries.Pool(), q, c.Param("flag"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, stats)
}

// GET /projects/{project}/environments/{environment}/flag-activity
func (s *Server) flagActivity(c echo.Context) error {
	ctx := c.Request().Context()
	if err := s.environmentExists(ctx, c.Param("project"), c.Param("environment"), ""); err != nil {
		return err
	}
	items, err := telemetry.FlagsActivity(ctx, s.app.Queries.Pool(), c.Param("project"), c.Param("environment"), nil)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, ""))
}

// GET /projects/{project}/environments/{environment}/stale-flags?days=N
func (s *Server) staleFlags(c echo.Context) error {
	days := 30
	if v := c.QueryParam("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3650 {
			return domain.Invalid("days", "days must be an integer from 1 to 3650")
		}
		days = n
	}
	ctx := c.Request().Context()
	if err := s.environmentExists(ctx, c.Param("project"), c.Param("environment"), ""); err != nil {
		return err
	}
	since := time.Now().UTC().Add(-time.Duration(days) * 24 * time.Hour).Truncate(time.Second)
	items, err := telemetry.FlagsActivity(ctx, s.app.Queries.Pool(), c.Param("project"), c.Param("environment"), &since)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, staleFlags{Days: days, Since: since, Items: items})
}

// GET /projects/{project}/environments/{environment}/goals/{goal}/stats?flag=|experiment=
func (s *Server) goalStats(c echo.Context) error {
	q, err := statsQuery(c, telemetry.Hour, telemetry.Day)
	if err != nil {
		return err
	}
	goal := c.Param("goal")
	if !domain.ValidKey(goal) {
		return domain.Invalid("goal", "goal must be a key")
	}
	kind, subject := "", ""
	flag, experiment := c.QueryParam("flag"), c.QueryParam("experiment")
	switch {
	case flag != "" && experiment != "":
		return domain.Invalid("experiment", "give flag or experiment, not both")
	case flag != "":
		kind, subject = "flag", flag
	case experiment != "":
		kind, subject = "experiment", experiment
	}
	if subject != "" && !domain.ValidKey(subject) {
		return domain.Invalid(kind, "%s must be a key", kind)
	}
	ctx := c.Request().Context()
	if err := s.environmentExists(ctx, q.Project, q.Environment, flag); err != nil {
		return err
	}
	stats, err := telemetry.GoalConversions(ctx, s.app.Queries.Pool(), q, goal, kind, subject)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, stats)
}
