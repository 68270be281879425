package console

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
)

// segmentRequest creates (with key) or replaces (without) a segment's definition.
type segmentRequest struct {
	Key         string          `json:"key,omitempty"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
	Match       string          `json:"match,omitempty"`
	Clauses     []domain.Clause `json:"clauses,omitempty"`
	Included    []string        `json:"included,omitempty"`
	Excluded    []string        `json:"excluded,omitempty"`
}

func (r segmentRequest) definition() domain.SegmentDefinition {
	return domain.SegmentDefinition{Name: r.Name, Description: r.Description, Tags: r.Tags, Match: r.Match,
		Clauses: r.Clauses, Included: r.Included, Excluded: r.Excluded}
}

func (s *Server) listSegments(c echo.Context) error {
	q, err := s.listQuery(c)
	if err != nil {
		return err
	}
	items, next, err := s.app.Queries.ListSegments(c.Request().Context(), q)
	if err != nil {
		return err
	}
	if next, err = s.nextCursor(c, next); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

func (s *Server) createSegment(c echo.Context) error {
	var req segmentRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	seg, v, err := s.app.Commands.CreateSegment(c.Request().Context(), meta(c), app.CreateSegment{Project: c.Param("project"),
		Key: req.Key, Definition: req.definition()})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, seg)
}

func (s *Server) getSegment(c echo.Context) error {
	seg, v, err := s.app.Queries.Segment(c.Request().Context(), c.Param("project"), c.Param("segment"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, seg)
}

// segmentCommand runs a command on the segment named in the path and answers the segment after it.
func (s *Server) segmentCommand(c echo.Context, run func(context.Context, app.Meta, app.SegmentRef) (*domain.Segment, int64, error)) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	seg, v, err := run(c.Request().Context(), m, app.SegmentRef{Project: c.Param("project"), Segment: c.Param("segment")})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, seg)
}

func (s *Server) updateSegment(c echo.Context) error {
	var req segmentRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.Key != "" && req.Key != c.Param("segment") {
		return domain.Invalid("key", "a segment's key cannot change")
	}
	return s.segmentCommand(c, func(ctx context.Context, m app.Meta, ref app.SegmentRef) (*domain.Segment, int64, error) {
		return s.app.Commands.UpdateSegment(ctx, m, app.UpdateSegment{Project: ref.Project, Segment: ref.Segment, Definition: req.definition()})
	})
}

func (s *Server) archiveSegment(c echo.Context) error {
	return s.segmentCommand(c, func(ctx context.Context, m app.Meta, ref app.SegmentRef) (*domain.Segment, int64, error) {
		return s.app.Commands.ArchiveSegment(ctx, m, app.ArchiveSegment(ref))
	})
}

func (s *Server) restoreSegment(c echo.Context) error {
	return s.segmentCommand(c, func(ctx context.Context, m app.Meta, ref app.SegmentRef) (*domain.Segment, int64, error) {
		return s.app.Commands.RestoreSegment(ctx, m, app.RestoreSegment(ref))
	})
}
