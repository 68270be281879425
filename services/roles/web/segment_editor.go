package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/catalog"
)

// The segment editor: name, description, tags, match all or any, clauses with every operator of
// the targeting editor (in_segment nests other segments), and included and excluded keys. Like
// the targeting editor it is a plain form whose field names are the domain's field paths
// (clauses[0].values), so a validation error shows at its input; adding or removing a clause is
// a submit button handled on the server. A segment used in a production-coloured environment
// is saved only after its diff is confirmed.

type segmentDraft struct {
	Key, Name, Description, Tags string
	Match                        string
	Clauses                      []clauseDraft
	Included, Excluded           string // one key a line
}

func segmentDraftOf(sg *domain.Segment) segmentDraft {
	d := segmentDraft{Key: sg.Key, Name: sg.Name, Description: sg.Description, Tags: strings.Join(sg.Tags, ", "), Match: sg.Match,
		Included: strings.Join(sg.Included, "\n"), Excluded: strings.Join(sg.Excluded, "\n")}
	t := draftOf(domain.Targeting{Rules: []domain.Rule{{Clauses: sg.Clauses}}})
	d.Clauses = t.Rules[0].Clauses
	return d
}

func parseSegmentDraft(form url.Values) segmentDraft {
	d := segmentDraft{Key: strings.TrimSpace(form.Get("key")), Name: strings.TrimSpace(form.Get("name")), Description: strings.TrimSpace(form.Get("description")),
		Tags: form.Get("tags"), Match: form.Get("match"), Included: form.Get("included"), Excluded: form.Get("excluded")}
	for j := 0; form.Has(fmt.Sprintf("clauses[%d].op", j)); j++ {
		g := func(name string) string { return form.Get(fmt.Sprintf("clauses[%d].%s", j, name)) }
		d.Clauses = append(d.Clauses, clauseDraft{Attribute: strings.TrimSpace(g("attribute")), Op: g("op"), Values: g("values"),
			Segments: form[fmt.Sprintf("clauses[%d].segments", j)], Negate: g("negate") == "true"})
	}
	return d
}

// apply runs an editing action; it reports whether the action was one.
func (d *segmentDraft) apply(action string) bool {
	kind, arg, _ := strings.Cut(action, ":")
	switch kind {
	case "add-clause":
		d.Clauses = append(d.Clauses, clauseDraft{Op: string(domain.OpEquals)})
	case "remove-clause":
		if j, err := strconv.Atoi(arg); err == nil && j >= 0 && j < len(d.Clauses) {
			d.Clauses = slices.Delete(d.Clauses, j, j+1)
		}
	default:
		return false
	}
	return true
}

// definition converts the draft; values are typed as in the targeting editor.
func (d segmentDraft) definition() domain.SegmentDefinition {
	t, _ := targetingDraft{Rules: []ruleDraft{{Clauses: d.Clauses}}}.targeting(nil)
	return domain.SegmentDefinition{Name: d.Name, Description: d.Description, Tags: splitTags(d.Tags), Match: d.Match,
		Clauses: t.Rules[0].Clauses, Included: lines(d.Included), Excluded: lines(d.Excluded)}
}

type segmentData struct {
	frame
	New      bool
	Segment  *domain.Segment
	Draft    segmentDraft
	Version  int64
	Others   []*domain.Segment // segments a clause may nest
	UsedBy   []segmentUse
	Err      *fieldErrors
	Confirm  []diffLine
	Conflict string
	Reason   string
}

// segmentUse is a flag whose targeting names the segment in an environment.
type segmentUse struct {
	Flag, Environment, EnvironmentName string
	Production                         bool
}

// ProductionUse tells whether a save needs the diff confirmed first.
func (d segmentData) ProductionUse() bool {
	return slices.ContainsFunc(d.UsedBy, func(u segmentUse) bool { return u.Production })
}

func (s *Server) newSegmentPage(c echo.Context) error {
	return s.showSegment(c, http.StatusOK, nil, segmentDraft{Match: domain.MatchAll}, 0, func(*segmentData) {})
}

func (s *Server) segmentPage(c echo.Context) error {
	sg, err := s.cmds.Segment(c.Request().Context(), c.Param("project"), c.Param("segment"))
	if err != nil {
		return s.fail(c, err)
	}
	return s.showSegment(c, http.StatusOK, sg, segmentDraftOf(sg), sg.Version, func(*segmentData) {})
}

func (s *Server) showSegment(c echo.Context, status int, sg *domain.Segment, d segmentDraft, version int64, more func(*segmentData)) error {
	ctx := c.Request().Context()
	p, err := s.cmds.Project(ctx, c.Param("project"))
	if err != nil {
		return s.fail(c, err)
	}
	title := "New segment"
	if sg != nil {
		title = sg.Name
	}
	data := segmentData{frame: s.baseFrame(c, title, "segments", p), New: sg == nil, Segment: sg, Draft: d, Version: version,
		Reason: strings.TrimSpace(c.FormValue(reasonField))}
	segs, err := s.cmds.Segments(ctx, p.Key)
	if err != nil {
		return s.fail(c, err)
	}
	data.Others = slices.DeleteFunc(segs, func(o *domain.Segment) bool { return sg != nil && o.Key == sg.Key })
	if sg != nil {
		if data.UsedBy, err = s.segmentUses(c, p, sg.Key); err != nil {
			return s.fail(c, err)
		}
	}
	more(&data)
	return s.render(c, status, "segment", data)
}

