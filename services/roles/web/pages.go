package web

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/services/app/identity"
)

// ---- sign in and out ----

type loginData struct {
	frame
	Email, Next, Error string
	SSO, Passwords     bool // what the page offers
}

func (s *Server) home(c echo.Context) error {
	if sessionOf(c) == nil {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	return c.Redirect(http.StatusSeeOther, "/projects")
}

func (s *Server) loginPage(c echo.Context) error {
	if sessionOf(c) != nil {
		return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
	}
	return s.render(c, http.StatusOK, "login", s.loginData(loginData{frame: frame{Title: "Sign in", Flash: c.QueryParam("done")}, Next: c.QueryParam("next")}))
}

// loginData adds what the sign-in page offers: SSO, passwords, or both.
func (s *Server) loginData(d loginData) loginData {
	d.SSO, d.Passwords = s.opts.SSO != nil, !s.opts.NoLocalPasswords
	return d
}

// safeNext keeps a post-sign-in redirect on this site: a path, never another host.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/projects"
	}
	return next
}

func (s *Server) login(c echo.Context) error {
	email, password, next := strings.TrimSpace(c.FormValue("email")), c.FormValue("password"), c.FormValue("next")
	if s.opts.NoLocalPasswords {
		return s.render(c, http.StatusForbidden, "login", s.loginData(loginData{frame: frame{Title: "Sign in"}, Next: next,
			Error: "Passwords are turned off here: sign in with single sign-on."}))
	}
	ctx := c.Request().Context()
	// Limited per email (a guessing attack on one account) and per client address (one client
	// trying many accounts), in buckets every replica shares. A refused attempt never reaches
	// bcrypt.
	for _, key := range []string{"email:" + strings.ToLower(email), "ip:" + c.RealIP()} {
		wait, ok, err := s.logins.Allow(ctx, key)
		if err != nil {
			return s.fail(c, err)
		}
		if !ok {
			if err := s.people.RecordSignInRefused(ctx, email, c.RealIP(), "rate limited"); err != nil {
				return s.fail(c, err)
			}
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			return s.render(c, http.StatusTooManyRequests, "login", s.loginData(loginData{frame: frame{Title: "Sign in"}, Email: email, Next: next,
				Error: fmt.Sprintf("Too many sign-in attempts. Try again in %d seconds.", int(wait.Seconds())+1)}))
		}
	}
	u, err := s.people.Authenticate(ctx, email, password)
	if domain.ErrorCode(err) == domain.EUnauthorized {
		if err := s.people.RecordSignInRefused(ctx, email, c.RealIP(), "unknown email or wrong password"); err != nil {
			return s.fail(c, err)
		}
		return s.render(c, http.StatusUnauthorized, "login", s.loginData(loginData{frame: frame{Title: "Sign in"}, Email: email, Next: next,
			Error: "Unknown email or wrong password."}))
	}
	if err != nil {
		return s.fail(c, err)
	}
	secret, sess, err := s.people.StartSession(c.Request().Context(), u, s.opts.Sessions, c.Request().UserAgent())
	if err != nil {
		return s.fail(c, err)
	}
	c.SetCookie(&http.Cookie{Name: s.cookieName(c), Value: secret, Path: "/", HttpOnly: true, Secure: c.IsTLS(),
		SameSite: http.SameSiteLaxMode, Expires: sess.ExpiresAt})
	return c.Redirect(http.StatusSeeOther, safeNext(next))
}

func (s *Server) logout(c echo.Context) error {
	if ck, err := c.Cookie(s.cookieName(c)); err == nil {
		if err := s.people.EndSession(c.Request().Context(), ck.Value); err != nil {
			return s.fail(c, err)
		}
	}
	c.SetCookie(&http.Cookie{Name: s.cookieName(c), Value: "", Path: "/", HttpOnly: true, Secure: c.IsTLS(), SameSite: http.SameSiteLaxMode, MaxAge: -1})
	return c.Redirect(http.StatusSeeOther, "/login")
}

// ---- first run ----

type setupData struct {
	frame
	Email, Name string
	Err         *fieldErrors
}

// setupPage lets the holder of an instance admin API token (the bootstrap token printed on the
// first start) create the first admin person, while there is none. Afterwards it is gone: admins
// are made by admins or by `vexil users create --admin` at the database.
func (s *Server) setupPage(c echo.Context) error {
	if done, err := s.people.AnyInstanceAdmin(c.Request().Context()); err != nil || done {
		if err != nil {
			return s.fail(c, err)
		}
		return s.errorPage(c, http.StatusNotFound, "This installation has an admin already: sign in, or ask an admin.")
	}
	return s.render(c, http.StatusOK, "setup", setupData{frame: frame{Title: "First admin"}})
}

