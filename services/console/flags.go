package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/services/httpapi"
)

type createFlagRequest struct {
	Key         string               `json:"key"`
	Name        string               `json:"name"`
	Description string               `json:"description,omitempty"`
	Tags        []string             `json:"tags,omitempty"`
	Type        domain.FlagType      `json:"type"`
	Variations  []domain.Variation   `json:"variations,omitempty"`
	Defaults    *domain.FlagDefaults `json:"defaults,omitempty"`
	ClientSide  *bool                `json:"client_side,omitempty"` // default true
}

type updateFlagRequest struct {
	Name        string               `json:"name"`
	Description string               `json:"description,omitempty"`
	Tags        []string             `json:"tags,omitempty"`
	ClientSide  *bool                `json:"client_side,omitempty"`
	Defaults    *domain.FlagDefaults `json:"defaults,omitempty"`
}

type variationsRequest struct {
	Variations []domain.Variation `json:"variations"`
}

type toggleRequest struct {
	On *bool `json:"on"`
}

// targetingView is one environment's targeting of a flag.
type targetingView struct {
	Flag        string           `json:"flag"`
	Environment string           `json:"environment"`
	Version     int64            `json:"version"`
	Targeting   domain.Targeting `json:"targeting"`
}

func (s *Server) listFlags(c echo.Context) error {
	q, err := s.listQuery(c)
	if err != nil {
		return err
	}
	items, next, err := catalog.ListFlags(c.Request().Context(), s.app.pool, q)
	if err != nil {
		return err
	}
	if next, err = s.nextCursor(c, next); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

func (s *Server) listQuery(c echo.Context) (catalog.ListQuery, error) {
	cursor, err := s.cursor(c)
	if err != nil {
		return catalog.ListQuery{}, err
	}
	limit, err := queryInt(c, "limit")
	if err != nil {
		return catalog.ListQuery{}, err
	}
	archived, err := queryBool(c, "archived")
	if err != nil {
		return catalog.ListQuery{}, err
	}
	if len(c.QueryParam("q")) > 200 {
		return catalog.ListQuery{}, domain.Invalid("q", "q must be at most 200 characters")
	}
	return catalog.ListQuery{Project: c.Param("project"), Tag: c.QueryParam("tag"), Search: c.QueryParam("q"),
		Archived: archived, Cursor: cursor, Limit: limit}, nil
}

func (s *Server) createFlag(c echo.Context) error {
	var req createFlagRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	project := c.Param("project")
	cat, err := s.app.Catalog(c.Request().Context(), project)
	if err != nil {
		return err
	}
	if !domain.ValidKey(req.Key) {
		return domain.Invalid("key", "key must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
	}
	in := domain.NewFlag{Project: project, Key: req.Key, Name: req.Name, Description: req.Description,
		Tags: req.Tags, Type: req.Type, Variations: req.Variations, ClientSide: true, Salt: NewID(8)}
	if req.Defaults != nil {
		in.Defaults = *req.Defaults
	}
	if req.ClientSide != nil {
		in.ClientSide = *req.ClientSide
	}
	agg, v, err := s.app.Execute(c.Request().Context(), domain.FlagStream(project, req.Key), 0, meta(c),
		func(projections.Aggregate) ([]domain.Event, error) { return domain.CreateFlag(in, cat) })
	if err != nil {
		return alreadyExists(err, "flag", req.Key)
	}
	return withVersion(c, http.StatusCreated, v, agg)
}

func (s *Server) getFlag(c echo.Context) error {
	project, key := c.Param("project"), c.Param("flag")
	agg, v, err := s.app.load(c.Request().Context(), domain.FlagStream(project, key), "flag "+key)
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, agg)
}

// flagCommand runs a command on the flag named in the path, with the project's catalog.
func (s *Server) flagCommand(c echo.Context, cmd func(*domain.Flag, *domain.Catalog) ([]domain.Event, error)) (*domain.Flag, int64, error) {
	expected, err := expectedVersion(c)
	if err != nil {
		return nil, 0, err
	}
	project, key := c.Param("project"), c.Param("flag")
	cat, err := s.app.Catalog(c.Request().Context(), project)
	if err != nil {
		return nil, 0, err
	}
	agg, v, err := s.app.Execute(c.Request().Context(), domain.FlagStream(project, key), expected, meta(c),
		func(cur projections.Aggregate) ([]domain.Event, error) {
			if cur == nil {
				return nil, domain.Errorf(domain.ENotFound, "flag %q not found in project %q", key, project)
			}
			return cmd(cur.(*domain.Flag), cat)
		})
	if err != nil {
		return nil, 0, err
	}
	return agg.(*domain.Flag), v, nil
}

// updateFlag is a JSON Merge Patch (RFC 7396) of the flag's settings: members not sent keep their
// value; null clears description and tags and is refused for the others.
func (s *Server) updateFlag(c echo.Context) error {
	patch, err := s.readPatch(c, "name", "client_side", "defaults", "defaults.on_variation", "defaults.off_variation")
	if err != nil {
		return err
	}
	f, v, err := s.flagCommand(c, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		clientSide, defaults := f.ClientSide, f.Defaults
		var req updateFlagRequest
		if err := httpapi.ApplyMergePatch(updateFlagRequest{Name: f.Name, Description: f.Description, Tags: f.Tags,
			ClientSide: &clientSide, Defaults: &defaults}, patch, &req); err != nil {
			return nil, err
		}
		settings := domain.FlagSettings{Name: req.Name, Description: req.Description, Tags: req.Tags,
			ClientSide: f.ClientSide, Defaults: f.Defaults}
		if req.ClientSide != nil {
			settings.ClientSide = *req.ClientSide
		}
		if req.Defaults != nil {
			settings.Defaults = *req.Defaults
		}
		return f.Update(settings)
	})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, f)
}

