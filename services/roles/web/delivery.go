package web

// Progressive delivery pages (issue 17, part B): scheduled changes, rollouts, auto-ops rules and
// webhook triggers. Every change runs a services/app command through DeliveryCommands, attributed
// to the signed-in person with the reason typed in the form, like the flag pages.
//
// Times: the server stores and compares UTC. A person types a due time in a datetime-local input
// in their own time zone; the form carries that zone (an IANA name such as Europe/Paris, filled in
// by the console's script from the browser, or an offset such as +02:00, typed by hand without
// script), and the server converts (parseLocalTime). Lists show UTC, and the script adds the
// person's local time beside it.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones for datetime pickers on hosts without /usr/share/zoneinfo (scratch images)

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/app/identity"
)

// HooksPath is where the api role serves webhook triggers (POST, secret in a header): the same
// path as console.HooksPath, repeated here because no services package but the composition root
// imports the REST console.
const HooksPath = "/hooks/v1/triggers/"

const deliveryListSize = 100

func init() {
	pageNames = append(pageNames, "schedules", "schedule", "rollouts", "rollout", "autoops", "autoopsrule", "triggers")
	funcs["localInput"] = localInput
	funcs["describeChange"] = describeChange
}

// registerDelivery adds the delivery pages to the project group.
func (s *Server) registerDelivery(g *echo.Group) {
	view, edit := s.member(identity.RoleViewer), s.member(identity.RoleEditor)
	g.GET("/:project/schedules", s.schedulesPage, view)
	g.POST("/:project/schedules", s.createSchedule, edit)
	g.GET("/:project/schedules/:id", s.schedulePage, view)
	g.POST("/:project/schedules/:id", s.editSchedule, edit)
	g.POST("/:project/schedules/:id/cancel", s.cancelSchedule, edit)
	g.GET("/:project/rollouts", s.rolloutsPage, view)
	g.POST("/:project/rollouts", s.createRollout, edit)
	g.GET("/:project/rollouts/:id", s.rolloutPage, view)
	g.POST("/:project/rollouts/:id/:action", s.rolloutAction, edit)
	g.GET("/:project/autoops", s.autoOpsPage, view)
	g.POST("/:project/autoops", s.createAutoOps, edit)
	g.GET("/:project/autoops/:id", s.autoOpsRulePage, view)
	g.POST("/:project/autoops/:id/:action", s.autoOpsAction, edit)
	g.GET("/:project/triggers", s.triggersPage, view)
	g.POST("/:project/triggers", s.createTrigger, edit)
	g.POST("/:project/triggers/:id/:action", s.triggerAction, edit)
}

// deliveryActorName names the system actors of delivery (see docs/application-layer.md) for people.
func deliveryActorName(actor string) (string, bool) {
	for _, a := range []struct{ prefix, name string }{
		{"trigger:", "webhook trigger "}, {"system:schedule/", "scheduled change "},
		{"system:rollout/", "rollout "}, {"system:autoops/", "auto-ops rule "},
	} {
		if id, ok := strings.CutPrefix(actor, a.prefix); ok {
			return a.name + id, true
		}
	}
	return "", false
}

// ---- time zones ----

// parseLocalTime reads a datetime-local value ("2026-12-03T18:30", seconds optional) in the zone
// the form names: an IANA name, "UTC", or an offset ("+02:00", "-0530", "UTC+2"). Errors name
// the field that is wrong.
func parseLocalTime(value, zone string) (time.Time, error) {
	value, zone = strings.TrimSpace(value), strings.TrimSpace(zone)
	if value == "" {
		return time.Time{}, domain.Invalid("at", "pick a date and time")
	}
	loc, err := parseZone(zone)
	if err != nil {
		return time.Time{}, err
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, value, loc); err == nil {
			return t.UTC(), nil
		}
	}
	if t, err := time.Parse(time.RFC3339, value); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, domain.Invalid("at", "%q is not a date and time such as 2026-12-24T18:30", value)
}