func (s *Server) setup(c echo.Context) error {
	ctx := c.Request().Context()
	if done, err := s.people.AnyInstanceAdmin(ctx); err != nil || done {
		if err != nil {
			return s.fail(c, err)
		}
		return s.errorPage(c, http.StatusNotFound, "This installation has an admin already: sign in, or ask an admin.")
	}
	d := setupData{frame: frame{Title: "First admin"}, Email: strings.TrimSpace(c.FormValue("email")), Name: strings.TrimSpace(c.FormValue("name"))}
	// The token is a secret worth guessing: the sign-in limiter applies to it as well.
	wait, ok, err := s.logins.Allow(ctx, "setup:"+c.RealIP())
	if err != nil {
		return s.fail(c, err)
	}
	if !ok {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		d.Err = &fieldErrors{Field: "token", Message: "Too many attempts. Try again later."}
		return s.render(c, http.StatusTooManyRequests, "setup", d)
	}
	ok, err = s.cmds.InstanceAdminToken(ctx, strings.TrimSpace(c.FormValue("token")))
	if err != nil {
		return s.fail(c, err)
	}
	if !ok {
		d.Err = &fieldErrors{Field: "token", Message: "This is not an unrestricted admin API token."}
		return s.render(c, http.StatusForbidden, "setup", d)
	}
	u, err := s.people.CreateUser(ctx, identity.NewUser{Email: d.Email, DisplayName: d.Name, Password: c.FormValue("password"),
		InstanceAdmin: true, CreatedBy: "setup:admin-token"})
	if fe := asFieldError(err); fe != nil {
		d.Err = fe
		return s.render(c, http.StatusBadRequest, "setup", d)
	}
	if err != nil {
		return s.fail(c, err)
	}
	s.log.Info("first admin created with the admin token", "user", u.ID)
	return c.Redirect(http.StatusSeeOther, "/login?done="+url.QueryEscape("Admin created: sign in."))
}

// ---- projects ----

type projectsData struct {
	frame
	Projects []projectRow
}

type projectRow struct {
	catalog.ProjectSummary
	Role string
}

func (s *Server) projectsPage(c echo.Context) error {
	sess := sessionOf(c)
	all, err := s.cmds.Projects(c.Request().Context())
	if err != nil {
		return s.fail(c, err)
	}
	mine, err := s.people.Projects(c.Request().Context(), sess.User)
	if err != nil {
		return s.fail(c, err)
	}
	var rows []projectRow
	for _, p := range all {
		role := mine[p.Key]
		if sess.User.InstanceAdmin {
			role = identity.RoleAdmin
		}
		if role != "" {
			rows = append(rows, projectRow{ProjectSummary: p, Role: role})
		}
	}
	if len(rows) == 1 {
		return c.Redirect(http.StatusSeeOther, "/projects/"+url.PathEscape(rows[0].Key)+"/flags")
	}
	return s.render(c, http.StatusOK, "projects", projectsData{frame: frame{Title: "Projects", User: &sess.User, CSRF: sess.CSRF, Nav: "projects"}, Projects: rows})
}

func (s *Server) projectHome(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, "/projects/"+url.PathEscape(c.Param("project"))+"/flags")
}