func (s *Server) updateVariations(c echo.Context) error {
	var req variationsRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	f, v, err := s.flagCommand(c, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.UpdateVariations(req.Variations, cat)
	})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, f)
}

func (s *Server) getTargeting(c echo.Context) error {
	project, key, env := c.Param("project"), c.Param("flag"), c.Param("environment")
	f, err := s.app.LoadFlag(c.Request().Context(), project, key)
	if err != nil {
		return err
	}
	p, err := s.app.LoadProject(c.Request().Context(), project)
	if err != nil {
		return err
	}
	if p.Environments[env] == nil {
		return domain.Errorf(domain.ENotFound, "environment %q not found in project %q", env, project)
	}
	return withVersion(c, http.StatusOK, f.Version, targetingView{Flag: key, Environment: env, Version: f.Version,
		Targeting: f.ConfigFor(env).Targeting})
}

func (s *Server) updateTargeting(c echo.Context) error {
	var t domain.Targeting
	if err := s.decode(c, &t); err != nil {
		return err
	}
	env := c.Param("environment")
	f, v, err := s.flagCommand(c, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.UpdateTargeting(env, t, cat)
	})
	if err != nil {
		return bodyRelative(err, "targeting")
	}
	return withVersion(c, http.StatusOK, v, targetingView{Flag: f.Key, Environment: env, Version: v,
		Targeting: f.ConfigFor(env).Targeting})
}

func (s *Server) toggleFlag(c echo.Context) error {
	var req toggleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.On == nil {
		return domain.Invalid("on", "on is required (true or false)")
	}
	env := c.Param("environment")
	f, v, err := s.flagCommand(c, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.Toggle(env, *req.On, cat)
	})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, targetingView{Flag: f.Key, Environment: env, Version: v,
		Targeting: f.ConfigFor(env).Targeting})
}

func (s *Server) archiveFlag(c echo.Context) error {
	f, v, err := s.flagCommand(c, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.Archive(cat)
	})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, f)
}

func (s *Server) restoreFlag(c echo.Context) error {
	f, v, err := s.flagCommand(c, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.Restore()
	})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, f)
}

// bodyRelative re-anchors a validation error's field to the request body when the body is the
// value the domain calls prefix (PUT .../environments/{env} sends the targeting itself).
func bodyRelative(err error, prefix string) error {
	var de *domain.Error
	if errors.As(err, &de) && strings.HasPrefix(de.Field, prefix+".") {
		c := *de
		c.Field = strings.TrimPrefix(de.Field, prefix+".")
		return &c
	}
	return err
}
