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
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
)

// OFREP error codes (OpenFeature's, as the protocol names them).
const (
	codeParseError     = "PARSE_ERROR"
	codeInvalidContext = "INVALID_CONTEXT"
	codeTargetingKey   = "TARGETING_KEY_MISSING"
	codeFlagNotFound   = "FLAG_NOT_FOUND"
	codeGeneral        = "GENERAL"
)

// evaluationFailure is OFREP's evaluationFailure (and flagNotFound).
type evaluationFailure struct {
	Key          string `json:"key,omitempty"`
	ErrorCode    string `json:"errorCode"`
	ErrorDetails string `json:"errorDetails,omitempty"`
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

// readContext reads the request body into st.buf and decodes its context into st: by hand for
// the flat contexts SDKs send, through encoding/json for anything else (ofrepjson.go). raw is the
// context value's bytes (in st.buf), which the bulk ETag hashes. A failure has already been
// answered (ok false).
func (s *Server) readContext(c echo.Context, key string, st *evalState) (raw []byte, ctx *evaluation.Context, ok bool, err error) {
	req := c.Request()
	if err := readBody(req.Body, req.ContentLength, s.opts.MaxContextBytes, &st.buf); err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, nil, false, ofrepError(c, http.StatusRequestEntityTooLarge, key, codeInvalidContext,
				"the request is larger than the limit of "+strconv.FormatInt(s.opts.MaxContextBytes, 10)+" bytes")
		}
		return nil, nil, false, ofrepError(c, http.StatusBadRequest, key, codeParseError, "could not read the request body")
	}
	body := st.buf
	attrs, raw, fast := decodeFlatRequest(body, st.attrs)
	if !fast {
		clear(st.attrs) // what the fast path had decoded before it declined
		var code, details string
		if attrs, raw, code, details = decodeRequestJSON(body); code != "" {
			return nil, nil, false, ofrepError(c, http.StatusBadRequest, key, code, details)
		}
	}
	if attrs == nil {
		attrs = st.attrs // empty
	}
	if tk, present := attrs[evaluation.OpenFeatureTargetingKey]; present {
		if _, isString := tk.(string); !isString {
			return nil, nil, false, ofrepError(c, http.StatusBadRequest, key, codeInvalidContext, "targetingKey must be a string")
		}
	}
	return raw, contextOf(&st.ctx, attrs), true, nil
}

// decodeRequestJSON decodes an OFREP request body with encoding/json: the reference the fast
// path must agree with, and the decoder of every body it declines. A failure is an OFREP error
// code and its details; attrs is nil without a context.
func decodeRequestJSON(body []byte) (attrs map[string]any, raw []byte, code, details string) {
	var req evaluationRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, nil, codeParseError, httpapi.JSONProblem(err)
		}
	}
	raw = bytes.TrimSpace(req.Context)
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		if raw[0] != '{' {
			return nil, nil, codeInvalidContext, "context must be a JSON object"
		}
		if err := json.Unmarshal(raw, &attrs); err != nil {
			return nil, nil, codeInvalidContext, "context is not a valid JSON object: " + httpapi.JSONProblem(err)
		}
	}
	return attrs, raw, "", ""
}

// errTooLarge: the body is larger than MaxContextBytes.
var errTooLarge = errors.New("request body too large")