// sortedEnvironments orders a project's environments by creation, then key.
func sortedEnvironments(p *domain.Project) []*domain.Environment {
	if p == nil {
		return nil
	}
	envs := make([]*domain.Environment, 0, len(p.Environments))
	for _, e := range p.Environments {
		envs = append(envs, e)
	}
	slices.SortFunc(envs, func(a, b *domain.Environment) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return envs
}

func defaultEnvironment(p *domain.Project) string {
	if p.Environments["production"] != nil {
		return "production"
	}
	if envs := sortedEnvironments(p); len(envs) > 0 {
		return envs[0].Key
	}
	return ""
}

// isProduction tells environments whose changes are confirmed with a diff first: coloured red
// (the console's production colour), or, with no colour, keyed production or prod.
func isProduction(e *domain.Environment) bool {
	color := strings.ToLower(strings.TrimSpace(e.Color))
	switch {
	case color == "red" || color == "crimson" || color == "darkred":
		return true
	case strings.HasPrefix(color, "#") && (len(color) == 7 || len(color) == 4):
		hex := color[1:]
		if len(hex) == 3 {
			hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
		}
		r, err1 := strconv.ParseUint(hex[0:2], 16, 8)
		g, err2 := strconv.ParseUint(hex[2:4], 16, 8)
		b, err3 := strconv.ParseUint(hex[4:6], 16, 8)
		return err1 == nil && err2 == nil && err3 == nil && r >= 160 && g < 110 && b < 110
	case color == "":
		return e.Key == "production" || e.Key == "prod"
	}
	return false
}

// ---- flags list ----

const flagsPageSize = 50

type flagsData struct {
	frame
	Flags            []flagRow
	Query, Tag       string
	Archived         bool
	Next, Prev       string
	PageEnvironments []*domain.Environment
	// Confirm, without script, is the confirmation of a production switch instead of the list.
	Confirm *toggleConfirmData
}

type flagRow struct {
	Flag       *domain.Flag
	Switches   []switchData
	LastChange *audit.Entry
	LastActor  string
}

// switchData is one per-environment on/off switch.
type switchData struct {
	Project, Flag, Environment, EnvironmentName string
	On, CanEdit, Production                     bool
	Version                                     int64
	CSRF                                        string
}

func (s *Server) flagsPage(c echo.Context) error {
	ctx := c.Request().Context()
	project := c.Param("project")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	archived := c.QueryParam("archived") == "true"
	q := catalog.ListQuery{Project: project, Search: strings.TrimSpace(c.QueryParam("q")), Tag: strings.TrimSpace(c.QueryParam("tag")),
		Archived: &archived, Cursor: c.QueryParam("cursor"), Limit: flagsPageSize}
	if len(q.Search) > 200 {
		return s.errorPage(c, http.StatusBadRequest, "The search is longer than 200 characters.")
	}
	flags, next, err := s.cmds.Flags(ctx, q)
	if domain.ErrorCode(err) == domain.EInvalid {
		return s.errorPage(c, http.StatusBadRequest, domain.ErrorMessage(err))
	}
	if err != nil {
		return s.fail(c, err)
	}
	keys := make([]string, len(flags))
	for i, f := range flags {
		keys[i] = f.Key
	}
	last, err := s.cmds.LastChanges(ctx, project, keys)
	if err != nil {
		return s.fail(c, err)
	}
	names, err := s.people.DisplayNames(ctx)
	if err != nil {
		return s.fail(c, err)
	}
	f := s.baseFrame(c, "Flags", "flags", p)
	envs := sortedEnvironments(p)
	data := flagsData{frame: f, Query: q.Search, Tag: q.Tag, Archived: archived, Next: next, PageEnvironments: envs}
	for _, fl := range flags {
		row := flagRow{Flag: fl}
		if e, ok := last[fl.Key]; ok {
			row.LastChange, row.LastActor = &e, actorName(e.Actor, names)
		}
		for _, e := range envs {
			row.Switches = append(row.Switches, switchData{Project: project, Flag: fl.Key, Environment: e.Key, EnvironmentName: e.Name,
				On: fl.ConfigFor(e.Key).Targeting.On, CanEdit: f.CanEdit && !fl.Archived, Production: isProduction(e), Version: fl.Version, CSRF: f.CSRF})
		}
		data.Flags = append(data.Flags, row)
	}
	return s.render(c, http.StatusOK, "flags", data)
}

// actorName names an actor for people: a person's display name, else what the actor says.
func actorName(actor string, names map[string]string) string {
	if id, ok := strings.CutPrefix(actor, identity.ActorPrefix); ok {
		if n, ok := names[id]; ok {
			return n
		}
	}
	if id, ok := strings.CutPrefix(actor, "token:"); ok {
		return "API token " + id
	}
	if n, ok := deliveryActorName(actor); ok {
		return n
	}
	return actor
}

// toggle flips a flag in one environment: from the list's switches (htmx swaps the switch) or the
// flag page (a form post that returns to the page).
func (s *Server) toggle(c echo.Context) error {
	ctx := c.Request().Context()
	project, key, env := c.Param("project"), c.Param("flag"), c.Param("environment")
	on := c.FormValue("on") == "true"
	expected := versionField(c)
	if c.FormValue("confirm") != "yes" {
		// A production-coloured environment shows the change and asks first (toggle_confirm.go).
		p, err := s.cmds.Project(ctx, project)
		if err != nil {
			return s.fail(c, err)
		}
		if e := p.Environments[env]; e != nil && isProduction(e) {
			cur, err := s.cmds.Flag(ctx, project, key)
			if err != nil {
				return s.fail(c, err)
			}
			return s.confirmToggle(c, cur, e, on)
		}
	}
	f, err := s.cmds.Toggle(ctx, meta(c), project, key, env, expected, on)
	if err != nil {
		if domain.ErrorCode(err) == domain.EConflict {
			return s.errorPage(c, http.StatusConflict, s.conflictMessage(c, project, key, expected))
		}
		return s.fail(c, err)
	}
	if c.Request().Header.Get("HX-Request") != "" {
		p, err := s.cmds.Project(ctx, project)
		if err != nil {
			return s.fail(c, err)
		}
		e := p.Environments[env]
		return s.renderPartial(c, http.StatusOK, "flags", "switch", switchData{Project: project, Flag: key, Environment: env, EnvironmentName: e.Name,
			On: f.ConfigFor(env).Targeting.On, CanEdit: true, Production: isProduction(e), Version: f.Version, CSRF: sessionOf(c).CSRF})
	}
	return c.Redirect(http.StatusSeeOther, flagURL(project, key)+"?done="+url.QueryEscape(fmt.Sprintf("Turned %s in %s.", onOff(on), env)))
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// versionField reads the version a form was rendered from: the If-Match of the console.
func versionField(c echo.Context) int64 {
	v, err := strconv.ParseInt(c.FormValue("version"), 10, 64)
	if err != nil || v < 0 {
		return AnyVersion
	}
	return v
}

// conflictMessage names who changed the flag since the version the person saw.
func (s *Server) conflictMessage(c echo.Context, project, key string, since int64) string {
	who := s.changesSince(c, project, key, since)
	if len(who) == 0 {
		return "This flag was changed meanwhile. Reload to see the current state."
	}
	return "This flag was changed by " + strings.Join(who, ", ") + " meanwhile. Reload to see the current state."
}

// changesSince lists the people (display names) who changed a flag after version since.
func (s *Server) changesSince(c echo.Context, project, key string, since int64) []string {
	ctx := c.Request().Context()
	entries, _, err := s.cmds.Audit(ctx, audit.Query{Project: project, EntityKind: "flag", EntityKey: key, Limit: 50})
	if err != nil {
		return nil
	}
	names, _ := s.people.DisplayNames(ctx)
	var who []string
	for _, e := range entries {
		if e.Version > since {
			if n := actorName(e.Actor, names); !slices.Contains(who, n) {
				who = append(who, n)
			}
		}
	}
	return who
}

func flagURL(project, flag string) string {
	return "/projects/" + url.PathEscape(project) + "/flags/" + url.PathEscape(flag)
}

// ---- new flag ----

type newFlagData struct {
	frame
	Key, Name, Description, Tags, Type, Variations string
	Err                                            *fieldErrors
}

func (s *Server) newFlagPage(c echo.Context) error {
	p, err := s.cmds.Project(c.Request().Context(), c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	return s.render(c, http.StatusOK, "newflag", newFlagData{frame: s.baseFrame(c, "New flag", "flags", p), Type: "boolean"})
}

func (s *Server) createFlag(c echo.Context) error {
	ctx := c.Request().Context()
	project := c.Param("project")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	d := newFlagData{frame: s.baseFrame(c, "New flag", "flags", p), Key: strings.TrimSpace(c.FormValue("key")), Name: strings.TrimSpace(c.FormValue("name")),
		Description: strings.TrimSpace(c.FormValue("description")), Tags: c.FormValue("tags"), Type: c.FormValue("type"), Variations: c.FormValue("variations")}
	in := domain.NewFlag{Project: project, Key: d.Key, Name: d.Name, Description: d.Description, Tags: splitTags(d.Tags),
		Type: domain.FlagType(d.Type), ClientSide: c.FormValue("client_side") == "true"}
	if strings.TrimSpace(d.Variations) != "" {
		vs, err := parseVariations(in.Type, d.Variations)
		if err != nil {
			d.Err = asFieldError(err)
			return s.render(c, http.StatusBadRequest, "newflag", d)
		}
		in.Variations = vs
	}
	f, err := s.cmds.CreateFlag(ctx, meta(c), in)
	if fe := asFieldError(err); fe != nil {
		d.Err = fe
		return s.render(c, httpStatus(err), "newflag", d)
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, flagURL(project, f.Key)+"?done="+url.QueryEscape("Flag created."))
}

func splitTags(s string) []string {
	var out []string
	for t := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		out = append(out, t)
	}
	return out
}

// parseVariations reads variations typed one a line as key=value; the value is JSON for number
// and json flags, text for string flags, true/false for boolean ones.
func parseVariations(t domain.FlagType, text string) ([]domain.Variation, error) {
	var out []domain.Variation
	i := 0
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		field := fmt.Sprintf("variations[%d]", i)
		if !ok {
			return nil, domain.Invalid(field, "line %q: write each variation as key=value", line)
		}
		key, raw = strings.TrimSpace(key), strings.TrimSpace(raw)
		var v any
		switch t {
		case domain.FlagString:
			v = raw
		default:
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				return nil, domain.Invalid(field+".value", "variation %q: the value is not valid JSON: %v", key, err)
			}
		}
		out = append(out, domain.Variation{Key: key, Value: v})
		i++
	}
	return out, nil
}

