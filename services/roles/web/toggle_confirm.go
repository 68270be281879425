package web

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
)

// A switch of a production-coloured environment (in the flags list and on the flag page) does
// not toggle at once: the first post answers the diff of the change and what the environment
// will serve, with a reason field and a confirm button; the confirmation (confirm=yes) carries
// the version the switch was rendered from, so a change made meanwhile is still a conflict.
// With htmx the confirmation replaces the switch in place; without script it is a page.

type toggleConfirmData struct {
	frame
	Switch  switchData
	Diff    []diffLine
	Serves  string // what the environment serves after the change, in words
	Partial bool
}

func (s *Server) confirmToggle(c echo.Context, f *domain.Flag, env *domain.Environment, on bool) error {
	cur := f.ConfigFor(env.Key).Targeting
	next := cur
	next.On = on
	sw := switchData{Project: f.Project, Flag: f.Key, Environment: env.Key, EnvironmentName: env.Name, On: cur.On, CanEdit: true,
		Production: true, Version: versionField(c), CSRF: sessionOf(c).CSRF}
	if sw.Version == AnyVersion {
		sw.Version = f.Version
	}
	d := toggleConfirmData{Switch: sw, Diff: valueDiff(map[string]any{"on": cur.On}, map[string]any{"on": next.On}), Serves: servesInWords(f, next)}
	if c.Request().Header.Get("HX-Request") != "" {
		d.Partial = true
		return s.renderPartial(c, http.StatusOK, "flags", "toggle-confirm", d)
	}
	p, err := s.cmds.Project(c.Request().Context(), f.Project)
	if err != nil {
		return s.fail(c, err)
	}
	d.frame = s.baseFrame(c, "Confirm: "+f.Name+" in "+env.Name, "flags", p)
	return s.render(c, http.StatusOK, "flags", flagsData{frame: d.frame, Confirm: &d})
}

// servesInWords says what a targeting serves, for the confirmation.
func servesInWords(f *domain.Flag, t domain.Targeting) string {
	if !t.On {
		return fmt.Sprintf("Everyone gets the off variation %q.", t.OffVariation)
	}
	what := "the default"
	if t.Default.Split != nil {
		what = "the default percentage split"
	} else if t.Default.Variation != "" {
		what = fmt.Sprintf("the default variation %q", t.Default.Variation)
	}
	return fmt.Sprintf("The targeting serves: %d individual target lists, %d rules, then %s.", len(t.Targets), len(t.Rules), what)
}

// switchPartial renders one switch again (the confirmation's Cancel).
func (s *Server) switchPartial(c echo.Context) error {
	ctx := c.Request().Context()
	project, key, env := c.Param("project"), c.Param("flag"), c.Param("environment")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	e := p.Environments[env]
	if e == nil {
		return s.errorPage(c, http.StatusNotFound, fmt.Sprintf("There is no environment %q in this project.", env))
	}
	f, err := s.cmds.Flag(ctx, project, key)
	if err != nil {
		return s.fail(c, err)
	}
	return s.renderPartial(c, http.StatusOK, "flags", "switch", switchData{Project: project, Flag: key, Environment: env, EnvironmentName: e.Name,
		On: f.ConfigFor(env).Targeting.On, CanEdit: canEdit(c) && !f.Archived, Production: isProduction(e), Version: f.Version, CSRF: sessionOf(c).CSRF})
}
