package sdkapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/roles/ingest"
)

// The core's edge endpoints (docs/edge.md). An edge process (services/roles/edge) authenticates with an
// edge token and follows its core through them: GET MirrorPath is everything it serves (rulesets
// and SDK keys of the token's projects and environments) with an ETag; GET MirrorChangesPath is
// an SSE stream that says when that document may have changed; POST MirrorEventsPath takes the
// SDK event batches the edge accepted, already stamped with their event ids, so a batch sent
// twice (a retry after a lost answer) is stored once.
const (
	MirrorPath        = "/edge/v1/mirror"
	MirrorChangesPath = "/edge/v1/changes"
	MirrorEventsPath  = "/edge/v1/events"
	// MirrorBatchesType is the media type of POST MirrorEventsPath: telemetry batches in their
	// stream encoding (telemetry.Batch.Marshal), each preceded by its length as a uvarint.
	MirrorBatchesType = "application/vnd.vexil.batches"
	// maxMirrorEventsBody bounds one POST MirrorEventsPath.
	maxMirrorEventsBody = 16 << 20
)

// EdgeScope is what an edge token reaches: one project (or, "", every project) and some of its
// environments (none listed: all).
type EdgeScope struct {
	Project      string
	Environments []string
}

// Allows reports whether the scope covers an environment.
func (e EdgeScope) Allows(project, environment string) bool {
	if e.Project != "" && e.Project != project {
		return false
	}
	return len(e.Environments) == 0 || slices.Contains(e.Environments, environment)
}

// Mirror is the document an edge serves from: every environment of its scope with its ruleset,
// and the SDK keys of those environments. It is also the edge's snapshot file.
type Mirror struct {
	Environments []MirrorEnvironment `json:"environments"`
	Keys         []MirrorKey         `json:"sdk_keys"`
	// ExposuresOff lists the environments ("project/environment") whose server_exposures setting
	// is off, so the edge logs exposures where the core would.
	ExposuresOff []string `json:"server_exposures_off"`
}

// MirrorEnvironment is one environment's ruleset as the server-side SDKs download it.
type MirrorEnvironment struct {
	Project     string          `json:"project"`
	Environment string          `json:"environment"`
	Version     int64           `json:"version"`
	Ruleset     json.RawMessage `json:"ruleset"`
}

// MirrorKey is one valid SDK key.
type MirrorKey struct {
	Key         string `json:"key"`
	Project     string `json:"project"`
	Environment string `json:"environment"`
	Kind        string `json:"kind"`
}

