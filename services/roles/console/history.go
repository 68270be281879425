package console

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/rulesets"
)

// parseAt reads the optional time-travel instant of a request (RFC 3339); zero means now.
func parseAt(c echo.Context) (time.Time, error) {
	v := c.QueryParam("at")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, domain.Invalid("at", "at must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
	}
	return t, nil
}

// flagAt answers a flag as it was at a moment, by folding its events up to then.
func (s *Server) flagAt(c echo.Context) error {
	at, err := parseAt(c)
	if err != nil {
		return err
	}
	if at.IsZero() {
		return domain.Invalid("at", "at is required")
	}
	f, v, err := s.app.Queries.FlagAt(c.Request().Context(), c.Param("project"), c.Param("flag"), at)
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, f)
}

// environmentRulesetAt answers an environment's whole ruleset as of a moment.
func (s *Server) environmentRulesetAt(c echo.Context) error {
	at, err := parseAt(c)
	if err != nil {
		return err
	}
	if at.IsZero() {
		return domain.Invalid("at", "at is required")
	}
	rs, err := s.app.Queries.RulesetAt(c.Request().Context(), c.Param("project"), c.Param("environment"), at)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rs)
}

type explainRequest struct {
	Flag    string         `json:"flag"`
	Context map[string]any `json:"context"` // an OpenFeature evaluation context: targetingKey + attributes
	At      *time.Time     `json:"at,omitempty"`
}

type explainClause struct {
	domain.Clause
	ContextValue any  `json:"context_value"`
	Present      bool `json:"present"`
	Matched      bool `json:"matched"`
}

type explainRule struct {
	ID          string          `json:"id"`
	Description string          `json:"description,omitempty"`
	Matched     bool            `json:"matched"`
	Clauses     []explainClause `json:"clauses"`
}

type explainResponse struct {
	Flag           string                `json:"flag"`
	Environment    string                `json:"environment"`
	At             time.Time             `json:"at"`
	RulesetVersion int64                 `json:"ruleset_version"`
	FlagVersion    int64                 `json:"flag_version"`
	Value          any                   `json:"value"`
	Variation      string                `json:"variation"`
	Reason         string                `json:"reason"`
	ErrorCode      string                `json:"error_code,omitempty"`
	ErrorMessage   string                `json:"error_message,omitempty"`
	RuleID         string                `json:"rule_id,omitempty"`
	RuleIndex      int                   `json:"rule_index"`
	Bucket         int                   `json:"bucket"`
	Experiment     string                `json:"experiment,omitempty"`
	On             bool                  `json:"on"`
	Target         bool                  `json:"individual_target"`
	Rules          []explainRule         `json:"rules"`
	Default        domain.Serve          `json:"default"`
	Prerequisites  []domain.Prerequisite `json:"prerequisites,omitempty"`
}

// explain answers which variation a context got (or would get) at a moment and why, with the same
// evaluator the api role serves with: the result, the rule that decided, every clause with the
// context's value and whether it matched, and the split bucket.
func (s *Server) explain(c echo.Context) error {
	var req explainRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.Flag == "" {
		return domain.Invalid("flag", "flag is required")
	}
	ctx := c.Request().Context()
	project, env := c.Param("project"), c.Param("environment")
	var rs *domain.Ruleset
	var err error
	at := time.Now().UTC()
	if req.At != nil {
		at = req.At.UTC()
		rs, err = s.app.Queries.RulesetAt(ctx, project, env, at)
	} else {
		// Now: the very ruleset the api role serves, from its read model.
		rs, err = rulesets.Load(ctx, s.app.Queries.Pool(), project, env)
	}
	if err != nil {
		return err
	}
	compiled, err := evaluation.Compile(rs)
	if err != nil {
		return err
	}
	ectx := evaluation.FromOpenFeature(req.Context)
	r := compiled.Evaluate(req.Flag, ectx)
	out := explainResponse{Flag: req.Flag, Environment: env, At: at, RulesetVersion: rs.Version, FlagVersion: r.FlagVersion,
		Value: r.Value, Variation: r.Variation, Reason: r.Reason, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
		RuleID: r.RuleID, RuleIndex: r.RuleIndex, Bucket: r.Bucket, Experiment: r.Experiment, Rules: []explainRule{}}
	cfg, ok := rs.Flags[req.Flag]
	if !ok {
		return c.JSON(http.StatusOK, out)
	}
	t := cfg.Targeting
	out.On, out.Default, out.Prerequisites = t.On, t.Default, t.Prerequisites
	for _, tg := range t.Targets {
		for _, k := range tg.Values {
			if k == ectx.Key && k != "" {
				out.Target = true
			}
		}
	}
	for _, rule := range t.Rules {
		er := explainRule{ID: rule.ID, Description: rule.Description, Matched: true}
		for _, cl := range rule.Clauses {
			ec := explainClause{Clause: cl, Matched: evaluation.ClauseMatches(rs, cl, ectx)}
			if cl.Attribute == "key" {
				ec.ContextValue, ec.Present = ectx.Key, ectx.Key != ""
			} else if cl.Attribute != "" {
				ec.ContextValue, ec.Present = ectx.Attributes[cl.Attribute]
			}
			er.Matched = er.Matched && ec.Matched
			er.Clauses = append(er.Clauses, ec)
		}
		out.Rules = append(out.Rules, er)
	}
	return c.JSON(http.StatusOK, out)
}

// exportAudit streams a filtered audit log as JSON lines or CSV (up to MaxExport rows).
const MaxExport = 100000

func (s *Server) exportAudit(c echo.Context, q audit.Query, format string) error {
	w := c.Response()
	switch format {
	case "jsonl":
		w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	case "csv":
		w.Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	default:
		return domain.Invalid("format", "format must be jsonl or csv")
	}
	w.Header().Set("Content-Disposition", `attachment; filename="audit.`+format+`"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	if format == "csv" {
		_ = cw.Write([]string{"position", "occurred_at", "project", "entity_kind", "entity_key", "environment", "event_type",
			"actor", "reason", "request_id", "stream_id", "version", "data", "before", "after"})
	}
	enc := json.NewEncoder(w)
	q.Limit = audit.MaxPageSize
	written := 0
	for written < MaxExport {
		page, next, err := audit.List(c.Request().Context(), s.app.Queries.Pool(), q)
		if err != nil {
			return err // headers are sent: the error ends the stream early
		}
		for _, e := range page {
			if format == "jsonl" {
				if err := enc.Encode(e); err != nil {
					return nil
				}
			} else {
				_ = cw.Write([]string{strconv.FormatInt(e.Position, 10), e.OccurredAt.Format(time.RFC3339Nano), e.Project, e.EntityKind,
					e.EntityKey, e.Environment, e.EventType, e.Actor, e.Reason, e.RequestID, e.StreamID, strconv.FormatInt(e.Version, 10),
					string(e.Data), string(e.Before), string(e.After)})
			}
			written++
		}
		if next == "" {
			break
		}
		q.Cursor = next
	}
	cw.Flush()
	return nil
}

func (s *Server) experimentAudit(c echo.Context) error {
	return s.listAudit(c, "experiment", c.Param("experiment"))
}

func (s *Server) environmentAudit(c echo.Context) error {
	q, err := s.auditQuery(c)
	if err != nil {
		return err
	}
	q.Environment = c.Param("environment")
	if f := c.QueryParam("format"); f != "" {
		return s.exportAudit(c, q, f)
	}
	items, next, err := audit.List(c.Request().Context(), s.app.Queries.Pool(), q)
	if err != nil {
		return err
	}
	if next, err = s.nextCursor(c, next); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}