// segmentUses lists the flags and environments whose targeting names the segment directly.
func (s *Server) segmentUses(c echo.Context, p *domain.Project, segment string) ([]segmentUse, error) {
	var out []segmentUse
	q := catalog.ListQuery{Project: p.Key, Limit: catalog.MaxPageSize}
	for {
		flags, next, err := s.cmds.Flags(c.Request().Context(), q)
		if err != nil {
			return nil, err
		}
		for _, f := range flags {
			for _, e := range sortedEnvironments(p) {
				t := f.Environments[e.Key]
				if t != nil && slices.Contains(segmentsUsed(&domain.Flag{Environments: map[string]*domain.Targeting{e.Key: t}}), segment) {
					out = append(out, segmentUse{Flag: f.Key, Environment: e.Key, EnvironmentName: e.Name, Production: isProduction(e)})
				}
			}
		}
		if next == "" {
			return out, nil
		}
		q.Cursor = next
	}
}

func (s *Server) createSegment(c echo.Context) error {
	form, err := c.FormParams()
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, "The form could not be read.")
	}
	d := parseSegmentDraft(form)
	if d.apply(c.FormValue("action")) {
		return s.showSegment(c, http.StatusOK, nil, d, 0, func(*segmentData) {})
	}
	project := c.Param("project")
	sg, err := s.cmds.CreateSegment(c.Request().Context(), meta(c), project, d.Key, d.definition())
	if fe := asFieldError(err); fe != nil {
		return s.showSegment(c, httpStatus(err), nil, d, 0, func(sd *segmentData) { sd.Err = fe })
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, projectURL(project)+"/segments/"+url.PathEscape(sg.Key)+"?done="+url.QueryEscape("Segment created."))
}

func (s *Server) saveSegment(c echo.Context) error {
	ctx := c.Request().Context()
	project, key := c.Param("project"), c.Param("segment")
	sg, err := s.cmds.Segment(ctx, project, key)
	if err != nil {
		return s.fail(c, err)
	}
	form, err := c.FormParams()
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, "The form could not be read.")
	}
	d := parseSegmentDraft(form)
	d.Key = sg.Key
	seen := versionField(c)
	action := c.FormValue("action")
	if d.apply(action) {
		return s.showSegment(c, http.StatusOK, sg, d, seen, func(*segmentData) {})
	}
	def := d.definition()
	conflict := func() error {
		who := s.segmentChangesSince(c, project, key, seen)
		return s.showSegment(c, http.StatusConflict, sg, d, sg.Version, func(sd *segmentData) {
			sd.Conflict, sd.Confirm = who, valueDiff(def, sg.Definition())
		})
	}
	if action != "confirm" {
		p, err := s.cmds.Project(ctx, project)
		if err != nil {
			return s.fail(c, err)
		}
		uses, err := s.segmentUses(c, p, key)
		if err != nil {
			return s.fail(c, err)
		}
		if slices.ContainsFunc(uses, func(u segmentUse) bool { return u.Production }) {
			if seen != AnyVersion && seen != sg.Version {
				return conflict()
			}
			return s.showSegment(c, http.StatusOK, sg, d, seen, func(sd *segmentData) { sd.Confirm = valueDiff(sg.Definition(), def) })
		}
	}
	_, err = s.cmds.UpdateSegment(ctx, meta(c), project, key, seen, def)
	if domain.ErrorCode(err) == domain.EConflict && asFieldError(err) == nil {
		return conflict()
	}
	if fe := asFieldError(err); fe != nil {
		return s.showSegment(c, http.StatusBadRequest, sg, d, seen, func(sd *segmentData) { sd.Err = fe })
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, projectURL(project)+"/segments/"+url.PathEscape(key)+"?done="+url.QueryEscape("Segment saved."))
}

// segmentChangesSince names the people who changed a segment after version since.
func (s *Server) segmentChangesSince(c echo.Context, project, key string, since int64) string {
	ctx := c.Request().Context()
	entries, _, err := s.cmds.Audit(ctx, audit.Query{Project: project, EntityKind: "segment", EntityKey: key, Limit: 50})
	if err != nil {
		return "someone"
	}
	names, _ := s.people.DisplayNames(ctx)
	var who []string
	for _, e := range entries {
		if n := actorName(e.Actor, names); e.Version > since && !slices.Contains(who, n) {
			who = append(who, n)
		}
	}
	if len(who) == 0 {
		return "someone"
	}
	return strings.Join(who, ", ")
}
