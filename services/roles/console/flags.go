package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/app"
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
	items, next, err := s.app.Queries.ListFlags(c.Request().Context(), q)
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
	cmd := app.CreateFlag{Project: c.Param("project"), Key: req.Key, Name: req.Name, Description: req.Description,
		Tags: req.Tags, Type: req.Type, Variations: req.Variations, ClientSide: true}
	if req.Defaults != nil {
		cmd.Defaults = *req.Defaults
	}
	if req.ClientSide != nil {
		cmd.ClientSide = *req.ClientSide
	}
	f, v, err := s.app.Commands.CreateFlag(c.Request().Context(), meta(c), cmd)
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, f)
}

func (s *Server) getFlag(c echo.Context) error {
	f, v, err := s.app.Queries.Flag(c.Request().Context(), c.Param("project"), c.Param("flag"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, f)
}

// updateFlag is a JSON Merge Patch (RFC 7396) of the flag's settings: members not sent keep their
// value; null clears description and tags and is refused for the others.
func (s *Server) updateFlag(c echo.Context) error {
	patch, err := s.readPatch(c, "name", "client_side", "defaults", "defaults.on_variation", "defaults.off_variation")
	if err != nil {
		return err
	}
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	f, v, err := s.app.Commands.UpdateFlag(c.Request().Context(), m, app.UpdateFlag{Project: c.Param("project"), Flag: c.Param("flag"),
		Edit: func(cur domain.FlagSettings) (domain.FlagSettings, error) {
			clientSide, defaults := cur.ClientSide, cur.Defaults
			var req updateFlagRequest
			if err := httpapi.ApplyMergePatch(updateFlagRequest{Name: cur.Name, Description: cur.Description, Tags: cur.Tags,
				ClientSide: &clientSide, Defaults: &defaults}, patch, &req); err != nil {
				return cur, err
			}
			settings := domain.FlagSettings{Name: req.Name, Description: req.Description, Tags: req.Tags,
				ClientSide: cur.ClientSide, Defaults: cur.Defaults}
			if req.ClientSide != nil {
				settings.ClientSide = *req.ClientSide
			}
			if req.Defaults != nil {
				settings.Defaults = *req.Defaults
			}
			return settings, nil
		}})
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
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	f, v, err := s.app.Commands.UpdateVariations(c.Request().Context(), m, app.UpdateVariations{Project: c.Param("project"),
		Flag: c.Param("flag"), Variations: req.Variations})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, f)
}

func (s *Server) getTargeting(c echo.Context) error {
	ctx, project, key, env := c.Request().Context(), c.Param("project"), c.Param("flag"), c.Param("environment")
	f, _, err := s.app.Queries.Flag(ctx, project, key)
	if err != nil {
		return err
	}
	if _, err := s.app.Queries.Environment(ctx, project, env); err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, f.Version, targetingView{Flag: key, Environment: env, Version: f.Version,
		Targeting: f.ConfigFor(env).Targeting})
}

// answerTargeting answers one environment's targeting of a flag after a command.
func answerTargeting(c echo.Context, f *domain.Flag, v int64, env string) error {
	return withVersion(c, http.StatusOK, v, targetingView{Flag: f.Key, Environment: env, Version: v,
		Targeting: f.ConfigFor(env).Targeting})
}

func (s *Server) updateTargeting(c echo.Context) error {
	var t domain.Targeting
	if err := s.decode(c, &t); err != nil {
		return err
	}
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	env := c.Param("environment")
	f, v, err := s.app.Commands.UpdateTargeting(c.Request().Context(), m, app.UpdateTargeting{Project: c.Param("project"),
		Flag: c.Param("flag"), Environment: env, Targeting: t})
	if err != nil {
		return bodyRelative(err, "targeting")
	}
	return answerTargeting(c, f, v, env)
}

func (s *Server) toggleFlag(c echo.Context) error {
	var req toggleRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if req.On == nil {
		return domain.Invalid("on", "on is required (true or false)")
	}
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	env := c.Param("environment")
	f, v, err := s.app.Commands.ToggleFlag(c.Request().Context(), m, app.ToggleFlag{Project: c.Param("project"),
		Flag: c.Param("flag"), Environment: env, On: *req.On})
	if err != nil {
		return err
	}
	return answerTargeting(c, f, v, env)
}

func (s *Server) archiveFlag(c echo.Context) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	f, v, err := s.app.Commands.ArchiveFlag(c.Request().Context(), m, app.ArchiveFlag{Project: c.Param("project"), Flag: c.Param("flag")})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, f)
}

func (s *Server) restoreFlag(c echo.Context) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	f, v, err := s.app.Commands.RestoreFlag(c.Request().Context(), m, app.RestoreFlag{Project: c.Param("project"), Flag: c.Param("flag")})
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