// readBody reads r into *buf, at most limit bytes (errTooLarge past that), sized by the declared
// length when there is one. It is http.MaxBytesReader without the wrapper allocated per request.
func readBody(r io.Reader, declared, limit int64, buf *[]byte) error {
	if declared > limit {
		return errTooLarge
	}
	b := (*buf)[:0]
	if declared > 0 && int64(cap(b)) < declared+1 {
		b = make([]byte, 0, declared+1) // +1 so the final read sees EOF without growing
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		*buf = b
		if int64(len(b)) > limit {
			return errTooLarge
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// answerAuthError answers an authorization failure in the protocol's shape.
func answerAuthError(c echo.Context, key string, err error) error {
	status, body := httpapi.Body(err)
	httpapi.SetRetryAfter(c, status, body)
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		return c.JSON(status, evaluationFailure{Key: key, ErrorCode: codeGeneral, ErrorDetails: body.Message})
	}
	return c.JSON(status, body)
}

// visible reports whether a key may see a flag: client-side keys see only client-side flags.
func visible(kind string, f *domain.FlagConfig) bool {
	return kind == domain.ServerSideKey || f.ClientSide
}

// appendSuccess appends OFREP's evaluationSuccess for r: key, value, reason, variant, and the
// metadata SDKs attach to their evaluation events (flagVersion, ruleId, and experiment, so
// exposures are attributed to the experiment that served them). ruleId goes to server keys only:
// a client key is public (it ships in web and mobile apps), and rule ids would let anyone map a
// flag's targeting by probing contexts.
func (snap *snapshot) appendSuccess(dst []byte, r *evaluation.Result, kind string) []byte {
	dst = append(dst, `{"key":`...)
	dst = appendString(dst, r.FlagKey)
	dst = append(dst, `,"value":`...)
	dst = append(dst, snap.valueJSON(r)...)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, r.Reason)
	if r.Variation != "" {
		dst = append(dst, `,"variant":`...)
		dst = appendString(dst, r.Variation)
	}
	dst = append(dst, `,"metadata":{`...)
	if r.Experiment != "" {
		dst = append(dst, `"experiment":`...)
		dst = appendString(dst, r.Experiment)
		dst = append(dst, ',')
	}
	dst = append(dst, `"flagVersion":`...)
	dst = strconv.AppendInt(dst, r.FlagVersion, 10)
	if r.RuleID != "" && kind == domain.ServerSideKey {
		dst = append(dst, `,"ruleId":`...)
		dst = appendString(dst, r.RuleID)
	}
	return append(dst, "}}"...)
}

// appendFailure appends OFREP's evaluationFailure.
func appendFailure(dst []byte, f evaluationFailure) []byte {
	dst = append(dst, '{')
	if f.Key != "" {
		dst = append(dst, `"key":`...)
		dst = appendString(dst, f.Key)
		dst = append(dst, ',')
	}
	dst = append(dst, `"errorCode":`...)
	dst = appendString(dst, f.ErrorCode)
	if f.ErrorDetails != "" {
		dst = append(dst, `,"errorDetails":`...)
		dst = appendString(dst, f.ErrorDetails)
	}
	return append(dst, '}')
}

// writeJSON answers status with a JSON body already encoded. A body larger than net/http's
// chunking buffer gets its Content-Length, so it is not chunked; net/http computes it for the
// smaller ones.
func writeJSON(c echo.Context, status int, body []byte) error {
	h := c.Response().Header()
	h[echo.HeaderContentType] = jsonContentType
	if len(body) > 2048 {
		h[echo.HeaderContentLength] = []string{strconv.Itoa(len(body))}
	}
	c.Response().WriteHeader(status)
	_, err := c.Response().Write(body)
	return err
}

// jsonContentType is shared by every answer; net/http only reads it.
var jsonContentType = []string{echo.MIMEApplicationJSON}

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
	st := getEvalState()
	defer st.put()
	_, ctx, ok, err := s.readContext(c, key, st)
	if !ok {
		return err
	}
	i, found := snap.compiled.Index(key)
	if !found || i >= len(snap.configs) || !visible(k.Kind, snap.configs[i]) {
		return ofrepError(c, http.StatusNotFound, key, codeFlagNotFound, "flag "+key+" is not found in this environment")
	}
	r := snap.compiled.EvaluateIndex(i, ctx)
	// An exposure logged here carries its evaluation into the flag's stats: the counters keep it
	// for /metrics only, so it is not stored twice.
	logged := r.Experiment != "" && ctx.Key != "" && s.exposures.logs(snap.id) &&
		s.exposures.record(snap.id, ctx.Key, time.Now(), &r)
	if k.Kind == domain.ServerSideKey {
		snap.counts.recordAt(i, &r, logged)
	}
	out := st.buf[:0] // the request body is decoded: reuse its buffer for the answer
	if r.IsError() {
		status, f := failure(&r)
		out = appendFailure(out, f)
		st.buf = out
		return writeJSON(c, status, out)
	}
	out = append(snap.appendAnswer(out, i, &r, k.Kind), '\n')
	st.buf = out
	return writeJSON(c, http.StatusOK, out)
}

