package console

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/roles/webhooks"
)

// WithWebhooks serves the outgoing webhook subscriptions of projects (services/roles/webhooks);
// wake, if set, tells the delivery worker of this process that a test delivery is queued.
func (s *Server) WithWebhooks(store *webhooks.Store, wake func()) *Server {
	s.webhooks, s.wakeWebhooks = store, wake
	return s
}

// webhookRoutes: every one needs the admin scope, reads included: a subscription's URL is often
// a secret itself (a Slack incoming webhook's is), and its deliveries show what left Vexil.
func webhookRoutes() []route {
	return []route{
		{method: get, path: "/projects/:project/webhooks", scope: admin, tag: "webhooks", summary: "List outgoing webhook subscriptions (never their secrets)",
			status: 200, response: page[webhooks.Subscription]{}, handler: (*Server).listWebhooks},
		{method: post, path: "/projects/:project/webhooks", scope: admin, tag: "webhooks",
			summary: "Subscribe a URL to event kinds of the project (flag.changed, change_request.*, experiment.concluded, autoops.fired, rollout.step_applied, rollout.guard_fired, rollout.paused, release.awaiting_approval); the signing secret is shown only in this answer",
			status:  201, request: webhooks.NewSubscription{}, response: webhooks.SubscriptionWithSecret{}, handler: (*Server).createWebhook},
		{method: get, path: "/projects/:project/webhooks/:id", scope: admin, tag: "webhooks", summary: "Get a webhook subscription (never its secret)",
			status: 200, response: webhooks.Subscription{}, handler: (*Server).getWebhook},
		{method: del, path: "/projects/:project/webhooks/:id", scope: admin, tag: "webhooks", summary: "Delete a webhook subscription with its queued deliveries and delivery log",
			status: 204, handler: (*Server).deleteWebhook},
		{method: post, path: "/projects/:project/webhooks/:id/enable", scope: admin, tag: "webhooks", summary: "Resume a paused webhook subscription",
			status: 200, response: webhooks.Subscription{}, handler: (*Server).enableWebhook},
		{method: post, path: "/projects/:project/webhooks/:id/disable", scope: admin, tag: "webhooks", summary: "Pause a webhook subscription: nothing is queued for it, queued deliveries wait",
			status: 200, response: webhooks.Subscription{}, handler: (*Server).disableWebhook},
		{method: get, path: "/projects/:project/webhooks/:id/deliveries", scope: admin, tag: "webhooks",
			summary: "Delivery log of a subscription, newest first: status, attempts (each with response code and latency), next attempt",
			status:  200, query: []string{"limit"}, response: page[webhooks.Delivery]{}, handler: (*Server).webhookDeliveries},
		{method: post, path: "/projects/:project/webhooks/:id/test", scope: admin, tag: "webhooks", summary: "Queue a test delivery (kind test); its outcome shows in the delivery log",
			status: 202, response: webhooks.Delivery{}, handler: (*Server).testWebhook},
	}
}

func (s *Server) webhookStore() (*webhooks.Store, error) {
	if s.webhooks == nil {
		return nil, domain.Errorf(domain.EUnavailable, "outgoing webhooks are not served by this process")
	}
	return s.webhooks, nil
}

func (s *Server) listWebhooks(c echo.Context) error {
	w, err := s.webhookStore()
	if err != nil {
		return err
	}
	list, err := w.List(c.Request().Context(), c.Param("project"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(list, ""))
}

func (s *Server) createWebhook(c echo.Context) error {
	w, err := s.webhookStore()
	if err != nil {
		return err
	}
	var req webhooks.NewSubscription
	if err := s.decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, _, err := s.app.Queries.Project(ctx, c.Param("project")); err != nil {
		return err
	}
	sub, err := w.Create(ctx, c.Param("project"), req, actor(c))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/api/v1/projects/"+sub.Project+"/webhooks/"+sub.ID)
	return c.JSON(http.StatusCreated, sub)
}

func (s *Server) getWebhook(c echo.Context) error {
	w, err := s.webhookStore()
	if err != nil {
		return err
	}
	sub, err := w.Get(c.Request().Context(), c.Param("project"), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sub)
}

func (s *Server) deleteWebhook(c echo.Context) error {
	w, err := s.webhookStore()
	if err != nil {
		return err
	}
	if err := w.Delete(c.Request().Context(), c.Param("project"), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) enableWebhook(c echo.Context) error  { return s.setWebhookEnabled(c, true) }
func (s *Server) disableWebhook(c echo.Context) error { return s.setWebhookEnabled(c, false) }

func (s *Server) setWebhookEnabled(c echo.Context, on bool) error {
	w, err := s.webhookStore()
	if err != nil {
		return err
	}
	sub, err := w.SetEnabled(c.Request().Context(), c.Param("project"), c.Param("id"), on)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sub)
}

func (s *Server) webhookDeliveries(c echo.Context) error {
	w, err := s.webhookStore()
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	if limit > 200 {
		return domain.Invalid("limit", "limit must be at most 200")
	}
	list, err := w.Deliveries(c.Request().Context(), c.Param("project"), c.Param("id"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(list, ""))
}

func (s *Server) testWebhook(c echo.Context) error {
	w, err := s.webhookStore()
	if err != nil {
		return err
	}
	d, err := w.SendTest(c.Request().Context(), c.Param("project"), c.Param("id"), actor(c))
	if err != nil {
		return err
	}
	if s.wakeWebhooks != nil {
		s.wakeWebhooks()
	}
	return c.JSON(http.StatusAccepted, d)
}