func variationsText(t domain.FlagType, vs []domain.Variation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(v.Key)
		b.WriteString("=")
		if s, ok := v.Value.(string); ok && t == domain.FlagString {
			b.WriteString(s)
		} else {
			raw, _ := json.Marshal(v.Value)
			b.Write(raw)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// asFieldError is a validation error or conflict that names a field, else nil.
func asFieldError(err error) *fieldErrors {
	var de *domain.Error
	if errors.As(err, &de) && (de.Code == domain.EInvalid || de.Code == domain.EConflict && de.Field != "") {
		return &fieldErrors{Field: de.Field, Message: de.Message}
	}
	return nil
}

func httpStatus(err error) int {
	switch domain.ErrorCode(err) {
	case domain.EConflict:
		return http.StatusConflict
	case domain.EInvalid:
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// ---- flag page ----

type flagData struct {
	frame
	Flag           *domain.Flag
	Switches       []switchData
	VariationsText string
	Err            *fieldErrors
	Tags           string
	Live           liveData
	// LastChange is the flag's newest audit entry, by LastActor (a person, a trigger, the scheduler).
	LastChange *audit.Entry
	LastActor  string
	Pending    []*domain.ChangeRequest // open and approved change requests of the flag
}

type liveData struct {
	Project, Flag string
	Version       int64
}

func (s *Server) flagPage(c echo.Context) error {
	return s.showFlag(c, http.StatusOK, nil, nil)
}

func (s *Server) showFlag(c echo.Context, status int, fe *fieldErrors, typed *flagData) error {
	ctx := c.Request().Context()
	project, key := c.Param("project"), c.Param("flag")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	f, err := s.cmds.Flag(ctx, project, key)
	if err != nil {
		return s.fail(c, err)
	}
	fr := s.baseFrame(c, f.Name, "flags", p)
	d := flagData{frame: fr, Flag: f, VariationsText: variationsText(f.Type, f.Variations), Err: fe, Tags: strings.Join(f.Tags, ", "),
		Live: liveData{Project: project, Flag: key, Version: f.Version}}
	if typed != nil {
		d.VariationsText, d.Tags = typed.VariationsText, typed.Tags
	}
	for _, e := range sortedEnvironments(p) {
		d.Switches = append(d.Switches, switchData{Project: project, Flag: key, Environment: e.Key, EnvironmentName: e.Name,
			On: f.ConfigFor(e.Key).Targeting.On, CanEdit: fr.CanEdit && !f.Archived, Production: isProduction(e), Version: f.Version, CSRF: fr.CSRF})
	}
	last, err := s.cmds.LastChanges(ctx, project, []string{key})
	if err != nil {
		return s.fail(c, err)
	}
	if e, ok := last[key]; ok {
		names, err := s.people.DisplayNames(ctx)
		if err != nil {
			return s.fail(c, err)
		}
		d.LastChange, d.LastActor = &e, actorName(e.Actor, names)
	}
	d.Pending = s.pendingRequests(ctx, project, key)
	return s.render(c, status, "flag", d)
}

func (s *Server) updateFlag(c echo.Context) error {
	ctx := c.Request().Context()
	project, key := c.Param("project"), c.Param("flag")
	f, err := s.cmds.Flag(ctx, project, key)
	if err != nil {
		return s.fail(c, err)
	}
	settings := domain.FlagSettings{Name: strings.TrimSpace(c.FormValue("name")), Description: strings.TrimSpace(c.FormValue("description")),
		Tags: splitTags(c.FormValue("tags")), ClientSide: c.FormValue("client_side") == "true", Defaults: f.Defaults}
	if _, err := s.cmds.UpdateFlag(ctx, meta(c), project, key, versionField(c), settings); err != nil {
		if domain.ErrorCode(err) == domain.EConflict {
			return s.showFlag(c, http.StatusConflict, &fieldErrors{Field: "version", Message: s.conflictMessage(c, project, key, versionField(c))}, nil)
		}
		if fe := asFieldError(err); fe != nil {
			return s.showFlag(c, http.StatusBadRequest, fe, &flagData{Tags: c.FormValue("tags"), VariationsText: variationsText(f.Type, f.Variations)})
		}
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, flagURL(project, key)+"?done="+url.QueryEscape("Settings saved."))
}

func (s *Server) updateVariations(c echo.Context) error {
	ctx := c.Request().Context()
	project, key := c.Param("project"), c.Param("flag")
	f, err := s.cmds.Flag(ctx, project, key)
	if err != nil {
		return s.fail(c, err)
	}
	typed := &flagData{VariationsText: c.FormValue("variations"), Tags: strings.Join(f.Tags, ", ")}
	vs, err := parseVariations(f.Type, typed.VariationsText)
	if err == nil {
		_, err = s.cmds.UpdateVariations(ctx, meta(c), project, key, versionField(c), vs)
	}
	if err != nil {
		if domain.ErrorCode(err) == domain.EConflict {
			return s.showFlag(c, http.StatusConflict, &fieldErrors{Field: "version", Message: s.conflictMessage(c, project, key, versionField(c))}, typed)
		}
		if fe := asFieldError(err); fe != nil {
			return s.showFlag(c, http.StatusBadRequest, fe, typed)
		}
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, flagURL(project, key)+"?done="+url.QueryEscape("Variations saved."))
}

// flagLive is polled by the flag's pages (htmx, every few seconds): 204 while the flag is at the
// version the page shows, else a notice naming who changed it, with a reload link.
func (s *Server) flagLive(c echo.Context) error {
	project, key := c.Param("project"), c.Param("flag")
	seen, err := strconv.ParseInt(c.QueryParam("version"), 10, 64)
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, "version must be a number")
	}
	f, err := s.cmds.Flag(c.Request().Context(), project, key)
	if err != nil {
		return s.fail(c, err)
	}
	if f.Version <= seen {
		return c.NoContent(http.StatusNoContent)
	}
	who := s.changesSince(c, project, key, seen)
	mine := len(who) == 1 && who[0] == sessionOf(c).User.DisplayName
	if mine {
		return c.NoContent(http.StatusNoContent)
	}
	return s.renderPartial(c, http.StatusOK, "flag", "live-notice", map[string]any{"Who": strings.Join(who, ", "), "URL": c.QueryParam("page")})
}

// ---- targeting editor ----

type targetingData struct {
	frame
	Flag       *domain.Flag
	Env        *domain.Environment
	Production bool
	Draft      targetingDraft
	Version    int64
	Reason     string
	Err        *fieldErrors
	Segments   []*domain.Segment
	Flags      []string // prerequisite candidates: the other live flags' keys
	// Confirm shows the diff of a save to a production environment before it is made.
	Confirm  []diffLine
	Conflict *conflictData
	Live     liveData
}

type conflictData struct {
	Who  string
	Diff []diffLine // the current state against what the person submitted
}

// Serves lists the serves of the draft with the form-field prefix of each.
func (d targetingData) RuleServe(i int) serveView {
	return serveView{Prefix: fmt.Sprintf("rules[%d].serve", i), Serve: d.Draft.Rules[i].Serve, Variations: d.Flag.Variations, Err: d.Err, CanEdit: d.CanEdit}
}

// DefaultServe is the default serve's view.
func (d targetingData) DefaultServe() serveView {
	return serveView{Prefix: "default", Serve: d.Draft.Default, Variations: d.Flag.Variations, Err: d.Err, CanEdit: d.CanEdit}
}

type serveView struct {
	Prefix     string
	Serve      serveDraft
	Variations []domain.Variation
	Err        *fieldErrors
	CanEdit    bool
}

// Sum is the split's typed total in percent.
func (v serveView) Sum() string { return v.Serve.splitSum() }

func (s *Server) targetingPage(c echo.Context) error {
	f, p, err := s.loadFlagEnv(c)
	if err != nil {
		return s.fail(c, err)
	}
	env := c.Param("environment")
	return s.showTargeting(c, http.StatusOK, f, p, draftOf(f.ConfigFor(env).Targeting), f.Version, func(*targetingData) {})
}

func (s *Server) loadFlagEnv(c echo.Context) (*domain.Flag, *domain.Project, error) {
	ctx := c.Request().Context()
	project, key, env := c.Param("project"), c.Param("flag"), c.Param("environment")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return nil, nil, err
	}
	if p.Environments[env] == nil {
		return nil, nil, domain.Errorf(domain.ENotFound, "environment %q not found in project %q", env, project)
	}
	f, err := s.cmds.Flag(ctx, project, key)
	if err != nil {
		return nil, nil, err
	}
	return f, p, nil
}

func (s *Server) showTargeting(c echo.Context, status int, f *domain.Flag, p *domain.Project, d targetingDraft, version int64, more func(*targetingData)) error {
	ctx := c.Request().Context()
	env := p.Environments[c.Param("environment")]
	fr := s.baseFrame(c, f.Name+" in "+env.Name, "flags", p)
	fr.Environment = env.Key
	segs, err := s.cmds.Segments(ctx, p.Key)
	if err != nil {
		return s.fail(c, err)
	}
	flags, err := s.cmds.FlagKeys(ctx, p.Key)
	if err != nil {
		return s.fail(c, err)
	}
	flags = slices.DeleteFunc(flags, func(k string) bool { return k == f.Key })
	data := targetingData{frame: fr, Flag: f, Env: env, Production: isProduction(env), Draft: d, Version: version, Segments: segs, Flags: flags,
		Reason: strings.TrimSpace(c.FormValue(reasonField)), Live: liveData{Project: p.Key, Flag: f.Key, Version: f.Version}}
	more(&data)
	return s.render(c, status, "targeting", data)
}

func (s *Server) saveTargeting(c echo.Context) error {
	f, p, err := s.loadFlagEnv(c)
	if err != nil {
		return s.fail(c, err)
	}
	form, err := c.FormParams()
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, "The form could not be read.")
	}
	env := c.Param("environment")
	draft := parseDraft(form, f.Variations)
	seen := versionField(c)
	action := c.FormValue("action")
	if draft.apply(action) {
		return s.showTargeting(c, http.StatusOK, f, p, draft, seen, func(*targetingData) {})
	}
	t, err := draft.targeting(f.Variations)
	if fe := asFieldError(err); fe != nil {
		return s.showTargeting(c, http.StatusBadRequest, f, p, draft, seen, func(d *targetingData) { d.Err = fe })
	}
	if err != nil {
		return s.fail(c, err)
	}
	// A save to production shows what changes and asks again; the confirmation carries the same
	// version, so a change made meanwhile is still caught.
	if isProduction(p.Environments[env]) && action != "confirm" {
		if seen != AnyVersion && seen != f.Version {
			return s.showConflict(c, f, p, draft, t, seen)
		}
		cur, err := f.ValidateTargeting(env, f.ConfigFor(env).Targeting, nil)
		if err != nil {
			cur = f.ConfigFor(env).Targeting
		}
		diff := valueDiff(cur, t)
		return s.showTargeting(c, http.StatusOK, f, p, draft, seen, func(d *targetingData) { d.Confirm = diff })
	}
	_, err = s.cmds.UpdateTargeting(c.Request().Context(), meta(c), p.Key, f.Key, env, seen, t)
	if domain.ErrorCode(err) == domain.EConflict && asFieldError(err) == nil {
		return s.showConflict(c, f, p, draft, t, seen)
	}
	if fe := asFieldError(err); fe != nil {
		fe.Field = strings.TrimPrefix(fe.Field, "targeting.")
		return s.showTargeting(c, http.StatusBadRequest, f, p, draft, seen, func(d *targetingData) { d.Err = fe })
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, flagURL(p.Key, f.Key)+"/environments/"+url.PathEscape(env)+"?done="+url.QueryEscape("Targeting saved."))
}