// parseZone reads a time zone: empty or "UTC" is UTC, an offset is a fixed zone, anything else an
// IANA name.
func parseZone(zone string) (*time.Location, error) {
	z := strings.TrimPrefix(strings.TrimPrefix(zone, "UTC"), "GMT")
	if z == "" || strings.EqualFold(zone, "Z") {
		return time.UTC, nil
	}
	if z[0] == '+' || z[0] == '-' {
		sign := 1
		if z[0] == '-' {
			sign = -1
		}
		digits := strings.ReplaceAll(z[1:], ":", "")
		var h, m int
		var err error
		switch len(digits) {
		case 1, 2:
			h, err = strconv.Atoi(digits)
		case 3, 4:
			h, err = strconv.Atoi(digits[:len(digits)-2])
			if err == nil {
				m, err = strconv.Atoi(digits[len(digits)-2:])
			}
		default:
			err = fmt.Errorf("bad length")
		}
		if err != nil || h > 14 || m > 59 {
			return nil, domain.Invalid("tz", "%q is not a UTC offset such as +02:00", zone)
		}
		return time.FixedZone("UTC"+z, sign*(h*3600+m*60)), nil
	}
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" {
		return nil, domain.Invalid("tz", "%q is not a time zone such as Europe/Paris or +02:00", zone)
	}
	return loc, nil
}

// localInput is t as a datetime-local value in UTC (the script moves it into the person's zone).
func localInput(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04")
}

// ---- shared ----

type deliveryFrame struct {
	frame
	Tab   string   // which delivery page is current
	Flags []string // the project's live flag keys, for pickers
	Err   *fieldErrors
}

// deliveryBase loads the project and its flag keys for a delivery page.
func (s *Server) deliveryBase(c echo.Context, title, tab string) (deliveryFrame, error) {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return deliveryFrame{}, err
	}
	keys, err := s.cmds.FlagKeys(ctx, p.Key)
	if err != nil {
		return deliveryFrame{}, err
	}
	return deliveryFrame{frame: s.baseFrame(c, title, "delivery", p), Tab: tab, Flags: keys}, nil
}

// deliveryURL is the address of a delivery page of a project, with a flash message.
func deliveryURL(project, path, done string) string {
	u := "/projects/" + url.PathEscape(project) + "/" + path
	if done != "" {
		u += "?done=" + url.QueryEscape(done)
	}
	return u
}

// refuse shows a command's refusal: field errors back on the form (rerender), anything else as
// an error page.
func (s *Server) refuse(c echo.Context, err error, rerender func(*fieldErrors) error) error {
	if fe := asFieldError(err); fe != nil {
		return rerender(fe)
	}
	if domain.ErrorCode(err) == domain.EConflict {
		return s.errorPage(c, http.StatusConflict, domain.ErrorMessage(err)+" Reload the page to see the current state.")
	}
	return s.fail(c, err)
}

func envName(p *domain.Project, key string) string {
	if p != nil && p.Environments[key] != nil {
		return p.Environments[key].Name
	}
	return key
}

// ---- scheduled changes ----

type scheduleForm struct {
	Flag, Environment, Kind, Variation, At, TZ, Reason string
	UTC                                                bool // At is the stored UTC time (the script moves it into the person's zone)
}

type schedulesData struct {
	deliveryFrame
	Schedules []*domain.ScheduledChange
	Statuses  []string
	Status    string
	Next      string
	Form      scheduleForm
}

func (s *Server) schedulesPage(c echo.Context) error {
	return s.showSchedules(c, http.StatusOK, scheduleForm{Kind: "on", Environment: c.QueryParam("env"), Flag: c.QueryParam("flag")}, nil)
}

func (s *Server) showSchedules(c echo.Context, status int, form scheduleForm, fe *fieldErrors) error {
	d, err := s.deliveryBase(c, "Scheduled changes", "schedules")
	if err != nil {
		return s.fail(c, err)
	}
	d.Err = fe
	st := c.QueryParam("status")
	list, next, err := s.cmds.Schedules(c.Request().Context(), delivery.ListQuery{Project: d.Project.Key, Status: st,
		Flag: c.QueryParam("flag"), Cursor: c.QueryParam("cursor"), Limit: deliveryListSize})
	if err != nil {
		if domain.ErrorCode(err) == domain.EInvalid {
			return s.errorPage(c, http.StatusBadRequest, domain.ErrorMessage(err))
		}
		return s.fail(c, err)
	}
	if form.Environment == "" {
		form.Environment = d.Environment
	}
	return s.render(c, status, "schedules", schedulesData{deliveryFrame: d, Schedules: list, Status: st,
		Statuses: []string{string(domain.ScheduleStatusPending), string(domain.ScheduleStatusApplied), string(domain.ScheduleStatusFailed), string(domain.ScheduleStatusCancelled)}, Next: next, Form: form})
}

