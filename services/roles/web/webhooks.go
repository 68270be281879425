package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/roles/webhooks"
)

// The outgoing webhooks page (admins of the project): subscriptions, a form to add one (its
// secret is shown once, on the page that answers the form), each one's recent deliveries with
// status, attempts, response code and latency, and a "Send test" button.

type webhooksData struct {
	frame
	Subscriptions []webhookRow
	Kinds         []string
	Created       *webhooks.SubscriptionWithSecret // just created: the only time its secret shows
	Form          webhooks.NewSubscription
	Err           *fieldErrors
}

type webhookRow struct {
	Subscription webhooks.Subscription
	Deliveries   []webhooks.Delivery
}

func (s *Server) webhooksPage(c echo.Context) error {
	return s.renderWebhooks(c, http.StatusOK, webhooksData{})
}

func (s *Server) renderWebhooks(c echo.Context, status int, d webhooksData) error {
	if s.opts.Webhooks == nil {
		return s.errorPage(c, http.StatusNotFound, "Outgoing webhooks are not served by this console.")
	}
	ctx := c.Request().Context()
	project := c.Param("project")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	subs, err := s.opts.Webhooks.List(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	d.frame, d.Kinds = s.baseFrame(c, "Webhooks", "webhooks", p), webhooks.Kinds()
	for _, sub := range subs {
		log, err := s.opts.Webhooks.Deliveries(ctx, project, sub.ID, 10)
		if err != nil {
			return s.fail(c, err)
		}
		d.Subscriptions = append(d.Subscriptions, webhookRow{Subscription: sub, Deliveries: log})
	}
	return s.render(c, status, "webhooks", d)
}

func (s *Server) createWebhook(c echo.Context) error {
	if s.opts.Webhooks == nil {
		return s.errorPage(c, http.StatusNotFound, "Outgoing webhooks are not served by this console.")
	}
	form, _ := c.FormParams()
	n := webhooks.NewSubscription{URL: strings.TrimSpace(c.FormValue("url")), Kinds: form["kinds"],
		Format: c.FormValue("format"), Description: strings.TrimSpace(c.FormValue("description"))}
	created, err := s.opts.Webhooks.Create(c.Request().Context(), c.Param("project"), n, sessionOf(c).User.Actor())
	if fe := asFieldError(err); fe != nil {
		return s.renderWebhooks(c, http.StatusBadRequest, webhooksData{Form: n, Err: fe})
	}
	if err != nil {
		return s.fail(c, err)
	}
	return s.renderWebhooks(c, http.StatusCreated, webhooksData{Created: &created})
}

func (s *Server) testWebhook(c echo.Context) error {
	if s.opts.Webhooks == nil {
		return s.errorPage(c, http.StatusNotFound, "Outgoing webhooks are not served by this console.")
	}
	project := c.Param("project")
	if _, err := s.opts.Webhooks.SendTest(c.Request().Context(), project, c.Param("id"), sessionOf(c).User.Actor()); err != nil {
		return s.fail(c, err)
	}
	if s.opts.WakeWebhooks != nil {
		s.opts.WakeWebhooks()
	}
	return c.Redirect(http.StatusSeeOther, "/projects/"+url.PathEscape(project)+"/webhooks?done="+
		url.QueryEscape("Test delivery queued: reload to see its outcome in the log."))
}

func (s *Server) deleteWebhook(c echo.Context) error {
	if s.opts.Webhooks == nil {
		return s.errorPage(c, http.StatusNotFound, "Outgoing webhooks are not served by this console.")
	}
	project := c.Param("project")
	if err := s.opts.Webhooks.Delete(c.Request().Context(), project, c.Param("id")); err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, "/projects/"+url.PathEscape(project)+"/webhooks?done="+url.QueryEscape("Subscription deleted."))
}
