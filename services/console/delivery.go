package console

// Progressive delivery in the management API: scheduled changes, progressive rollouts, auto-ops
// rules and webhook triggers. Commands run here; the experiment role's scheduler
// (services/delivery) applies what is due with the same commands, attributed to the system actor.
//
// Commands that change a flag and a delivery aggregate append twice: the flag's events first, with
// a command id that makes them happen at most once, then the aggregate's events with the same
// command id. A retry after a failure between the two finds the flag command recorded (a
// duplicate) and only records the outcome.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/httpapi"
	"github.com/vexil-flags/vexil/services/projector"
)

// TriggerSecretPrefix starts every webhook trigger secret, so secret scanners recognise leaked ones.
const TriggerSecretPrefix = "vxt_"

// TriggerSecretHeader carries a webhook trigger's secret; ?secret= is accepted too, for tools that
// can only call a URL (the secret then travels in the URL, where proxies and browsers may log it).
const TriggerSecretHeader = "X-Vexil-Trigger-Secret"

// HooksPath is the path of the public webhook endpoints (outside /api/v1, no bearer token).
const HooksPath = "/hooks/v1/triggers/"

// NewTriggerSecret returns a fresh webhook secret and the hash that is stored instead of it.
func NewTriggerSecret() (secret, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("console: crypto/rand failed: " + err.Error())
	}
	secret = TriggerSecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashToken(secret)
}

// deliveryListParams and deliveryStatusListParams are the query parameters of the delivery lists.
var deliveryListParams = []string{"flag", "environment", "cursor", "limit"}
var deliveryStatusListParams = []string{"flag", "environment", "status", "cursor", "limit"}

// --- requests and views ---

type scheduleRequest struct {
	ID          string            `json:"id,omitempty"` // generated (UUIDv7) when empty
	Flag        string            `json:"flag"`
	Environment string            `json:"environment"`
	At          time.Time         `json:"at"`
	Kind        domain.ChangeKind `json:"kind"` // toggle, targeting or default
	On          *bool             `json:"on,omitempty"`
	Targeting   *domain.Targeting `json:"targeting,omitempty"`
	Default     *domain.Serve     `json:"default,omitempty"`
}

type scheduleEditRequest struct {
	At        time.Time         `json:"at"`
	Kind      domain.ChangeKind `json:"kind"`
	On        *bool             `json:"on,omitempty"`
	Targeting *domain.Targeting `json:"targeting,omitempty"`
	Default   *domain.Serve     `json:"default,omitempty"`
}

func changeSpec(at time.Time, kind domain.ChangeKind, on *bool, t *domain.Targeting, d *domain.Serve) (domain.ChangeSpec, error) {
	spec := domain.ChangeSpec{At: at, Kind: kind, Targeting: t, Default: d}
	switch {
	case at.IsZero():
		return spec, domain.Invalid("at", "at is required (RFC 3339 time)")
	case kind == domain.ChangeToggle && on == nil:
		return spec, domain.Invalid("on", "a toggle needs on (true or false)")
	case kind != domain.ChangeToggle && on != nil:
		return spec, domain.Invalid("on", "on is only for a toggle")
	}
	if on != nil {
		spec.On = *on
	}
	return spec, nil
}

type rolloutTemplate struct {
	// Start is the time of the first step; now when omitted (the first step applies at once).
	Start *time.Time `json:"start,omitempty"`
	// Every is the time between steps: a Go duration ("30m", "1h") or whole days ("1d").
	Every string `json:"every"`
	// Percents default to 1, 5, 25, 50, 100.
	Percents []float64 `json:"percents,omitempty"`
}

type rolloutRequest struct {
	ID          string `json:"id,omitempty"` // generated (UUIDv7) when empty
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	// Variation is rolled out, Other serves the rest; for boolean flags they default to true and
	// false.
	Variation string `json:"variation,omitempty"`
	Other     string `json:"other,omitempty"`
	BucketBy  string `json:"bucket_by,omitempty"`
	// Exactly one of Steps (written by hand) or Template.
	Steps    []domain.RolloutStep `json:"steps,omitempty"`
	Template *rolloutTemplate     `json:"template,omitempty"`
}

type reasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