func scheduleFormOf(c echo.Context) scheduleForm {
	return scheduleForm{Flag: strings.TrimSpace(c.FormValue("flag")), Environment: c.FormValue("environment"), Kind: c.FormValue("kind"),
		Variation: strings.TrimSpace(c.FormValue("variation")), At: c.FormValue("at"), TZ: c.FormValue("tz"), Reason: c.FormValue(reasonField)}
}

// changeSpec reads what a schedule form asks for: turn on, turn off, or serve a variation by
// default. Targeting changes are scheduled through the API (they need the whole targeting).
func (f scheduleForm) changeSpec() (app.ChangeSpec, error) {
	at, err := parseLocalTime(f.At, f.TZ)
	if err != nil {
		return app.ChangeSpec{}, err
	}
	spec := app.ChangeSpec{At: at}
	switch f.Kind {
	case "on", "off":
		on := f.Kind == "on"
		spec.Kind, spec.On = domain.ChangeToggle, &on
	case "default":
		if f.Variation == "" {
			return spec, domain.Invalid("default.variation", "name the variation to serve by default")
		}
		spec.Kind, spec.Default = domain.ChangeDefault, &domain.Serve{Variation: f.Variation}
	default:
		return spec, domain.Invalid("kind", "choose what the change does")
	}
	return spec, nil
}

func (s *Server) createSchedule(c echo.Context) error {
	form := scheduleFormOf(c)
	rerender := func(fe *fieldErrors) error { return s.showSchedules(c, http.StatusBadRequest, form, fe) }
	spec, err := form.changeSpec()
	if err != nil {
		return s.refuse(c, err, rerender)
	}
	sc, err := s.cmds.ScheduleChange(c.Request().Context(), meta(c), app.ScheduleChange{Project: c.Param("project"), Flag: form.Flag,
		Env: form.Environment, Change: spec})
	if err != nil {
		return s.refuse(c, err, rerender)
	}
	return c.Redirect(http.StatusSeeOther, deliveryURL(sc.Project, "schedules", fmt.Sprintf("Scheduled: %s, due %s.", describeChange(sc), sc.At.UTC().Format("2006-01-02 15:04 UTC"))))
}

type scheduleData struct {
	deliveryFrame
	Schedule *domain.ScheduledChange
	Form     scheduleForm
}

func (s *Server) schedulePage(c echo.Context) error {
	return s.showSchedule(c, http.StatusOK, nil, nil)
}

func (s *Server) showSchedule(c echo.Context, status int, form *scheduleForm, fe *fieldErrors) error {
	d, err := s.deliveryBase(c, "Scheduled change", "schedules")
	if err != nil {
		return s.fail(c, err)
	}
	d.Err = fe
	sc, err := s.cmds.Schedule(c.Request().Context(), d.Project.Key, c.Param("id"))
	if err != nil {
		return s.fail(c, err)
	}
	if form == nil {
		f := scheduleForm{Flag: sc.Flag, Environment: sc.Environment, At: localInput(sc.At), TZ: "UTC", UTC: true}
		switch {
		case sc.Kind == domain.ChangeToggle && sc.On:
			f.Kind = "on"
		case sc.Kind == domain.ChangeToggle:
			f.Kind = "off"
		case sc.Kind == domain.ChangeDefault && sc.Default != nil:
			f.Kind, f.Variation = "default", sc.Default.Variation
		default:
			f.Kind = string(sc.Kind)
		}
		form = &f
	}
	return s.render(c, status, "schedule", scheduleData{deliveryFrame: d, Schedule: sc, Form: *form})
}

func (s *Server) editSchedule(c echo.Context) error {
	form := scheduleFormOf(c)
	rerender := func(fe *fieldErrors) error { return s.showSchedule(c, http.StatusBadRequest, &form, fe) }
	spec, err := form.changeSpec()
	if err != nil {
		return s.refuse(c, err, rerender)
	}
	project, id := c.Param("project"), c.Param("id")
	sc, err := s.cmds.EditSchedule(c.Request().Context(), meta(c), versionField(c), app.EditSchedule{Project: project, ID: id, Change: spec})
	if err != nil {
		return s.refuse(c, err, rerender)
	}
	return c.Redirect(http.StatusSeeOther, deliveryURL(project, "schedules/"+url.PathEscape(id), fmt.Sprintf("Saved: %s, due %s.", describeChange(sc), sc.At.UTC().Format("2006-01-02 15:04 UTC"))))
}

