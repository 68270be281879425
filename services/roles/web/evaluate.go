package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// Evaluate-as: a person types a context and sees what the flag serves it in an environment, now
// or at a past moment, and why: the result of the serving evaluator, then each rule with each
// clause and whether it matched this context.

type evaluateData struct {
	frame
	Flag          *domain.Flag
	Env           string
	ContextText   string
	At            string
	Err           *fieldErrors
	Result        *evaluation.Result
	On, Target    bool
	Rules         []traceRule
	RulesetAt     string
	HasEvaluation bool
}

type traceRule struct {
	ID, Description string
	Matched         bool
	Clauses         []traceClause
}

type traceClause struct {
	Clause       domain.Clause
	ContextValue string
	Matched      bool
}

func (s *Server) evaluatePage(c echo.Context) error {
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
	fr := s.baseFrame(c, f.Name+": evaluate as", "flags", p)
	d := evaluateData{frame: fr, Flag: f, Env: fr.Environment, ContextText: c.QueryParam("context"), At: strings.TrimSpace(c.QueryParam("at"))}
	if d.ContextText == "" {
		d.ContextText = `{"targetingKey": "user-1", "country": "FR"}`
		return s.render(c, http.StatusOK, "evaluate", d)
	}
	var octx map[string]any
	if err := json.Unmarshal([]byte(d.ContextText), &octx); err != nil || octx == nil {
		d.Err = &fieldErrors{Field: "context", Message: "The context must be a JSON object, e.g. {\"targetingKey\": \"user-1\", \"country\": \"FR\"}."}
		return s.render(c, http.StatusBadRequest, "evaluate", d)
	}
	var at time.Time
	if d.At != "" {
		if at, err = parseMoment(d.At); err != nil {
			d.Err = &fieldErrors{Field: "at", Message: err.Error()}
			return s.render(c, http.StatusBadRequest, "evaluate", d)
		}
	}
	rs, err := s.cmds.Ruleset(ctx, project, d.Env, at)
	if err != nil {
		return s.fail(c, err)
	}
	compiled, err := evaluation.Compile(rs)
	if err != nil {
		return s.fail(c, err)
	}
	ectx := evaluation.FromOpenFeature(octx)
	r := compiled.Evaluate(key, ectx)
	d.Result, d.HasEvaluation = &r, true
	if at.IsZero() {
		d.RulesetAt = "now (the ruleset SDKs are served)"
	} else {
		d.RulesetAt = at.UTC().Format(time.RFC3339)
	}
	cfg, ok := rs.Flags[key]
	if !ok {
		return s.render(c, http.StatusOK, "evaluate", d)
	}
	t := cfg.Targeting
	d.On = t.On
	for _, tg := range t.Targets {
		for _, k := range tg.Values {
			if k != "" && k == ectx.Key {
				d.Target = true
			}
		}
	}
	for _, rule := range t.Rules {
		tr := traceRule{ID: rule.ID, Description: rule.Description, Matched: true}
		for _, cl := range rule.Clauses {
			tc := traceClause{Clause: cl, Matched: evaluation.ClauseMatches(rs, cl, ectx)}
			switch {
			case cl.Attribute == "key":
				tc.ContextValue = ectx.Key
			case cl.Attribute != "":
				if v, present := ectx.Attributes[cl.Attribute]; present {
					b, _ := json.Marshal(v)
					tc.ContextValue = string(b)
				} else {
					tc.ContextValue = "(absent)"
				}
			}
			tr.Matched = tr.Matched && tc.Matched
			tr.Clauses = append(tr.Clauses, tc)
		}
		d.Rules = append(d.Rules, tr)
	}
	return s.render(c, http.StatusOK, "evaluate", d)
}
