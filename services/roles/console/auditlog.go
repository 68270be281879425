package console

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/audit"
)

func (s *Server) auditQuery(c echo.Context) (audit.Query, error) {
	cursor, err := s.cursor(c)
	if err != nil {
		return audit.Query{}, err
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		return audit.Query{}, err
	}
	q := audit.Query{Project: c.Param("project"), Environment: c.QueryParam("environment"),
		Actor: c.QueryParam("actor"), EntityKind: c.QueryParam("kind"), Cursor: cursor, Limit: limit}
	for name, dst := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		if v := c.QueryParam(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return audit.Query{}, domain.Invalid(name, "%s must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z", name)
			}
			*dst = t
		}
	}
	return q, nil
}

func (s *Server) listAudit(c echo.Context, kind, key string) error {
	q, err := s.auditQuery(c)
	if err != nil {
		return err
	}
	if kind != "" {
		q.EntityKind, q.EntityKey = kind, key
	}
	if f := c.QueryParam("format"); f != "" {
		return s.exportAudit(c, q, f)
	}
	items, next, err := audit.List(c.Request().Context(), s.app.Queries.Pool(), q)
	if err != nil {
		return err
	}
	if next, err = s.nextCursor(c, next); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

func (s *Server) projectAudit(c echo.Context) error { return s.listAudit(c, "", "") }
func (s *Server) flagAudit(c echo.Context) error    { return s.listAudit(c, "flag", c.Param("flag")) }
func (s *Server) segmentAudit(c echo.Context) error {
	return s.listAudit(c, "segment", c.Param("segment"))
}