func (s *Server) cancelSchedule(c echo.Context) error {
	project, id := c.Param("project"), c.Param("id")
	sc, err := s.cmds.CancelSchedule(c.Request().Context(), meta(c), versionField(c), project, id)
	if err != nil {
		return s.refuse(c, err, func(fe *fieldErrors) error { return s.errorPage(c, http.StatusBadRequest, fe.Message) })
	}
	return c.Redirect(http.StatusSeeOther, deliveryURL(project, "schedules", "Cancelled the change of "+sc.Flag+" in "+sc.Environment+"."))
}

// describeChange says in words what a scheduled change does.
func describeChange(sc *domain.ScheduledChange) string {
	switch sc.Kind {
	case domain.ChangeToggle:
		return fmt.Sprintf("turn %s %s in %s", sc.Flag, onOff(sc.On), sc.Environment)
	case domain.ChangeDefault:
		if sc.Default != nil && sc.Default.Variation != "" {
			return fmt.Sprintf("serve %s by default for %s in %s", sc.Default.Variation, sc.Flag, sc.Environment)
		}
		return fmt.Sprintf("change the default split of %s in %s", sc.Flag, sc.Environment)
	}
	return fmt.Sprintf("replace the targeting of %s in %s", sc.Flag, sc.Environment)
}

// ---- rollouts ----

// rolloutTemplates are the plans a person picks from: the percents of each step.
var rolloutTemplates = []struct {
	Key, Name string
	Percents  []float64
}{
	{"standard", "Standard: 1%, 5%, 25%, 50%, 100%", domain.StandardRolloutPercents()},
	{"cautious", "Cautious: 1%, 2%, 5%, 10%, 25%, 50%, 75%, 100%", []float64{1, 2, 5, 10, 25, 50, 75, 100}},
	{"quick", "Quick: 10%, 50%, 100%", []float64{10, 50, 100}},
}

type rolloutForm struct {
	Flag, Environment, Variation, Other, Template, Percents, Every, Start, TZ, Reason string
}

type rolloutsData struct {
	deliveryFrame
	Rollouts  []*domain.Rollout
	Next      string
	Form      rolloutForm
	Templates any
}

func (s *Server) rolloutsPage(c echo.Context) error {
	return s.showRollouts(c, http.StatusOK, rolloutForm{Template: "standard", Every: "1h", Environment: c.QueryParam("env"), Flag: c.QueryParam("flag")}, nil)
}

func (s *Server) showRollouts(c echo.Context, status int, form rolloutForm, fe *fieldErrors) error {
	d, err := s.deliveryBase(c, "Rollouts", "rollouts")
	if err != nil {
		return s.fail(c, err)
	}
	d.Err = fe
	list, next, err := s.cmds.Rollouts(c.Request().Context(), delivery.ListQuery{Project: d.Project.Key, Flag: c.QueryParam("flag"),
		Cursor: c.QueryParam("cursor"), Limit: deliveryListSize})
	if err != nil {
		if domain.ErrorCode(err) == domain.EInvalid {
			return s.errorPage(c, http.StatusBadRequest, domain.ErrorMessage(err))
		}
		return s.fail(c, err)
	}
	// Newest first: ids are UUIDv7, so the list's id order is creation order.
	slices.Reverse(list)
	if form.Environment == "" {
		form.Environment = d.Environment
	}
	return s.render(c, status, "rollouts", rolloutsData{deliveryFrame: d, Rollouts: list, Next: next, Form: form, Templates: rolloutTemplates})
}