// showConflict keeps the person's draft and shows who changed the flag meanwhile and how the
// current targeting differs from what they submitted. Saving again applies their draft over the
// current version, knowingly.
func (s *Server) showConflict(c echo.Context, f *domain.Flag, p *domain.Project, draft targetingDraft, t domain.Targeting, seen int64) error {
	env := c.Param("environment")
	who := s.changesSince(c, p.Key, f.Key, seen)
	if len(who) == 0 {
		who = []string{"someone"}
	}
	diff := valueDiff(t, f.ConfigFor(env).Targeting)
	return s.showTargeting(c, http.StatusConflict, f, p, draft, f.Version, func(d *targetingData) {
		d.Conflict = &conflictData{Who: strings.Join(who, ", "), Diff: diff}
	})
}

// ---- audit log ----

type auditData struct {
	frame
	Entries                      []auditRow
	Flag, Actor, EnvFilter, Next string
	Kind                         string
	ExportQuery                  string
}

type auditRow struct {
	audit.Entry
	Who  string
	Diff []diffLine
}

func (s *Server) auditPage(c echo.Context) error {
	ctx := c.Request().Context()
	project := c.Param("project")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	q := audit.Query{Project: project, Environment: c.QueryParam("environment"), Actor: c.QueryParam("actor"), Cursor: c.QueryParam("cursor"), Limit: 50}
	kind := ""
	if fl := c.QueryParam("flag"); fl != "" {
		q.EntityKind, q.EntityKey, kind = "flag", fl, "flag"
	} else if sg := c.QueryParam("segment"); sg != "" {
		q.EntityKind, q.EntityKey, kind = "segment", sg, "segment"
	}
	entries, next, err := s.cmds.Audit(ctx, q)
	if domain.ErrorCode(err) == domain.EInvalid {
		return s.errorPage(c, http.StatusBadRequest, domain.ErrorMessage(err))
	}
	if err != nil {
		return s.fail(c, err)
	}
	names, err := s.people.DisplayNames(ctx)
	if err != nil {
		return s.fail(c, err)
	}
	d := auditData{frame: s.baseFrame(c, "Audit log", "audit", p), Flag: c.QueryParam("flag"), Actor: q.Actor, EnvFilter: q.Environment, Next: next, Kind: kind}
	exp := url.Values{}
	for k, v := range map[string]string{"environment": q.Environment, "actor": q.Actor, "flag": c.QueryParam("flag"), "segment": c.QueryParam("segment")} {
		if v != "" {
			exp.Set(k, v)
		}
	}
	d.ExportQuery = exp.Encode()
	for _, e := range entries {
		d.Entries = append(d.Entries, auditRow{Entry: e, Who: actorName(e.Actor, names), Diff: jsonDiff(e.Before, e.After)})
	}
	return s.render(c, http.StatusOK, "audit", d)
}