// rolloutStepView is one step of a rollout with where it stands.
type rolloutStepView struct {
	Index   int       `json:"index"`
	At      time.Time `json:"at"`
	Percent float64   `json:"percent"`
	// Status: applied, skipped (its successor was already due when the rollout caught up, or the
	// flag already served its share when the rollout was created: see Reason), next (the step the
	// rollout waits for), pending, or cancelled (the rollout was aborted).
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// rolloutView is a rollout with the status of each step.
type rolloutView struct {
	domain.Rollout
	Plan []rolloutStepView `json:"plan"`
	// Notes tell what the caller may not expect, e.g. steps skipped because the flag already
	// served more than they would.
	Notes []string `json:"notes,omitempty"`
}

func viewRollout(r *domain.Rollout) rolloutView {
	v := rolloutView{Rollout: *r, Plan: make([]rolloutStepView, len(r.Steps))}
	skipped := map[int]bool{}
	for _, i := range r.Skipped {
		skipped[i] = true
	}
	alreadyServed := map[int]bool{}
	for _, i := range r.AlreadyServed {
		alreadyServed[i] = true
	}
	if n := len(r.AlreadyServed); n > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("the default already served %v%% of users %q when the rollout was created: %d step(s) at or below that are skipped, so nobody loses the variation",
			float64(domain.ServedWeight(r.Start, r.Variation))*100/domain.BucketCount, r.Variation, n))
	}
	for i, s := range r.Steps {
		st, reason := "pending", ""
		switch {
		case i < r.Next && alreadyServed[i]:
			st, reason = "skipped", "already served when the rollout was created"
		case i < r.Next && skipped[i]:
			st, reason = "skipped", "its successor was already due when the rollout caught up"
		case i < r.Next:
			st = "applied"
		case r.Status == domain.RolloutStatusAborted:
			st = "cancelled"
		case i == r.Next:
			st = "next"
		}
		v.Plan[i] = rolloutStepView{Index: i, At: s.At, Percent: s.Percent, Status: st, Reason: reason}
	}
	return v
}

type autoOpsRuleRequest struct {
	ID          string `json:"id,omitempty"` // generated (UUIDv7) when empty
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	domain.AutoOpsDefinition
	Enabled *bool `json:"enabled,omitempty"` // default true
}

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

// --- application helpers ---

// awaitDelivery extends read-your-writes to the delivery read model, which the lists read.
func (a *App) awaitDelivery(ctx context.Context, streamID string, version int64) {
	if a.wait <= 0 || version <= 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, a.wait)
	defer cancel()
	if err := projector.WaitFor(wctx, a.pool, streamID, version, []string{delivery.Name}); err != nil {
		a.log.Warn("delivery read model lags behind a committed write", "stream", streamID, "version", version, "err", err)
	}
}

// IsDuplicateCommand reports whether err is the event store refusing a command id it already
// recorded on the stream: the command happened before.
func IsDuplicateCommand(err error) bool {
	de, ok := domainError(err)
	return ok && de.Code == domain.EConflict && de.Details["duplicate_command"] == true
}

// IsVersionConflict reports whether err is an optimistic-concurrency conflict of an append (the
// stream moved since it was loaded): retrying the command on the new state is safe.
func IsVersionConflict(err error) bool {
	de, ok := domainError(err)
	if !ok || de.Code != domain.EConflict || de.Details["duplicate_command"] == true {
		return false
	}
	_, ok = de.Details["current_version"]
	return ok
}

func domainError(err error) (*domain.Error, bool) {
	var de *domain.Error
	ok := errors.As(err, &de)
	return de, ok
}