// MirrorETag is the strong ETag of a mirror document's JSON body.
func MirrorETag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"m` + hex.EncodeToString(sum[:12]) + `"`
}

// authorizeEdge resolves the request's edge token.
func (s *Server) authorizeEdge(c echo.Context) (EdgeScope, error) {
	if s.opts.EdgeAuth == nil {
		return EdgeScope{}, domain.Errorf(domain.ENotFound, "this server does not serve edges")
	}
	secret, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	if !ok || strings.TrimSpace(secret) == "" {
		return EdgeScope{}, domain.Errorf(domain.EUnauthorized, "an edge token is required: Authorization: Bearer <token>")
	}
	return s.opts.EdgeAuth(c.Request().Context(), strings.TrimSpace(secret))
}

// mirrorOf builds the mirror document of scope from memory (and the exposure settings).
func (s *Server) mirrorOf(ctx context.Context, scope EdgeScope) (Mirror, error) {
	m := Mirror{Environments: []MirrorEnvironment{}, Keys: []MirrorKey{}, ExposuresOff: []string{}}
	for _, snap := range s.snaps.all() {
		if scope.Allows(snap.id.project, snap.id.environment) {
			m.Environments = append(m.Environments, MirrorEnvironment{Project: snap.id.project,
				Environment: snap.id.environment, Version: snap.version, Ruleset: snap.ruleset})
		}
	}
	slices.SortFunc(m.Environments, func(a, b MirrorEnvironment) int {
		return strings.Compare(a.Project+"/"+a.Environment, b.Project+"/"+b.Environment)
	})
	for key, k := range *s.snaps.keys.Load() {
		if scope.Allows(k.Project, k.Environment) {
			m.Keys = append(m.Keys, MirrorKey{Key: key, Project: k.Project, Environment: k.Environment, Kind: k.Kind})
		}
	}
	slices.SortFunc(m.Keys, func(a, b MirrorKey) int { return strings.Compare(a.Key, b.Key) })
	if s.opts.ExposuresOff != nil {
		off, err := s.opts.ExposuresOff(ctx)
		if err != nil {
			return Mirror{}, err
		}
		for _, e := range off {
			if p, env, ok := strings.Cut(e, "/"); ok && scope.Allows(p, env) {
				m.ExposuresOff = append(m.ExposuresOff, e)
			}
		}
	}
	return m, nil
}

// GET /edge/v1/mirror: the mirror document of the edge token's scope, with an ETag;
// If-None-Match with the current one answers 304.
func (s *Server) mirror(c echo.Context) error {
	scope, err := s.authorizeEdge(c)
	if err != nil {
		return err
	}
	m, err := s.mirrorOf(c.Request().Context(), scope)
	if err != nil {
		return err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("sdkapi: marshal mirror: %w", err)
	}
	etag := MirrorETag(body)
	h := c.Response().Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	if c.Request().Header.Get("If-None-Match") == etag {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// GET /edge/v1/changes: SSE. An event "changed" at once and whenever a ruleset or the SDK keys
// change (not only of this scope: the edge's conditional GET of the mirror tells); its id is a
// generation number of this process. Heartbeat comments keep idle proxies from closing it.
func (s *Server) mirrorChanges(c echo.Context) error {
	if _, err := s.authorizeEdge(c); err != nil {
		return err
	}
	w := c.Response()
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 256)
	done := c.Request().Context().Done()
	for {
		gen, changed := s.snaps.mirrorGeneration()
		bw.WriteString("id: " + strconv.FormatUint(gen, 10) + "\nevent: changed\ndata: {}\n\n")
		if !s.waitForChange(w, bw, done, changed) {
			return nil
		}
	}
}

// waitForChange flushes bw and writes heartbeats until changed closes (true) or the client goes
// (false).
func (s *Server) waitForChange(w *echo.Response, bw *bufio.Writer, done <-chan struct{}, changed <-chan struct{}) bool {
	for {
		if err := bw.Flush(); err != nil {
			return false
		}
		w.Flush()
		select {
		case <-done:
			return false
		case <-s.stopping:
			return false
		case <-changed:
			return true
		case <-s.beats.next():
			bw.WriteString(": heartbeat\n\n")
		}
	}
}

// mirrorEventsAnswer is the 202 of POST /edge/v1/events.
type mirrorEventsAnswer struct {
	Batches int `json:"batches"`
	Events  int `json:"events"`
}

// POST /edge/v1/events: batches an edge accepted from SDKs. Each must lie in the token's scope
// and be valid; they go to the telemetry stream in order. A refusal (429/503 with Retry-After)
// may come after some batches went: the edge sends them all again, and the event ids make the
// second copy store nothing.
func (s *Server) mirrorEvents(c echo.Context) error {
	scope, err := s.authorizeEdge(c)
	if err != nil {
		return err
	}
	if s.opts.Events == nil {
		return domain.Errorf(domain.EUnavailable, "event ingestion is not configured on this server")
	}
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != MirrorBatchesType {
		return domain.Errorf(domain.EInvalid, "Content-Type must be %s", MirrorBatchesType)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxMirrorEventsBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &domain.Error{Code: domain.ETooLarge, Message: fmt.Sprintf("the body is larger than %d bytes", maxMirrorEventsBody)}
		}
		return domain.Errorf(domain.EInvalid, "could not read the request body")
	}
	batches, err := DecodeBatches(body)
	if err != nil {
		return domain.Errorf(domain.EInvalid, "%s", err.Error())
	}
	for i, b := range batches {
		if !scope.Allows(b.Project, b.Environment) {
			return domain.Errorf(domain.EForbidden, "batch %d is for %s/%s, outside this edge token's reach", i, b.Project, b.Environment)
		}
	}
	answer := mirrorEventsAnswer{}
	for _, b := range batches {
		if err := s.opts.Events.Publish(c.Request().Context(), b); err != nil {
			if secs, ok := ingest.RetryAfter(err); ok {
				c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			}
			return err
		}
		answer.Batches++
		answer.Events += b.Len()
	}
	return c.JSON(http.StatusAccepted, answer)
}

// EncodeBatches appends the body of POST /edge/v1/events for payloads (each a
// telemetry.Batch.Marshal) to out.
func EncodeBatches(out []byte, payloads ...[]byte) []byte {
	for _, p := range payloads {
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}

// DecodeBatches reads the body of POST /edge/v1/events; every batch must be valid.
func DecodeBatches(body []byte) ([]*telemetry.Batch, error) {
	var out []*telemetry.Batch
	r := bytes.NewReader(body)
	for r.Len() > 0 {
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.Len()) {
			return nil, fmt.Errorf("batch %d: truncated body", len(out))
		}
		p := make([]byte, n)
		_, _ = io.ReadFull(r, p)
		b, err := telemetry.UnmarshalBatch(p)
		if err != nil {
			return nil, fmt.Errorf("batch %d: %w", len(out), err)
		}
		if err := b.Validate(); err != nil {
			return nil, fmt.Errorf("batch %d: %w", len(out), err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("the body holds no batch")
	}
	return out, nil
}

// mirrorGeneration returns the number of changes so far and a channel closed at the next one.
func (s *Snapshots) mirrorGeneration() (uint64, <-chan struct{}) {
	s.mirrorMu.Lock()
	defer s.mirrorMu.Unlock()
	if s.mirrorNext == nil {
		s.mirrorNext = make(chan struct{})
	}
	return s.mirrorGen, s.mirrorNext
}

// mirrorChanged wakes the change streams of edges: a ruleset or the SDK keys changed.
func (s *Snapshots) mirrorChanged() {
	s.mirrorMu.Lock()
	defer s.mirrorMu.Unlock()
	s.mirrorGen++
	if s.mirrorNext != nil {
		close(s.mirrorNext)
		s.mirrorNext = nil
	}
}

// sameKeys reports whether two key sets are equal (a reconciliation that changed nothing wakes
// no edge).
func sameKeys(a, b map[string]access.SDKKey) bool { return maps.Equal(a, b) }