// auditExport writes the filtered audit log as JSON lines or CSV, newest first, page by page
// from the read model, so any length streams in bounded memory.
func (s *Server) auditExport(c echo.Context) error {
	ctx := c.Request().Context()
	format := c.QueryParam("format")
	if format != "jsonl" && format != "csv" {
		return s.errorPage(c, http.StatusBadRequest, "format must be jsonl or csv")
	}
	q := audit.Query{Project: c.Param("project"), Environment: c.QueryParam("environment"), Actor: c.QueryParam("actor"), Limit: audit.MaxPageSize}
	if fl := c.QueryParam("flag"); fl != "" {
		q.EntityKind, q.EntityKey = "flag", fl
	} else if sg := c.QueryParam("segment"); sg != "" {
		q.EntityKind, q.EntityKey = "segment", sg
	}
	first, next, err := s.cmds.Audit(ctx, q)
	if err != nil {
		return s.fail(c, err)
	}
	h := c.Response().Header()
	name := "audit-" + q.Project
	if format == "csv" {
		h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	} else {
		h.Set(echo.HeaderContentType, "application/jsonl; charset=utf-8")
	}
	h.Set("Content-Disposition", `attachment; filename="`+name+"."+format+`"`)
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	enc := json.NewEncoder(c.Response())
	if format == "csv" {
		_ = w.Write([]string{"position", "occurred_at", "actor", "reason", "event_type", "entity_kind", "entity_key", "environment", "before", "after"})
	}
	for entries := first; ; {
		for _, e := range entries {
			if format == "csv" {
				_ = w.Write([]string{strconv.FormatInt(e.Position, 10), e.OccurredAt.UTC().Format(time.RFC3339Nano), e.Actor, e.Reason, e.EventType,
					e.EntityKind, e.EntityKey, e.Environment, string(e.Before), string(e.After)})
			} else if err := enc.Encode(e); err != nil {
				return nil // the client went away; the status is sent
			}
		}
		w.Flush()
		if next == "" {
			return nil
		}
		q.Cursor = next
		if entries, next, err = s.cmds.Audit(ctx, q); err != nil {
			s.log.Error("audit export broke off", "project", q.Project, "err", err)
			return nil
		}
	}
}