// newDeliveryID returns the requested id or a fresh UUIDv7 (time-ordered, so lists by id are in
// creation order).
func newDeliveryID(requested string) (string, error) {
	if requested != "" {
		if !domain.ValidKey(requested) {
			return "", domain.Invalid("id", "id must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
		}
		return requested, nil
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("console: new id: %w", err)
	}
	return id.String(), nil
}

func idTaken(err error, what, id string) error {
	if domain.ErrorCode(err) == domain.EConflict && !IsDuplicateCommand(err) {
		if de, ok := domainError(err); ok && de.Details["current_version"] != nil {
			return &domain.Error{Code: domain.EConflict, Field: "id", Message: what + " " + id + " already exists"}
		}
	}
	return err
}

// listDelivery answers one page of a delivery list, filtered by the query parameters of
// deliveryListParams (and status, with status true: deliveryStatusListParams).
func listDelivery[T any](s *Server, c echo.Context, status bool,
	list func(context.Context, delivery.Querier, delivery.ListQuery) ([]T, string, error)) error {
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
	items, next, err := list(c.Request().Context(), s.app.pool, q)
	if err != nil {
		return err
	}
	if next, err = s.nextCursor(c, next); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// deliveryCommand runs a command on one delivery aggregate (If-Match honoured) and waits for the
// delivery read model.
func (s *Server) deliveryCommand(c echo.Context, streamID, what string, cmd func(projections.Aggregate) ([]domain.Event, error)) (projections.Aggregate, int64, error) {
	expected, err := expectedVersion(c)
	if err != nil {
		return nil, 0, err
	}
	ctx := c.Request().Context()
	agg, v, err := s.app.Execute(ctx, streamID, expected, meta(c), func(cur projections.Aggregate) ([]domain.Event, error) {
		if cur == nil {
			return nil, domain.Errorf(domain.ENotFound, "%s not found", what)
		}
		return cmd(cur)
	})
	if err != nil {
		return nil, 0, err
	}
	s.app.awaitDelivery(ctx, streamID, v)
	return agg, v, nil
}

// --- scheduled changes ---

func (s *Server) listSchedules(c echo.Context) error {
	return listDelivery(s, c, true, delivery.ListSchedules)
}

func (s *Server) createSchedule(c echo.Context) error {
	var req scheduleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	spec, err := changeSpec(req.At, req.Kind, req.On, req.Targeting, req.Default)
	if err != nil {
		return err
	}
	id, err := newDeliveryID(req.ID)
	if err != nil {
		return err
	}
	ctx, project := c.Request().Context(), c.Param("project")
	cat, err := s.app.Catalog(ctx, project)
	if err != nil {
		return err
	}
	var current *domain.Flag
	if domain.ValidKey(req.Flag) {
		if current, err = s.app.LoadFlag(ctx, project, req.Flag); err != nil && domain.ErrorCode(err) != domain.ENotFound {
			return err
		}
	}
	stream := domain.ScheduleStream(project, id)
	agg, v, err := s.app.Execute(ctx, stream, 0, meta(c), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.ScheduleChange(domain.NewScheduledChange{Project: project, ID: id, Flag: req.Flag,
			Environment: req.Environment, ChangeSpec: spec}, current, cat, time.Now())
	})
	if err != nil {
		return idTaken(err, "scheduled change", id)
	}
	s.app.awaitDelivery(ctx, stream, v)
	return withVersion(c, http.StatusCreated, v, agg)
}

func (s *Server) getSchedule(c echo.Context) error {
	agg, v, err := s.app.load(c.Request().Context(), domain.ScheduleStream(c.Param("project"), c.Param("id")), "scheduled change "+c.Param("id"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

func (s *Server) editSchedule(c echo.Context) error {
	var req scheduleEditRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	spec, err := changeSpec(req.At, req.Kind, req.On, req.Targeting, req.Default)
	if err != nil {
		return err
	}
	ctx, project := c.Request().Context(), c.Param("project")
	cat, err := s.app.Catalog(ctx, project)
	if err != nil {
		return err
	}
	agg, v, err := s.deliveryCommand(c, domain.ScheduleStream(project, c.Param("id")), "scheduled change",
		func(cur projections.Aggregate) ([]domain.Event, error) {
			sc := cur.(*domain.ScheduledChange)
			f, err := s.app.LoadFlag(ctx, project, sc.Flag)
			if err != nil && domain.ErrorCode(err) != domain.ENotFound {
				return nil, err
			}
			return sc.Edit(spec, f, cat, time.Now())
		})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

func (s *Server) cancelSchedule(c echo.Context) error {
	agg, v, err := s.deliveryCommand(c, domain.ScheduleStream(c.Param("project"), c.Param("id")), "scheduled change",
		func(cur projections.Aggregate) ([]domain.Event, error) { return cur.(*domain.ScheduledChange).Cancel() })
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

// --- progressive rollouts ---

func (s *Server) listRollouts(c echo.Context) error {
	return listDelivery(s, c, true, func(ctx context.Context, db delivery.Querier, q delivery.ListQuery) ([]rolloutView, string, error) {
		items, next, err := delivery.ListRollouts(ctx, db, q)
		views := make([]rolloutView, len(items))
		for i, r := range items {
			views[i] = viewRollout(r)
		}
		return views, next, err
	})
}

// parseEvery reads a template's step interval: a Go duration or whole days.
func parseEvery(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && n > 0 && n <= 366 && fmt.Sprint(n) == days {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, domain.Invalid("template.every", "every must be a positive duration such as \"30m\", \"1h\" or \"1d\", got %q", s)
}

func (s *Server) createRollout(c echo.Context) error {
	var req rolloutRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	now := time.Now()
	steps := req.Steps
	switch {
	case req.Template != nil && len(req.Steps) > 0:
		return domain.Invalid("template", "give either steps or a template, not both")
	case req.Template != nil:
		every, err := parseEvery(req.Template.Every)
		if err != nil {
			return err
		}
		start := now
		if req.Template.Start != nil {
			start = *req.Template.Start
		}
		percents := req.Template.Percents
		if len(percents) == 0 {
			percents = domain.StandardRolloutPercents()
		}
		if len(percents) > domain.MaxRolloutSteps {
			return domain.Invalid("template.percents", "at most %d steps, got %d", domain.MaxRolloutSteps, len(percents))
		}
		steps = domain.RolloutTemplate(start, every, percents...)
	}
	id, err := newDeliveryID(req.ID)
	if err != nil {
		return err
	}
	ctx, project := c.Request().Context(), c.Param("project")
	// One load answers the flag catalog, the flag's active rollouts and its running experiments.
	ec, err := s.app.experimentCatalog(ctx, project)
	if err != nil {
		return err
	}
	cat := ec.Catalog
	var current *domain.Flag
	var active, experiments []string
	if domain.ValidKey(req.Flag) {
		if current, err = s.app.LoadFlag(ctx, project, req.Flag); err != nil && domain.ErrorCode(err) != domain.ENotFound {
			return err
		}
		active = ec.ActiveRollouts(req.Flag, req.Environment)
		experiments = ec.RunningExperiments(req.Flag, req.Environment)
	}
	stream := domain.RolloutStream(project, id)
	agg, v, err := s.app.Execute(ctx, stream, 0, meta(c), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.CreateRollout(domain.NewRollout{Project: project, ID: id, Flag: req.Flag, Environment: req.Environment,
			Variation: req.Variation, Other: req.Other, BucketBy: req.BucketBy, Steps: steps}, current, cat, active, experiments, now)
	})
	if err != nil {
		return idTaken(err, "rollout", id)
	}
	s.app.awaitDelivery(ctx, stream, v)
	return withVersion(c, http.StatusCreated, v, viewRollout(agg.(*domain.Rollout)))
}

func (s *Server) getRollout(c echo.Context) error {
	agg, v, err := s.app.load(c.Request().Context(), domain.RolloutStream(c.Param("project"), c.Param("id")), "rollout "+c.Param("id"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, viewRollout(agg.(*domain.Rollout)))
}

func (s *Server) pauseRollout(c echo.Context) error {
	var req reasonRequest
	if err := s.decodeOptional(c, &req); err != nil {
		return err
	}
	agg, v, err := s.deliveryCommand(c, domain.RolloutStream(c.Param("project"), c.Param("id")), "rollout",
		func(cur projections.Aggregate) ([]domain.Event, error) {
			return cur.(*domain.Rollout).Pause(req.Reason, time.Now())
		})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, viewRollout(agg.(*domain.Rollout)))
}

func (s *Server) resumeRollout(c echo.Context) error {
	agg, v, err := s.deliveryCommand(c, domain.RolloutStream(c.Param("project"), c.Param("id")), "rollout",
		func(cur projections.Aggregate) ([]domain.Event, error) {
			return cur.(*domain.Rollout).Resume(time.Now())
		})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, viewRollout(agg.(*domain.Rollout)))
}

// abortRollout ends the rollout and writes its starting default serve back: the flag first (with
// command id "<rollout>:abort"), then the rollout's RolloutAborted (same command id).
func (s *Server) abortRollout(c echo.Context) error {
	var req reasonRequest
	if err := s.decodeOptional(c, &req); err != nil {
		return err
	}
	expected, err := expectedVersion(c)
	if err != nil {
		return err
	}
	ctx, project, id := c.Request().Context(), c.Param("project"), c.Param("id")
	stream := domain.RolloutStream(project, id)
	agg, version, err := s.app.load(ctx, stream, "rollout "+id)
	if err != nil {
		return err
	}
	r := agg.(*domain.Rollout)
	if expected != AnyVersion && expected != version {
		return &domain.Error{Code: domain.EConflict,
			Message: fmt.Sprintf("version %d was expected but the current version is %d; reload and retry", expected, version),
			Details: map[string]any{"current_version": version}}
	}
	cat, err := s.app.Catalog(ctx, project)
	if err != nil {
		return err
	}
	m := meta(c)
	m.CommandID = r.ID + ":abort"
	if m.Reason == "" {
		m.Reason = req.Reason
	}
	now := time.Now()
	var rolloutEvents []domain.Event
	for attempt := 0; ; attempt++ {
		_, _, err = s.app.Execute(ctx, domain.FlagStream(project, r.Flag), AnyVersion, m, func(cur projections.Aggregate) ([]domain.Event, error) {
			f, _ := cur.(*domain.Flag)
			fe, re, err := r.Abort(req.Reason, f, cat, now)
			rolloutEvents = re
			return fe, err
		})
		if IsVersionConflict(err) && attempt < 3 {
			continue
		}
		break
	}
	if err != nil && !IsDuplicateCommand(err) {
		return err
	}
	agg, v, err := s.app.Execute(ctx, stream, version, m, func(projections.Aggregate) ([]domain.Event, error) {
		return rolloutEvents, nil
	})
	if err != nil {
		return err
	}
	s.app.awaitDelivery(ctx, stream, v)
	return withVersion(c, http.StatusOK, v, viewRollout(agg.(*domain.Rollout)))
}

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

// --- auto-ops rules ---

func (s *Server) listAutoOpsRules(c echo.Context) error {
	return listDelivery(s, c, false, delivery.ListRules)
}

func (s *Server) createAutoOpsRule(c echo.Context) error {
	var req autoOpsRuleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	id, err := newDeliveryID(req.ID)
	if err != nil {
		return err
	}
	ctx, project := c.Request().Context(), c.Param("project")
	ecat, err := s.app.experimentCatalog(ctx, project)
	if err != nil {
		return err
	}
	enabled := req.Enabled == nil || *req.Enabled
	stream := domain.AutoOpsStream(project, id)
	agg, v, err := s.app.Execute(ctx, stream, 0, meta(c), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.CreateAutoOpsRule(domain.NewAutoOpsRule{Project: project, ID: id, Flag: req.Flag,
			Environment: req.Environment, AutoOpsDefinition: req.AutoOpsDefinition, Enabled: enabled}, ecat)
	})
	if err != nil {
		return idTaken(err, "auto-ops rule", id)
	}
	s.app.awaitDelivery(ctx, stream, v)
	return withVersion(c, http.StatusCreated, v, agg)
}

func (s *Server) getAutoOpsRule(c echo.Context) error {
	ctx, project, id := c.Request().Context(), c.Param("project"), c.Param("id")
	agg, v, err := s.app.load(ctx, domain.AutoOpsStream(project, id), "auto-ops rule "+id)
	if err != nil {
		return err
	}
	if agg.(*domain.AutoOpsRule).Deleted {
		return domain.Errorf(domain.ENotFound, "auto-ops rule %s not found", id)
	}
	return withVersion(c, http.StatusOK, v, agg)
}

func (s *Server) updateAutoOpsRule(c echo.Context) error {
	var d domain.AutoOpsDefinition
	if err := s.decode(c, &d); err != nil {
		return err
	}
	ctx, project := c.Request().Context(), c.Param("project")
	ecat, err := s.app.experimentCatalog(ctx, project)
	if err != nil {
		return err
	}
	agg, v, err := s.deliveryCommand(c, domain.AutoOpsStream(project, c.Param("id")), "auto-ops rule",
		func(cur projections.Aggregate) ([]domain.Event, error) {
			return cur.(*domain.AutoOpsRule).Update(d, ecat)
		})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

func (s *Server) autoOpsRuleCommand(c echo.Context, cmd func(*domain.AutoOpsRule) ([]domain.Event, error)) error {
	agg, v, err := s.deliveryCommand(c, domain.AutoOpsStream(c.Param("project"), c.Param("id")), "auto-ops rule",
		func(cur projections.Aggregate) ([]domain.Event, error) { return cmd(cur.(*domain.AutoOpsRule)) })
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

func (s *Server) enableAutoOpsRule(c echo.Context) error {
	return s.autoOpsRuleCommand(c, (*domain.AutoOpsRule).Enable)
}

func (s *Server) disableAutoOpsRule(c echo.Context) error {
	return s.autoOpsRuleCommand(c, (*domain.AutoOpsRule).Disable)
}

func (s *Server) deleteAutoOpsRule(c echo.Context) error {
	return s.autoOpsRuleCommand(c, (*domain.AutoOpsRule).Delete)
}

func (s *Server) listAutoOpsFirings(c echo.Context) error {
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	cursor, err := s.cursor(c)
	if err != nil {
		return err
	}
	items, next, err := delivery.ListFirings(c.Request().Context(), s.app.pool, c.Param("project"), c.Param("id"),
		cursor, limit)
	if err != nil {
		return err
	}
	if next, err = s.nextCursor(c, next); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// --- webhook triggers ---

func (s *Server) listTriggers(c echo.Context) error {
	return listDelivery(s, c, false, delivery.ListTriggers)
}

// triggerURL is the webhook URL of a trigger as this request reached the server (behind a proxy,
// X-Forwarded-Proto decides the scheme).
func triggerURL(c echo.Context, id string) (url, path string) {
	path = HooksPath + id
	return c.Scheme() + "://" + c.Request().Host + path, path
}

func (s *Server) createTrigger(c echo.Context) error {
	var req triggerRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	ctx, project := c.Request().Context(), c.Param("project")
	cat, err := s.app.Catalog(ctx, project)
	if err != nil {
		return err
	}
	// The id is in the public URL: random, so the URLs of a project cannot be enumerated.
	id := NewID(16)
	secret, hash := NewTriggerSecret()
	stream := domain.TriggerStream(project, id)
	agg, v, err := s.app.Execute(ctx, stream, 0, meta(c), func(projections.Aggregate) ([]domain.Event, error) {
		return domain.CreateTrigger(domain.NewTrigger{Project: project, ID: id, Name: req.Name, Flag: req.Flag,
			Environment: req.Environment, Action: req.Action, SecretHash: hash}, cat)
	})
	if err != nil {
		return err
	}
	// The webhook finds the trigger's project in the read model: wait for it.
	s.app.awaitDelivery(ctx, stream, v)
	url, path := triggerURL(c, id)
	return withVersion(c, http.StatusCreated, v, triggerSecretView{Trigger: delivery.SummarizeTrigger(agg.(*domain.Trigger)),
		URL: url, Path: path, Secret: secret})
}

func (s *Server) getTrigger(c echo.Context) error {
	ctx, project, id := c.Request().Context(), c.Param("project"), c.Param("id")
	agg, v, err := s.app.load(ctx, domain.TriggerStream(project, id), "trigger "+id)
	if err != nil {
		return err
	}
	t := agg.(*domain.Trigger)
	if t.Deleted {
		return domain.Errorf(domain.ENotFound, "trigger %s not found", id)
	}
	return withVersion(c, http.StatusOK, v, delivery.SummarizeTrigger(t))
}

func (s *Server) rotateTrigger(c echo.Context) error {
	secret, hash := NewTriggerSecret()
	agg, v, err := s.deliveryCommand(c, domain.TriggerStream(c.Param("project"), c.Param("id")), "trigger",
		func(cur projections.Aggregate) ([]domain.Event, error) {
			return cur.(*domain.Trigger).RotateSecret(hash)
		})
	if err != nil {
		return err
	}
	url, path := triggerURL(c, c.Param("id"))
	return withVersion(c, http.StatusOK, v, triggerSecretView{Trigger: delivery.SummarizeTrigger(agg.(*domain.Trigger)),
		URL: url, Path: path, Secret: secret})
}

func (s *Server) triggerCommand(c echo.Context, cmd func(*domain.Trigger) ([]domain.Event, error)) error {
	agg, v, err := s.deliveryCommand(c, domain.TriggerStream(c.Param("project"), c.Param("id")), "trigger",
		func(cur projections.Aggregate) ([]domain.Event, error) { return cmd(cur.(*domain.Trigger)) })
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, delivery.SummarizeTrigger(agg.(*domain.Trigger)))
}

func (s *Server) enableTrigger(c echo.Context) error {
	return s.triggerCommand(c, (*domain.Trigger).Enable)
}
func (s *Server) disableTrigger(c echo.Context) error {
	return s.triggerCommand(c, (*domain.Trigger).Disable)
}
func (s *Server) deleteTrigger(c echo.Context) error {
	return s.triggerCommand(c, (*domain.Trigger).Delete)
}

// RegisterHooks adds the public webhook endpoint, POST /hooks/v1/triggers/{id}: no bearer token,
// the trigger's secret instead (header X-Vexil-Trigger-Secret, or ?secret=).
func (s *Server) RegisterHooks(e *echo.Echo) {
	e.POST(HooksPath+":id", s.callTrigger, httpapi.NoStore)
}

// errTriggerRefused is the one answer to an unknown trigger, a deleted one, a missing secret and
// a wrong secret, so the answer never tells which trigger ids exist.
var errTriggerRefused = domain.Errorf(domain.EUnauthorized, "unknown trigger or wrong secret")

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
	view, err := s.app.callTrigger(c.Request().Context(), id, secret, remote, httpapi.RequestID(c), allow)
	if err == errTriggerRefused {
		// Logged with the trigger id and the caller, never the secret.
		s.log.Warn("webhook trigger refused: unknown trigger or wrong secret", "trigger", truncateID(id),
			"remote_addr", remote, "forwarded_for", truncateID(c.Request().Header.Get("X-Forwarded-For")),
			"request_id", httpapi.RequestID(c))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, view)
}

func truncateID(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}

// callTrigger verifies a webhook call against the trigger's stream in the event store (so a
// rotated secret or a disable takes effect the moment it is committed) and fires it: the flag's
// FlagToggled (actor "trigger:<id>"), then the trigger's TriggerFired.
//
// allow is the caller's rate limit, asked only once the secret is verified, so that calls with
// a wrong secret never use up the trigger's allowance.
func (a *App) callTrigger(ctx context.Context, id, secret, remote, requestID string, allow func() error) (*triggerFiredView, error) {
	if secret == "" || !domain.ValidKey(id) {
		return nil, errTriggerRefused
	}
	project, err := delivery.TriggerProject(ctx, a.pool, id)
	if domain.ErrorCode(err) == domain.ENotFound {
		return nil, errTriggerRefused
	}
	if err != nil {
		return nil, err
	}
	stream := domain.TriggerStream(project, id)
	events, err := a.store.Load(ctx, stream)
	if err != nil {
		return nil, err
	}
	t, err := domain.FoldTrigger(events)
	if err != nil {
		return nil, err
	}
	hash := HashToken(secret)
	if !t.Verify(hash) {
		return nil, errTriggerRefused
	}
	if err := allow(); err != nil {
		return nil, err
	}
	cat, err := a.Catalog(ctx, project)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	m := domain.Metadata{Actor: "trigger:" + id, RequestID: requestID,
		Reason: fmt.Sprintf("webhook trigger %q turned the flag %s (called from %s)", t.Name, t.Action, remote)}
	var triggerEvents []domain.Event
	for attempt := 0; ; attempt++ {
		_, _, err = a.Execute(ctx, domain.FlagStream(project, t.Flag), AnyVersion, m, func(cur projections.Aggregate) ([]domain.Event, error) {
			f, _ := cur.(*domain.Flag)
			fe, te, err := t.Fire(hash, remote, f, cat, now)
			triggerEvents = te
			return fe, err
		})
		if IsVersionConflict(err) && attempt < 3 {
			continue
		}
		break
	}
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		_, _, err = a.Execute(ctx, stream, AnyVersion, m, func(projections.Aggregate) ([]domain.Event, error) {
			return triggerEvents, nil
		})
		if IsVersionConflict(err) && attempt < 3 {
			continue
		}
		break
	}
	if err != nil {
		// The flag was toggled; only the trigger's usage record is missing.
		a.log.Error("webhook trigger fired but its use was not recorded", "trigger", id, "err", err)
	}
	changed := false
	if len(triggerEvents) > 0 {
		if fired, ok := triggerEvents[0].(*domain.TriggerFired); ok {
			changed = fired.Changed
		}
	}
	return &triggerFiredView{Trigger: id, Flag: t.Flag, Environment: t.Environment, On: t.Action == domain.TriggerOn,
		Changed: changed}, nil
}
