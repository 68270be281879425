package sdkapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/services/httpapi"
)

// OFREP error codes (OpenFeature's, as the protocol names them).
const (
	codeParseError     = "PARSE_ERROR"
	codeInvalidContext = "INVALID_CONTEXT"
	codeTargetingKey   = "TARGETING_KEY_MISSING"
	codeFlagNotFound   = "FLAG_NOT_FOUND"
	codeGeneral        = "GENERAL"
)

// evaluationSuccess is OFREP's evaluationSuccess.
type evaluationSuccess struct {
	Key      string         `json:"key"`
	Value    any            `json:"value"`
	Reason   string         `json:"reason"`
	Variant  string         `json:"variant,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// evaluationFailure is OFREP's evaluationFailure (and flagNotFound).
type evaluationFailure struct {
	Key          string `json:"key,omitempty"`
	ErrorCode    string `json:"errorCode"`
	ErrorDetails string `json:"errorDetails,omitempty"`
}

// refreshConnection is OFREP's SSE change-notification endpoint (ADR 0008).
type refreshConnection struct {
	Type               string `json:"type"`
	URL                string `json:"url"`
	InactivityDelaySec int    `json:"inactivityDelaySec,omitempty"`
}

// bulkSuccess is OFREP's bulkEvaluationSuccess. The SSE endpoint is listed under both names the
// protocol's drafts used (refreshConnections, eventStreams), so providers of either draft find it.
type bulkSuccess struct {
	Flags              []any               `json:"flags"`
	RefreshConnections []refreshConnection `json:"refreshConnections,omitempty"`
	EventStreams       []refreshConnection `json:"eventStreams,omitempty"`
	Metadata           map[string]any      `json:"metadata,omitempty"`
}

// evaluationRequest is OFREP's (bulk)evaluationRequest. Unknown fields are ignored, as the
// protocol may grow.
type evaluationRequest struct {
	Context json.RawMessage `json:"context"`
}

// ofrepError answers an OFREP failure body with status.
func ofrepError(c echo.Context, status int, key, code, details string) error {
	return c.JSON(status, evaluationFailure{Key: key, ErrorCode: code, ErrorDetails: details})
}

// readContext reads the request and returns the raw context bytes and the decoded context.
// A failure has already been answered (ok false).
func (s *Server) readContext(c echo.Context, key string) (raw []byte, ctx *evaluation.Context, ok bool, err error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, s.opts.MaxContextBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, false, ofrepError(c, http.StatusRequestEntityTooLarge, key, codeInvalidContext,
				"the request is larger than the limit of "+strconv.FormatInt(s.opts.MaxContextBytes, 10)+" bytes")
		}
		return nil, nil, false, ofrepError(c, http.StatusBadRequest, key, codeParseError, "could not read the request body")
	}
	var req evaluationRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, nil, false, ofrepError(c, http.StatusBadRequest, key, codeParseError, "malformed JSON: "+err.Error())
		}
	}
	attrs := map[string]any{}
	trimmed := bytes.TrimSpace(req.Context)
	if len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		if trimmed[0] != '{' {
			return nil, nil, false, ofrepError(c, http.StatusBadRequest, key, codeInvalidContext, "context must be a JSON object")
		}
		if err := json.Unmarshal(trimmed, &attrs); err != nil {
			return nil, nil, false, ofrepError(c, http.StatusBadRequest, key, codeInvalidContext, "context is not a valid JSON object: "+err.Error())
		}
	}
	if tk, present := attrs[evaluation.OpenFeatureTargetingKey]; present {
		if _, isString := tk.(string); !isString {
			return nil, nil, false, ofrepError(c, http.StatusBadRequest, key, codeInvalidContext, "targetingKey must be a string")
		}
	}
	return trimmed, evaluation.FromOpenFeature(attrs), true, nil
}

// answerAuthError answers an authorization failure in the protocol's shape.
func answerAuthError(c echo.Context, key string, err error) error {
	status, body := httpapi.Body(err)
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		return c.JSON(status, evaluationFailure{Key: key, ErrorCode: codeGeneral, ErrorDetails: body.Message})
	}
	return c.JSON(status, body)
}

// visible reports whether a key may see a flag: client-side keys see only client-side flags.
func visible(kind string, f *domain.FlagConfig) bool {
	return kind == domain.ServerSideKey || f.ClientSide
}

func success(r *evaluation.Result) evaluationSuccess {
	md := map[string]any{"flagVersion": r.FlagVersion}
	if r.RuleID != "" {
		md["ruleId"] = r.RuleID
	}
	if r.Experiment != "" {
		// SDKs put it on the evaluation events they send, so exposures are attributed.
		md["experiment"] = r.Experiment
	}
	return evaluationSuccess{Key: r.FlagKey, Value: r.Value, Reason: r.Reason, Variant: r.Variation, Metadata: md}
}

// failure maps an evaluation error to its OFREP code and status.
func failure(r *evaluation.Result) (int, evaluationFailure) {
	f := evaluationFailure{Key: r.FlagKey, ErrorCode: r.ErrorCode, ErrorDetails: r.ErrorMessage}
	switch r.ErrorCode {
	case evaluation.ErrorFlagNotFound:
		return http.StatusNotFound, f
	case evaluation.ErrorTargetingKeyMissing, evaluation.ErrorParse:
		return http.StatusBadRequest, f
	}
	// OFREP's 400 codes are PARSE_ERROR, TARGETING_KEY_MISSING, INVALID_CONTEXT and GENERAL;
	// anything else (e.g. TYPE_MISMATCH, unreachable while writes are validated) is GENERAL.
	f.ErrorCode = codeGeneral
	return http.StatusBadRequest, f
}

// POST /ofrep/v1/evaluate/flags/{key}
func (s *Server) evaluateFlag(c echo.Context) error {
	key := c.Param("key")
	k, snap, err := s.authorize(c, false, false)
	if err != nil {
		return answerAuthError(c, key, err)
	}
	_, ctx, ok, err := s.readContext(c, key)
	if !ok {
		return err
	}
	if f, found := snap.compiled.Flag(key); !found || !visible(k.Kind, f) {
		return ofrepError(c, http.StatusNotFound, key, codeFlagNotFound, "flag "+key+" is not found in this environment")
	}
	r := snap.compiled.Evaluate(key, ctx)
	if k.Kind == domain.ServerSideKey {
		snap.counts.record(&r)
	}
	if r.IsError() {
		status, f := failure(&r)
		return c.JSON(status, f)
	}
	return c.JSON(http.StatusOK, success(&r))
}

// bulkETag identifies a bulk answer by the environment's ruleset version and the exact context,
// so a matching If-None-Match is answered 304 without evaluating anything.
func bulkETag(snap *snapshot, kind string, rawContext []byte) string {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write(rawContext)
	return `"` + strconv.FormatInt(snap.version, 10) + "-" + strconv.FormatUint(h.Sum64(), 36) + `"`
}

func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, candidate := range strings.Split(header, ",") {
		candidate = strings.TrimPrefix(strings.TrimSpace(candidate), "W/")
		if candidate == etag || candidate == "*" {
			return true
		}
	}
	return false
}

// POST /ofrep/v1/evaluate/flags
func (s *Server) evaluateFlags(c echo.Context) error {
	k, snap, err := s.authorize(c, false, false)
	if err != nil {
		return answerAuthError(c, "", err)
	}
	raw, ctx, ok, err := s.readContext(c, "")
	if !ok {
		return err
	}
	etag := bulkETag(snap, k.Kind, raw)
	c.Response().Header().Set("ETag", etag)
	if etagMatches(c.Request().Header.Get("If-None-Match"), etag) {
		return c.NoContent(http.StatusNotModified)
	}
	var filter func(*domain.FlagConfig) bool
	if k.Kind == domain.ClientSideKey {
		filter = func(f *domain.FlagConfig) bool { return f.ClientSide }
	}
	results := snap.compiled.EvaluateAll(ctx, filter)
	out := bulkSuccess{Flags: make([]any, 0, len(results)), Metadata: map[string]any{"version": snap.version}}
	for i := range results {
		r := &results[i]
		if k.Kind == domain.ServerSideKey {
			snap.counts.record(r)
		}
		if r.IsError() {
			_, f := failure(r)
			out.Flags = append(out.Flags, f)
			continue
		}
		out.Flags = append(out.Flags, success(r))
	}
	conn := refreshConnection{Type: "sse", URL: streamURL(c, k.Kind), InactivityDelaySec: 120}
	out.RefreshConnections = []refreshConnection{conn}
	out.EventStreams = out.RefreshConnections
	return c.JSON(http.StatusOK, out)
}

// streamURL is the SSE endpoint for this key. Client-side keys are public, so the URL carries the
// key for browsers' EventSource; server-side keys are secrets and stay in headers.
func streamURL(c echo.Context, kind string) string {
	u := c.Scheme() + "://" + c.Request().Host + "/sdk/v1/stream"
	if kind == domain.ClientSideKey {
		u += "?key=" + sdkKeyOf(c.Request(), false)
	}
	return u
}

// GET /ofrep/v1/configuration
func (s *Server) configuration(c echo.Context) error {
	if _, _, err := s.authorize(c, false, false); err != nil {
		return answerAuthError(c, "", err)
	}
	return c.JSON(http.StatusOK, map[string]any{
		"name": "vexil",
		"capabilities": map[string]any{
			"cacheInvalidation": map[string]any{"polling": map[string]any{"enabled": true, "minPollingIntervalMs": 1000}},
			"flagEvaluation":    map[string]any{"supportedTypes": []string{"boolean", "string", "int", "float", "object"}},
		},
	})
}

// GET /sdk/v1/ruleset: the whole compiled ruleset for local evaluation (server-side keys only).
func (s *Server) ruleset(c echo.Context) error {
	_, snap, err := s.authorize(c, true, false)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", snap.etag)
	if etagMatches(c.Request().Header.Get("If-None-Match"), snap.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, snap.ruleset)
}

func itoa(n int) string { return strconv.Itoa(n) }
