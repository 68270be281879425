package console

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/services/httpapi"
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

// DefaultEnvironments are created with a project that names none.
var DefaultEnvironments = []domain.NewEnvironment{
	{Key: "development", Name: "Development"},
	{Key: "production", Name: "Production"},
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
	items, next, err := catalog.ListProjects(c.Request().Context(), s.app.pool, cursor, limit, principal(c).Project)
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
	if req.Environments == nil {
		req.Environments = DefaultEnvironments
	}
	if !domain.ValidKey(req.Key) {
		return domain.Invalid("key", "key must match %s", "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
	}
	agg, v, err := s.app.Execute(c.Request().Context(), domain.ProjectStream(req.Key), 0, meta(c),
		func(projections.Aggregate) ([]domain.Event, error) {
			return domain.CreateProject(req.Key, req.Name, req.Description, req.Environments, NewSDKKey)
		})
	if err != nil {
		return alreadyExists(err, "project", req.Key)
	}
	return withVersion(c, http.StatusCreated, v, visibleProject(c, agg.(*domain.Project)))
}

// alreadyExists words a conflict on a stream that had to be new.
func alreadyExists(err error, what, key string) error {
	if domain.ErrorCode(err) == domain.EConflict {
		return &domain.Error{Code: domain.EConflict, Field: "key", Message: what + " " + key + " already exists"}
	}
	return err
}

func (s *Server) getProject(c echo.Context) error {
	agg, v, err := s.app.load(c.Request().Context(), domain.ProjectStream(c.Param("project")), "project "+c.Param("project"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, visibleProject(c, agg.(*domain.Project)))
}

// projectCommand runs a command on the project named in the path.
func (s *Server) projectCommand(c echo.Context, status int, cmd func(*domain.Project) ([]domain.Event, error)) (*domain.Project, int64, error) {
	expected, err := expectedVersion(c)
	if err != nil {
		return nil, 0, err
	}
	key := c.Param("project")
	agg, v, err := s.app.Execute(c.Request().Context(), domain.ProjectStream(key), expected, meta(c),
		func(cur projections.Aggregate) ([]domain.Event, error) {
			if cur == nil {
				return nil, domain.Errorf(domain.ENotFound, "project %q not found", key)
			}
			return cmd(cur.(*domain.Project))
		})
	if err != nil {
		return nil, 0, err
	}
	return agg.(*domain.Project), v, nil
}

// updateProject is a JSON Merge Patch (RFC 7396): null clears the description; name is required.
func (s *Server) updateProject(c echo.Context) error {
	patch, err := s.readPatch(c, "name")
	if err != nil {
		return err
	}
	p, v, err := s.projectCommand(c, http.StatusOK, func(p *domain.Project) ([]domain.Event, error) {
		var req updateProjectRequest
		if err := httpapi.ApplyMergePatch(updateProjectRequest{Name: p.Name, Description: p.Description}, patch, &req); err != nil {
			return nil, err
		}
		return p.UpdateProject(req.Name, req.Description)
	})
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, visibleProject(c, p))
}

func (s *Server) listEnvironments(c echo.Context) error {
	p, err := s.app.LoadProject(c.Request().Context(), c.Param("project"))
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
	p, err := s.app.LoadProject(c.Request().Context(), c.Param("project"))
	if err != nil {
		return err
	}
	e := p.Environments[c.Param("environment")]
	if e == nil {
		return domain.Errorf(domain.ENotFound, "environment %q not found in project %q", c.Param("environment"), p.Key)
	}
	return c.JSON(http.StatusOK, visibleEnvironment(c, e))
}

func (s *Server) createEnvironment(c echo.Context) error {
	var req domain.NewEnvironment
	if err := s.decode(c, &req); err != nil {
		return err
	}
	p, _, err := s.projectCommand(c, http.StatusCreated, func(p *domain.Project) ([]domain.Event, error) {
		return p.AddEnvironment(req, NewSDKKey)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, visibleEnvironment(c, p.Environments[req.Key]))
}

// updateEnvironment is a JSON Merge Patch (RFC 7396): null clears the color; name and
// server_exposures cannot be removed.
func (s *Server) updateEnvironment(c echo.Context) error {
	patch, err := s.readPatch(c, "name", "server_exposures")
	if err != nil {
		return err
	}
	env := c.Param("environment")
	p, _, err := s.projectCommand(c, http.StatusOK, func(p *domain.Project) ([]domain.Event, error) {
		cur, ok := p.Environments[env]
		if !ok {
			return nil, domain.Errorf(domain.ENotFound, "environment %q not found in project %q", env, p.Key)
		}
		var req updateEnvironmentRequest
		if err := httpapi.ApplyMergePatch(updateEnvironmentRequest{Name: cur.Name, Color: cur.Color,
			ServerExposures: cur.ServerExposures}, patch, &req); err != nil {
			return nil, err
		}
		return p.UpdateEnvironmentSettings(env, domain.EnvironmentSettings{Name: req.Name, Color: req.Color,
			ServerExposures: req.ServerExposures})
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, visibleEnvironment(c, p.Environments[env]))
}

func (s *Server) rotateSDKKey(c echo.Context) error {
	env, kind := c.Param("environment"), c.Param("kind")
	if kind != domain.ClientSideKey && kind != domain.ServerSideKey {
		return domain.Invalid("kind", "kind must be %q or %q", domain.ClientSideKey, domain.ServerSideKey)
	}
	p, _, err := s.projectCommand(c, http.StatusOK, func(p *domain.Project) ([]domain.Event, error) {
		return p.RotateSDKKey(env, kind, NewSDKKey)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p.Environments[env]) // admin scope only: keys shown in full
}
