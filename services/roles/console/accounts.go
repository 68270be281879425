package console

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app/identity"
)

// The audit of the web console's accounts and memberships (console_account_audit, written by
// services/app/identity with each change): a project's admins read its membership changes, an
// unrestricted admin token reads every entry, refused sign-ins included.

func (s *Server) accountAudit(c echo.Context, project string) error {
	cursor, err := s.cursor(c)
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	if limit < 0 || limit > 500 {
		return domain.Invalid("limit", "limit must be from 1 to 500")
	}
	var before int64
	if cursor != "" {
		if before, err = strconv.ParseInt(cursor, 10, 64); err != nil {
			return domain.Invalid("cursor", "cursor is not one this API returned")
		}
	}
	items, next, err := identity.ListAccountAudit(c.Request().Context(), s.app.Queries.Pool(), identity.AccountQuery{Project: project, Before: before, Limit: limit})
	if err != nil {
		return err
	}
	if next != "" {
		if next, err = s.nextCursor(c, next); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

func (s *Server) projectAccountAudit(c echo.Context) error {
	return s.accountAudit(c, c.Param("project"))
}
func (s *Server) instanceAccountAudit(c echo.Context) error { return s.accountAudit(c, "") }
