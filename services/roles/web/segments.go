package web

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/catalog"
)

// The segments list: each live segment with its definition and the flags whose targeting uses it
// (in any environment, directly in an in_segment clause). The editor is segment_editor.go.

type segmentsData struct {
	frame
	Segments []segmentRow
}

type segmentRow struct {
	Segment *domain.Segment
	UsedBy  []string // flag keys
}

func (s *Server) segmentsPage(c echo.Context) error {
	ctx := c.Request().Context()
	project := c.Param("project")
	p, err := s.cmds.Project(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	segs, err := s.cmds.Segments(ctx, project)
	if err != nil {
		return s.fail(c, err)
	}
	usedBy := map[string][]string{}
	q := catalog.ListQuery{Project: project, Limit: catalog.MaxPageSize}
	for {
		flags, next, err := s.cmds.Flags(ctx, q)
		if err != nil {
			return s.fail(c, err)
		}
		for _, f := range flags {
			for _, seg := range segmentsUsed(f) {
				usedBy[seg] = append(usedBy[seg], f.Key)
			}
		}
		if next == "" {
			break
		}
		q.Cursor = next
	}
	d := segmentsData{frame: s.baseFrame(c, "Segments", "segments", p)}
	for _, sg := range segs {
		d.Segments = append(d.Segments, segmentRow{Segment: sg, UsedBy: usedBy[sg.Key]})
	}
	return s.render(c, http.StatusOK, "segments", d)
}

// segmentsUsed lists the segments a flag's targeting names, in any environment, once each.
func segmentsUsed(f *domain.Flag) []string {
	var out []string
	for _, t := range f.Environments {
		if t == nil {
			continue
		}
		for _, r := range t.Rules {
			for _, cl := range r.Clauses {
				if cl.Operator != domain.OpInSegment {
					continue
				}
				for _, v := range cl.Values {
					if k := fmt.Sprint(v); !slices.Contains(out, k) {
						out = append(out, k)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
