package console

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/app"
)

type createProjectRequest struct {
	Key          string                  `json:"key"`
	Name         string                  `json:"name"`
	Description  string                  `json:"description,omitempty"`
	Environments []domain.NewEnvironment `json:"environments,omitempty"`
}

type updateProjectRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

type updateEnvironmentRequest struct {
	Name  string `json:"name"`
	Color string `json:"color,omitempty"`
	// ServerExposures turns the api role's exposure logging of OFREP answers on or off here.
	ServerExposures bool `json:"server_exposures"`
}

// visibleProject hides server-side SDK keys from tokens below admin scope.
func visibleProject(c echo.Context, p *domain.Project) *domain.Project {
	if domain.ScopeAllows(principal(c).Scope, domain.ScopeAdmin) {
		return p
	}
	return catalog.RedactProject(p)
}

func visibleEnvironment(c echo.Context, e *domain.Environment) *domain.Environment {
	if domain.ScopeAllows(principal(c).Scope, domain.ScopeAdmin) {
		return e
	}
	ec := *e
	ec.ServerKey = catalog.Redact(e.ServerKey)
	return &ec
}

func (s *Server) listProjects(c echo.Context) error {
	limit, err := queryInt(c, "limit")
	if err != nil {
		return err
	}
	cursor, err := s.cursor(c)
	if err != nil {
		return err
	}
	items, next, err := s.app.Queries.ListProjects(c.Request().Context(), cursor, limit, principal(c).Project)
	if err != nil {
		return err
	}
	if next, err = s.nextCursor(c, next); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

func (s *Server) createProject(c echo.Context) error {
	var req createProjectRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	p, v, err := s.app.Commands.CreateProject(c.Request().Context(), meta(c), app.CreateProject{Key: req.Key, Name: req.Name,
		Description: req.Description, Environments: req.Environments})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, visibleProject(c, p))
}

func (s *Server) getProject(c echo.Context) error {
	p, v, err := s.app.Queries.Project(c.Request().Context(), c.Param("project"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, visibleProject(c, p))
}

// updateProject is a JSON Merge Patch (RFC 7396): null clears the description; name is required.
func (s *Server) updateProject(c echo.Context) error {
	patch, err := s.readPatch(c, "name")
	if err != nil {
		return err
	}
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	p, v, err := s.app.Commands.UpdateProject(c.Request().Context(), m, app.UpdateProject{Project: c.Param("project"),
		Edit: func(cur app.ProjectSettings) (app.ProjectSettings, error) {
			var req updateProjectRequest
			if err := httpapi.ApplyMergePatch(updateProjectRequest{Name: cur.Name, Description: cur.Description}, patch, &req); err != nil {
				return cur, err
			}
			return app.ProjectSettings{Name: req.Name, Description: req.Description}, nil
		}})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, visibleProject(c, p))
}

func (s *Server) listEnvironments(c echo.Context) error {
	p, _, err := s.app.Queries.Project(c.Request().Context(), c.Param("project"))
	if err != nil {
		return err
	}
	out := make([]*domain.Environment, 0, len(p.EnvironmentOrder))
	for _, k := range p.EnvironmentOrder {
		out = append(out, visibleEnvironment(c, p.Environments[k]))
	}
	return c.JSON(http.StatusOK, newPage(out, ""))
}

func (s *Server) getEnvironment(c echo.Context) error {
	e, err := s.app.Queries.Environment(c.Request().Context(), c.Param("project"), c.Param("environment"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, visibleEnvironment(c, e))
}

func (s *Server) createEnvironment(c echo.Context) error {
	var req domain.NewEnvironment
	if err := s.decode(c, &req); err != nil {
		return err
	}
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	e, err := s.app.Commands.CreateEnvironment(c.Request().Context(), m, app.CreateEnvironment{Project: c.Param("project"), Environment: req})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, visibleEnvironment(c, e))
}

// updateEnvironment is a JSON Merge Patch (RFC 7396): null clears the color; name and
// server_exposures cannot be removed.
func (s *Server) updateEnvironment(c echo.Context) error {
	patch, err := s.readPatch(c, "name", "server_exposures")
	if err != nil {
		return err
	}
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	e, err := s.app.Commands.UpdateEnvironment(c.Request().Context(), m, app.UpdateEnvironment{Project: c.Param("project"),
		Environment: c.Param("environment"),
		Edit: func(cur domain.EnvironmentSettings) (domain.EnvironmentSettings, error) {
			var req updateEnvironmentRequest
			if err := httpapi.ApplyMergePatch(updateEnvironmentRequest{Name: cur.Name, Color: cur.Color,
				ServerExposures: cur.ServerExposures}, patch, &req); err != nil {
				return cur, err
			}
			return domain.EnvironmentSettings{Name: req.Name, Color: req.Color, ServerExposures: req.ServerExposures}, nil
		}})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, visibleEnvironment(c, e))
}

func (s *Server) rotateSDKKey(c echo.Context) error {
	m, err := metaIfMatch(c)
	if err != nil {
		return err
	}
	e, err := s.app.Commands.RotateSDKKey(c.Request().Context(), m, app.RotateSDKKey{Project: c.Param("project"),
		Environment: c.Param("environment"), Kind: c.Param("kind")})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, e) // admin scope only: keys shown in full
}
