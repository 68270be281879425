package app

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
)

// CreateSegment creates a segment in a project.
type CreateSegment struct {
	Project, Key string
	Definition   domain.SegmentDefinition
}

// CreateSegment runs CreateSegment.
func (c *Commands) CreateSegment(ctx context.Context, m Meta, cmd CreateSegment) (*domain.Segment, int64, error) {
	if !domain.ValidKey(cmd.Key) {
		return nil, 0, invalidKey("key")
	}
	cat, err := c.q.Catalog(ctx, cmd.Project)
	if err != nil {
		return nil, 0, err
	}
	m.Expected = Version(0)
	s, v, err := execute(ctx, c.c, domain.SegmentStream(cmd.Project, cmd.Key), m, func(*domain.Segment) ([]domain.Event, error) {
		return domain.CreateSegment(domain.NewSegment{Project: cmd.Project, Key: cmd.Key, SegmentDefinition: cmd.Definition}, cat)
	})
	return s, v, alreadyExists(err, "segment", cmd.Key)
}

func (c *Commands) onSegment(ctx context.Context, m Meta, project, segment string, decide func(*domain.Segment, *domain.Catalog) ([]domain.Event, error)) (*domain.Segment, int64, error) {
	cat, err := c.q.Catalog(ctx, project)
	if err != nil {
		return nil, 0, err
	}
	return existing(ctx, c.c, domain.SegmentStream(project, segment), m, notFound("segment %q not found in project %q", segment, project),
		func(s *domain.Segment) ([]domain.Event, error) { return decide(s, cat) })
}

// UpdateSegment replaces a segment's definition.
type UpdateSegment struct {
	Project, Segment string
	Definition       domain.SegmentDefinition
}

// UpdateSegment runs UpdateSegment.
func (c *Commands) UpdateSegment(ctx context.Context, m Meta, cmd UpdateSegment) (*domain.Segment, int64, error) {
	if err := c.gate(ctx, m, "UpdateSegment", cmd); err != nil {
		return nil, 0, err
	}
	return c.onSegment(ctx, m, cmd.Project, cmd.Segment, func(s *domain.Segment, cat *domain.Catalog) ([]domain.Event, error) {
		return s.Update(cmd.Definition, cat)
	})
}

// SegmentRef names one segment.
type SegmentRef struct{ Project, Segment string }

// ArchiveSegment archives a segment (refused while a flag uses it).
type ArchiveSegment SegmentRef

// ArchiveSegment runs ArchiveSegment.
func (c *Commands) ArchiveSegment(ctx context.Context, m Meta, cmd ArchiveSegment) (*domain.Segment, int64, error) {
	return c.onSegment(ctx, m, cmd.Project, cmd.Segment, func(s *domain.Segment, cat *domain.Catalog) ([]domain.Event, error) {
		return s.Archive(cat)
	})
}

// RestoreSegment brings an archived segment back.
type RestoreSegment SegmentRef

// RestoreSegment runs RestoreSegment.
func (c *Commands) RestoreSegment(ctx context.Context, m Meta, cmd RestoreSegment) (*domain.Segment, int64, error) {
	return c.onSegment(ctx, m, cmd.Project, cmd.Segment, func(s *domain.Segment, _ *domain.Catalog) ([]domain.Event, error) {
		return s.Restore()
	})
}