func (s *Server) createRollout(c echo.Context) error {
	form := rolloutForm{Flag: strings.TrimSpace(c.FormValue("flag")), Environment: c.FormValue("environment"), Variation: strings.TrimSpace(c.FormValue("variation")),
		Other: strings.TrimSpace(c.FormValue("other")), Template: c.FormValue("template"), Percents: c.FormValue("percents"),
		Every: strings.TrimSpace(c.FormValue("every")), Start: c.FormValue("start"), TZ: c.FormValue("tz"), Reason: c.FormValue(reasonField)}
	rerender := func(fe *fieldErrors) error { return s.showRollouts(c, http.StatusBadRequest, form, fe) }
	tpl := &app.RolloutTemplate{Every: form.Every}
	if strings.TrimSpace(form.Start) != "" {
		start, err := parseLocalTime(form.Start, form.TZ)
		if err != nil {
			if fe := asFieldError(err); fe != nil && fe.Field == "at" {
				fe.Field = "template.start"
			}
			return s.refuse(c, err, rerender)
		}
		tpl.Start = &start
	}
	switch form.Template {
	case "custom":
		for i, p := range strings.FieldsFunc(form.Percents, func(r rune) bool { return r == ',' || r == ' ' || r == '%' || r == ';' }) {
			v, err := strconv.ParseFloat(p, 64)
			if err != nil {
				return rerender(&fieldErrors{Field: "template.percents", Message: fmt.Sprintf("step %d: %q is not a percent", i+1, p)})
			}
			tpl.Percents = append(tpl.Percents, v)
		}
		if len(tpl.Percents) == 0 {
			return rerender(&fieldErrors{Field: "template.percents", Message: "type the percent of each step, e.g. 1, 10, 50, 100"})
		}
	default:
		i := slices.IndexFunc(rolloutTemplates, func(t struct {
			Key, Name string
			Percents  []float64
		}) bool {
			return t.Key == form.Template
		})
		if i < 0 {
			return rerender(&fieldErrors{Field: "template", Message: "choose a template"})
		}
		tpl.Percents = rolloutTemplates[i].Percents
	}
	r, err := s.cmds.CreateRollout(c.Request().Context(), meta(c), app.CreateRollout{Project: c.Param("project"), Flag: form.Flag, Env: form.Environment,
		Variation: form.Variation, Other: form.Other, Template: tpl})
	if err != nil {
		return s.refuse(c, err, rerender)
	}
	return c.Redirect(http.StatusSeeOther, deliveryURL(r.Project, "rollouts/"+url.PathEscape(r.ID), fmt.Sprintf("Rollout of %s in %s created with %d steps.", r.Flag, r.Environment, len(r.Steps))))
}

// stepView is one step of a rollout's timeline.
type stepView struct {
	Index   int
	Step    domain.RolloutStep
	Status  string // applied, skipped, next, pending, paused, cancelled (aborted before it)
	Explain string
}

type rolloutData struct {
	deliveryFrame
	Rollout *domain.Rollout
	Steps   []stepView
	EnvName string
}

// rolloutSteps says where each step of a rollout is.
func rolloutSteps(r *domain.Rollout) []stepView {
	out := make([]stepView, len(r.Steps))
	for i, st := range r.Steps {
		v := stepView{Index: i + 1, Step: st}
		switch {
		case i < r.Next && slices.Contains(r.AlreadyServed, i):
			v.Status, v.Explain = "skipped", "the default already served at least this share when the rollout was created"
		case i < r.Next && slices.Contains(r.Skipped, i):
			v.Status, v.Explain = "skipped", "a later step was already due when this one came up"
		case i < r.Next:
			v.Status = "applied"
		case r.Status == domain.RolloutStatusAborted:
			v.Status, v.Explain = "cancelled", "the rollout was aborted before this step"
		case i == r.Next && r.Status == domain.RolloutStatusPaused:
			v.Status, v.Explain = "paused", "applies once the rollout is resumed"
		case i == r.Next:
			v.Status = "next"
		default:
			v.Status = "pending"
		}
		out[i] = v
	}
	return out
}

func (s *Server) rolloutPage(c echo.Context) error {
	d, err := s.deliveryBase(c, "Rollout", "rollouts")
	if err != nil {
		return s.fail(c, err)
	}
	r, err := s.cmds.Rollout(c.Request().Context(), d.Project.Key, c.Param("id"))
	if err != nil {
		return s.fail(c, err)
	}
	return s.render(c, http.StatusOK, "rollout", rolloutData{deliveryFrame: d, Rollout: r, Steps: rolloutSteps(r), EnvName: envName(d.Project, r.Environment)})
}

func (s *Server) rolloutAction(c echo.Context) error {
	ctx := c.Request().Context()
	project, id, action := c.Param("project"), c.Param("id"), c.Param("action")
	m, expected := meta(c), versionField(c)
	var err error
	var done string
	switch action {
	case "pause":
		_, err = s.cmds.PauseRollout(ctx, m, expected, project, id)
		done = "Rollout paused."
	case "resume":
		_, err = s.cmds.ResumeRollout(ctx, m, expected, project, id)
		done = "Rollout resumed."
	case "abort":
		_, err = s.cmds.AbortRollout(ctx, m, expected, project, id)
		done = "Rollout aborted: the flag's default serve from before it is back."
	default:
		return s.errorPage(c, http.StatusNotFound, "There is no such action on a rollout.")
	}
	if err != nil {
		return s.refuse(c, err, func(fe *fieldErrors) error { return s.errorPage(c, http.StatusBadRequest, fe.Message) })
	}
	return c.Redirect(http.StatusSeeOther, deliveryURL(project, "rollouts/"+url.PathEscape(id), done))
}