// bulkETag identifies a bulk answer by what the key can see of the environment and the exact
// context, so a matching If-None-Match is answered 304 without evaluating anything. Server-side
// keys see everything: the ruleset version. Client-side keys see the client_side flags: the
// client view's digest, which a change to anything else leaves as it was (so a browser polling
// keeps getting 304 across changes it cannot observe).
func bulkETag(snap *snapshot, kind string, rawContext []byte) string {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write(rawContext)
	if kind == domain.ServerSideKey {
		return `"` + strconv.FormatInt(snap.version, 10) + "-" + strconv.FormatUint(h.Sum64(), 36) + `"`
	}
	return `"c` + snap.client.etag + "-" + strconv.FormatUint(h.Sum64(), 36) + `"`
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
	st := getEvalState()
	defer st.put()
	raw, ctx, ok, err := s.readContext(c, "", st)
	if !ok {
		return err
	}
	etag := bulkETag(snap, k.Kind, raw)
	c.Response().Header().Set("ETag", etag)
	c.Response().Header()["Cache-Control"] = revalidate
	if etagMatches(c.Request().Header.Get("If-None-Match"), etag) {
		return c.NoContent(http.StatusNotModified)
	}
	var filter func(*domain.FlagConfig) bool
	if k.Kind == domain.ClientSideKey {
		filter = clientSideOnly
	}
	st.results = snap.compiled.AppendAll(st.results[:0], ctx, filter)
	out := append(st.buf[:0], `{"flags":[`...)
	logExposures := ctx.Key != "" && s.exposures.logs(snap.id)
	var now time.Time
	cursor := 0 // counts.next's position in the evaluation order
	for i := range st.results {
		r := &st.results[i]
		at := snap.counts.next(&cursor, r.FlagKey)
		logged := false
		if logExposures && r.Experiment != "" {
			if now.IsZero() {
				now = time.Now()
			}
			logged = s.exposures.record(snap.id, ctx.Key, now, r)
		}
		if k.Kind == domain.ServerSideKey {
			snap.counts.recordAt(at, r, logged)
		}
		if i > 0 {
			out = append(out, ',')
		}
		if r.IsError() {
			_, f := failure(r)
			out = appendFailure(out, f)
			continue
		}
		out = snap.appendAnswer(out, at, r, k.Kind)
	}
	// The SSE endpoint is listed under both names the protocol's drafts used.
	conn := append([]byte(`{"type":"sse","url":`), appendString(nil, streamURL(c, k.Kind))...)
	conn = append(conn, `,"inactivityDelaySec":120}`...)
	out = append(out, `],"refreshConnections":[`...)
	out = append(out, conn...)
	out = append(out, `],"eventStreams":[`...)
	out = append(out, conn...)
	// The ruleset version moves with changes client-side keys cannot see: their answer, which
	// must be the same for the same ETag, carries the client view's instead.
	if k.Kind == domain.ServerSideKey {
		out = append(out, `],"metadata":{"version":`...)
		out = strconv.AppendInt(out, snap.version, 10)
	} else {
		out = append(out, `],"metadata":{"clientVersion":"`...)
		out = append(out, snap.client.etag...)
		out = append(out, '"')
	}
	out = append(out, "}}\n"...)
	st.buf = out
	return writeJSON(c, http.StatusOK, out)
}

func clientSideOnly(f *domain.FlagConfig) bool { return f.ClientSide }

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
			// Not (yet) in the protocol (open-feature/protocol issue 71): where OpenFeature's
			// track() calls go, one event or {"events": [...]} per request (track.go).
			"tracking": map[string]any{"enabled": s.opts.Events != nil, "url": TrackPath, "method": http.MethodPost,
				"batch": true, "maxEventsPerRequest": s.maxTrackEvents()},
		},
	})
}

// maxTrackEvents is the most tracking events one request may carry (0 without ingestion).
func (s *Server) maxTrackEvents() int {
	if s.opts.Events == nil {
		return 0
	}
	return s.opts.Events.Limits().MaxBatch
}

// GET /sdk/v1/ruleset: the whole compiled ruleset for local evaluation (server-side keys only).
func (s *Server) ruleset(c echo.Context) error {
	_, snap, err := s.authorize(c, true, false)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", snap.etag)
	c.Response().Header()["Cache-Control"] = revalidate
	if etagMatches(c.Request().Header.Get("If-None-Match"), snap.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, snap.ruleset)
}

// revalidate is the Cache-Control of keyed documents (bulk evaluation, ruleset): a browser or
// SDK may keep one and must revalidate it with its ETag (If-None-Match, 304) before each use;
// no shared cache may keep it (it answers one key, and the bulk answer one context). Shared once
// so the hot path allocates nothing for it.
var revalidate = []string{"private, no-cache"}
