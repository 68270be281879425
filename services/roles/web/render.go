package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app/identity"
)

//go:embed templates
var templateFS embed.FS

// pages holds one template set per page: the layout and that page's file.
type pages struct {
	sets map[string]*template.Template
}

var pageNames = []string{"setup", "login", "error", "projects", "flags", "newflag", "flag", "targeting", "audit", "history", "evaluate", "segments", "webhooks",
	"changerequests", "changerequest", "members", "tokens", "accounts", "environments", "environment", "newproject", "segment", "account"}

var funcs = template.FuncMap{
	"ago":      ago,
	"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"operator": func() []domain.Operator { return domain.Operators },
	"roles":    func() []string { return identity.Roles },
	"add":      func(a, b int) int { return a + b },
	"sub":      func(a, b int) int { return a - b },
	"pathEsc":  url.PathEscape,
	"queryEsc": url.QueryEscape,
	"has": func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	},
	"json": func(v any) string {
		b, err := jsonIndent(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return b
	},
	"fid": fieldID,
	"flagTypes": func() []string {
		return []string{string(domain.FlagBoolean), string(domain.FlagString), string(domain.FlagNumber), string(domain.FlagJSON)}
	},
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"seq": func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	},
}

func parsePages() (*pages, error) {
	p := &pages{sets: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: parse template %s: %w", name, err)
		}
		p.sets[name] = t
	}
	return p, nil
}

// frame is what the layout needs on every page.
type frame struct {
	Title       string
	User        *identity.User
	CSRF        string
	Project     *domain.Project
	Environment string // the environment the navigation shows
	Role        string
	CanEdit     bool
	Flash       string
	Nav         string // which navigation entry is current
}

// Environments lists the project's environments in a stable order for the navigation.
func (f frame) Environments() []*domain.Environment { return sortedEnvironments(f.Project) }

// render writes a page with status.
func (s *Server) render(c echo.Context, status int, page string, data any) error {
	t := s.pages.sets[page]
	if t == nil {
		return fmt.Errorf("web: no page %q", page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", data); err != nil {
		s.log.Error("console page did not render", "page", page, "err", err)
		return c.String(http.StatusInternalServerError, "the page could not be rendered")
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// renderPartial writes one named template of a page (an htmx swap).
func (s *Server) renderPartial(c echo.Context, status int, page, name string, data any) error {
	var buf bytes.Buffer
	if err := s.pages.sets[page].ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("console partial did not render", "page", page, "name", name, "err", err)
		return c.String(http.StatusInternalServerError, "the page could not be rendered")
	}
	return c.HTMLBlob(status, buf.Bytes())
}

type errorData struct {
	frame
	Status  int
	Message string
}

func (s *Server) errorPage(c echo.Context, status int, message string) error {
	f := frame{Title: http.StatusText(status)}
	if sess := sessionOf(c); sess != nil {
		f.User, f.CSRF = &sess.User, sess.CSRF
	}
	if c.Request().Header.Get("HX-Request") != "" {
		// htmx swaps nothing on an error status by default; the console's script shows it.
		c.Response().Header().Set("HX-Reswap", "none")
	}
	return s.render(c, status, "error", errorData{frame: f, Status: status, Message: message})
}

// baseFrame is the frame of a page inside a project.
func (s *Server) baseFrame(c echo.Context, title, nav string, p *domain.Project) frame {
	sess := sessionOf(c)
	env := c.QueryParam("env")
	if p != nil && p.Environments[env] == nil {
		env = defaultEnvironment(p)
	}
	return frame{Title: title, User: &sess.User, CSRF: sess.CSRF, Project: p, Environment: env, Role: roleOf(c), CanEdit: canEdit(c), Nav: nav,
		Flash: c.QueryParam("done")}
}

// fieldErrors places a validation error at the input it names.
type fieldErrors struct {
	Field, Message string
}

// At is the message when the error's field is name or lies beneath it.
func (e *fieldErrors) At(name string) string {
	if e == nil {
		return ""
	}
	if e.Field == name || strings.HasPrefix(e.Field, name+".") || strings.HasPrefix(e.Field, name+"[") {
		return e.Message
	}
	return ""
}

// Is is the message when the error's field is exactly name.
func (e *fieldErrors) Is(name string) string {
	if e == nil || e.Field != name {
		return ""
	}
	return e.Message
}

// ago says how long ago t was, for lists.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02")
}

// fieldID turns a field path (rules[0].clauses[1].values) into an element id.
func fieldID(path string) string {
	return "f-" + strings.NewReplacer("[", "-", "]", "", ".", "-").Replace(path)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