// ---- time travel ----

type historyData struct {
	frame
	Flag           *domain.Flag
	At, Compare    string
	Then           *domain.Flag
	ThenErr        string
	Diff           []diffLine
	CompareLabel   string
	RestoreEnvs    []*domain.Environment
	RestoreVersion int64
}

func (s *Server) historyPage(c echo.Context) error {
	ctx := c.Request().Context()
	project, key := c.Param("project"), c.Param("flag")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	f, err := s.cmds.Flag(ctx, project, key)
	if err != nil {
		return s.fail(c, err)
	}
	d := historyData{frame: s.baseFrame(c, f.Name+": history", "flags", p), Flag: f, At: c.QueryParam("at"), Compare: c.QueryParam("compare"),
		RestoreEnvs: sortedEnvironments(p), RestoreVersion: f.Version}
	if d.At == "" {
		return s.render(c, http.StatusOK, "history", d)
	}
	at, err := parseMoment(d.At)
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, err.Error())
	}
	then, err := s.cmds.FlagAt(ctx, project, key, at)
	switch {
	case domain.ErrorCode(err) == domain.ENotFound:
		d.ThenErr = domain.ErrorMessage(err)
		return s.render(c, http.StatusOK, "history", d)
	case err != nil:
		return s.fail(c, err)
	}
	d.Then = then
	other, label := f, "now"
	if d.Compare != "" {
		cmpAt, err := parseMoment(d.Compare)
		if err != nil {
			return s.errorPage(c, http.StatusBadRequest, err.Error())
		}
		if other, err = s.cmds.FlagAt(ctx, project, key, cmpAt); err != nil && domain.ErrorCode(err) != domain.ENotFound {
			return s.fail(c, err)
		}
		label = cmpAt.UTC().Format(time.RFC3339)
	}
	var otherAny any
	if other != nil {
		otherAny = other
	}
	d.Diff, d.CompareLabel = valueDiff(then, otherAny), label
	return s.render(c, http.StatusOK, "history", d)
}

