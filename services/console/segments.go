package console

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/catalog"
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
	items, next, err := catalog.ListSegments(c.Request().Context(), s.app.pool, q)
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
	project := c.Param("project")
	if !domain.ValidKey(req.Key) {
		return domain.Invalid("key", "key must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
	}
	cat, err := s.app.Catalog(c.Request().Context(), project)
	if err != nil {
		return err
	}
	agg, v, err := s.app.Execute(c.Request().Context(), domain.SegmentStream(project, req.Key), 0, meta(c),
		func(projections.Aggregate) ([]domain.Event, error) {
			return domain.CreateSegment(domain.NewSegment{Project: project, Key: req.Key, SegmentDefinition: req.definition()}, cat)
		})
	if err != nil {
		return alreadyExists(err, "segment", req.Key)
	}
	return withVersion(c, http.StatusCreated, v, agg)
}

func (s *Server) getSegment(c echo.Context) error {
	project, key := c.Param("project"), c.Param("segment")
	agg, v, err := s.app.load(c.Request().Context(), domain.SegmentStream(project, key), "segment "+key)
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

func (s *Server) segmentCommand(c echo.Context, cmd func(*domain.Segment, *domain.Catalog) ([]domain.Event, error)) error {
	expected, err := expectedVersion(c)
	if err != nil {
		return err
	}
	project, key := c.Param("project"), c.Param("segment")
	cat, err := s.app.Catalog(c.Request().Context(), project)
	if err != nil {
		return err
	}
	agg, v, err := s.app.Execute(c.Request().Context(), domain.SegmentStream(project, key), expected, meta(c),
		func(cur projections.Aggregate) ([]domain.Event, error) {
			if cur == nil {
				return nil, domain.Errorf(domain.ENotFound, "segment %q not found in project %q", key, project)
			}
			return cmd(cur.(*domain.Segment), cat)
		})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

func (s *Server) updateSegment(c echo.Context) error {
	var req segmentRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.Key != "" && req.Key != c.Param("segment") {
		return domain.Invalid("key", "a segment's key cannot change")
	}
	return s.segmentCommand(c, func(seg *domain.Segment, cat *domain.Catalog) ([]domain.Event, error) {
		return seg.Update(req.definition(), cat)
	})
}

func (s *Server) archiveSegment(c echo.Context) error {
	return s.segmentCommand(c, func(seg *domain.Segment, cat *domain.Catalog) ([]domain.Event, error) {
		return seg.Archive(cat)
	})
}

func (s *Server) restoreSegment(c echo.Context) error {
	return s.segmentCommand(c, func(seg *domain.Segment, cat *domain.Catalog) ([]domain.Event, error) {
		return seg.Restore()
	})
}
