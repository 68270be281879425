package console

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/app"
)

// TriggerSecretHeader carries a webhook trigger's secret; ?secret= is accepted too, for tools that
// can only call a URL (the secret then travels in the URL, where proxies and browsers may log it).
const TriggerSecretHeader = "X-Vexil-Trigger-Secret"

// HooksPath is the path of the public webhook endpoints (outside /api/v1, no bearer token).
const HooksPath = "/hooks/v1/triggers/"

type triggerRequest struct {
	Name        string               `json:"name"`
	Flag        string               `json:"flag"`
	Environment string               `json:"environment"`
	Action      domain.TriggerAction `json:"action"` // on or off
}

// triggerSecretView is answered when a trigger is created or its secret rotated: the only times
// the secret is shown.
type triggerSecretView struct {
	Trigger delivery.TriggerSummary `json:"trigger"`
	URL     string                  `json:"url"`
	Path    string                  `json:"path"`
	Secret  string                  `json:"secret"`
}

// triggerFiredView is the webhook's answer.
type triggerFiredView struct {
	Trigger     string `json:"trigger"`
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	On          bool   `json:"on"`
	Changed     bool   `json:"changed"` // false when the flag already was in that state
}

func (s *Server) listTriggers(c echo.Context) error {
	return listDelivery(s, c, false, s.app.Queries.ListTriggers)
}

// triggerURL is the webhook URL of a trigger as this request reached the server (behind a proxy,
// X-Forwarded-Proto decides the scheme).
func triggerURL(c echo.Context, id string) (url, path string) {
	path = HooksPath + id
	return c.Scheme() + "://" + c.Request().Host + path, path
}

// answerTriggerSecret answers a trigger with its secret and webhook URL.
func answerTriggerSecret(c echo.Context, status int, t app.TriggerWithSecret) error {
	url, path := triggerURL(c, t.Trigger.ID)
	return withVersion(c, status, t.Version, triggerSecretView{Trigger: delivery.SummarizeTrigger(t.Trigger),
		URL: url, Path: path, Secret: t.Secret})
}

func (s *Server) createTrigger(c echo.Context) error {
	var req triggerRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	t, err := s.app.Commands.CreateTrigger(c.Request().Context(), meta(c), app.CreateTrigger{Project: c.Param("project"),
		Name: req.Name, Flag: req.Flag, Env: req.Environment, Action: req.Action})
	if err != nil {
		return err
	}
	return answerTriggerSecret(c, http.StatusCreated, t)
}

func (s *Server) getTrigger(c echo.Context) error {
	t, v, err := s.app.Queries.Trigger(c.Request().Context(), c.Param("project"), c.Param("id"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, delivery.SummarizeTrigger(t))
}

func (s *Server) rotateTrigger(c echo.Context) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	t, err := s.app.Commands.RotateTriggerSecret(c.Request().Context(), m, app.RotateTriggerSecret{Project: c.Param("project"),
		ID: c.Param("id")})
	if err != nil {
		return err
	}
	return answerTriggerSecret(c, http.StatusOK, t)
}

func (s *Server) enableTrigger(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Trigger, int64, error) {
		return s.app.Commands.EnableTrigger(ctx, m, app.EnableTrigger(ref))
	}, delivery.SummarizeTrigger)
}

func (s *Server) disableTrigger(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Trigger, int64, error) {
		return s.app.Commands.DisableTrigger(ctx, m, app.DisableTrigger(ref))
	}, delivery.SummarizeTrigger)
}

func (s *Server) deleteTrigger(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Trigger, int64, error) {
		return s.app.Commands.DeleteTrigger(ctx, m, app.DeleteTrigger(ref))
	}, delivery.SummarizeTrigger)
}

// RegisterHooks adds the public webhook endpoint, POST /hooks/v1/triggers/{id}: no bearer token,
// the trigger's secret instead (header X-Vexil-Trigger-Secret, or ?secret=).
func (s *Server) RegisterHooks(e *echo.Echo) {
	e.POST(HooksPath+":id", s.callTrigger, httpapi.NoStore)
}

func (s *Server) callTrigger(c echo.Context) error {
	id := c.Param("id")
	secret := c.Request().Header.Get(TriggerSecretHeader)
	if secret == "" {
		secret = c.QueryParam("secret")
	}
	remote := c.Request().RemoteAddr
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	allow := func() error {
		if s.triggers == nil {
			return nil
		}
		wait, ok := s.triggers.Allow(id, time.Now())
		if ok {
			return nil
		}
		c.Response().Header().Set("Retry-After", httpapi.RetryAfter(wait))
		return domain.Errorf(domain.ERateLimited, "this trigger was called more often than its rate limit (VEXIL_TRIGGER_RATE_LIMIT a minute) allows; retry later")
	}
	fired, err := s.app.Commands.FireTrigger(c.Request().Context(), app.Meta{RequestID: httpapi.RequestID(c)},
		app.FireTrigger{ID: id, Secret: secret, Remote: remote, Allow: allow})
	if app.IsTriggerRefused(err) {
		// Logged with the trigger id and the caller, never the secret.
		s.log.Warn("webhook trigger refused: unknown trigger or wrong secret", "trigger", truncateID(id),
			"remote_addr", remote, "forwarded_for", truncateID(c.Request().Header.Get("X-Forwarded-For")),
			"request_id", httpapi.RequestID(c))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, triggerFiredView{Trigger: fired.Trigger, Flag: fired.Flag, Environment: fired.Environment,
		On: fired.On, Changed: fired.Changed})
}

func truncateID(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}
