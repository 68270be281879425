package console

// Progressive delivery in the management API: scheduled changes (schedules.go), progressive
// rollouts (rollouts.go), auto-ops rules (autoops.go) and webhook triggers (triggers.go). The
// commands run in the application layer (services/app); the experiment role's scheduler
// (services/roles/scheduler) applies what is due with the same commands, attributed to the system actor.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/app"
)

// deliveryListParams and deliveryStatusListParams are the query parameters of the delivery lists.
var deliveryListParams = []string{"flag", "environment", "cursor", "limit"}
var deliveryStatusListParams = []string{"flag", "environment", "status", "cursor", "limit"}

type reasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

// listDelivery answers one page of a delivery list, filtered by the query parameters of
// deliveryListParams (and status, with status true: deliveryStatusListParams).
func listDelivery[T any](s *Server, c echo.Context, status bool,
	list func(context.Context, delivery.ListQuery) ([]T, string, error)) error {
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	cursor, err := s.cursor(c)
	if err != nil {
		return err
	}
	q := delivery.ListQuery{Project: c.Param("project"), Flag: c.QueryParam("flag"),
		Environment: c.QueryParam("environment"), Cursor: cursor, Limit: limit}
	if status {
		q.Status = c.QueryParam("status")
	}
	items, next, err := list(c.Request().Context(), q)
	if err != nil {
		return err
	}
	if next, err = s.nextCursor(c, next); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// deliveryRef names the delivery aggregate in the path.
type deliveryRef struct{ Project, ID string }

// deliveryCommand runs a command on the delivery aggregate named in the path (If-Match honoured)
// and answers view of the aggregate after it.
func deliveryCommand[T any, V any](c echo.Context, run func(context.Context, app.Meta, deliveryRef) (T, int64, error), view func(T) V) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	agg, v, err := run(c.Request().Context(), m, deliveryRef{Project: c.Param("project"), ID: c.Param("id")})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, view(agg))
}

// same is the view of an aggregate that is answered as it is.
func same[T any](t T) T { return t }

// decodeOptional decodes a JSON body when there is one (no body, or an empty one, leaves v as it
// is), strictly as decode does.
func (s *Server) decodeOptional(c echo.Context, v any) error {
	r := c.Request()
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.maxBody))
	if err != nil {
		return &domain.Error{Code: domain.ETooLarge, Message: fmt.Sprintf("request body is larger than the limit of %d bytes", s.maxBody)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" && !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return &domain.Error{Code: domain.EInvalid, Message: "Content-Type must be application/json"}
	}
	return httpapi.Unmarshal(body, v)
}