// parseMoment reads a moment typed in the page: RFC 3339, or the browser's datetime-local value
// (taken as UTC, which the page says).
func parseMoment(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("the moment %q is not a date and time like 2026-01-02T15:04:05Z", v)
}

// restore makes a past targeting of one environment current again: a new event, never a rewrite.
func (s *Server) restore(c echo.Context) error {
	ctx := c.Request().Context()
	project, key, env := c.Param("project"), c.Param("flag"), c.FormValue("environment")
	at, err := parseMoment(c.FormValue("at"))
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, err.Error())
	}
	then, err := s.cmds.FlagAt(ctx, project, key, at)
	if err != nil {
		return s.fail(c, err)
	}
	m := meta(c)
	if m.Reason == "" {
		m.Reason = "restored the targeting of " + at.UTC().Format(time.RFC3339)
	}
	_, err = s.cmds.UpdateTargeting(ctx, m, project, key, env, versionField(c), then.ConfigFor(env).Targeting)
	if domain.ErrorCode(err) == domain.EConflict && asFieldError(err) == nil {
		return s.errorPage(c, http.StatusConflict, s.conflictMessage(c, project, key, versionField(c)))
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, flagURL(project, key)+"/environments/"+url.PathEscape(env)+"?done="+
		url.QueryEscape("Restored the targeting of "+at.UTC().Format(time.RFC3339)+"."))
}

func jsonIndent(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return string(b), err
}
