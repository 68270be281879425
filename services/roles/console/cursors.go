package console

import (
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
)

// cursorSecret names the installation secret that signs list cursors.
const cursorSecret = "cursor"

// cursorKeys loads the installation's cursor key once; a failed load (the database is down) is
// retried by the next list request.
type cursorKeys struct {
	mu      sync.Mutex
	cursors *httpapi.Cursors
}

func (s *Server) cursors(c echo.Context) (*httpapi.Cursors, error) {
	s.signer.mu.Lock()
	defer s.signer.mu.Unlock()
	if s.signer.cursors == nil {
		key, err := postgres.InstallationSecret(c.Request().Context(), s.app.Queries.Pool(), cursorSecret)
		if err != nil {
			return nil, err
		}
		s.signer.cursors = httpapi.NewCursors(key)
	}
	return s.signer.cursors, nil
}

// cursor returns where the list request continues: the position sealed in its cursor query
// parameter for this route, "" for the first page. Anything but a cursor this installation made
// for this list is a 400 about "cursor", so queries only ever see positions they produced.
func (s *Server) cursor(c echo.Context) (string, error) {
	cs, err := s.cursors(c)
	if err != nil {
		return "", err
	}
	return cs.Open(c.Path(), c.QueryParam("cursor"))
}

// nextCursor seals the position the next page starts after (as a list query returned it) into
// the cursor a client sends back. cursor has loaded the key earlier in the same request.
func (s *Server) nextCursor(c echo.Context, position string) (string, error) {
	cs, err := s.cursors(c)
	if err != nil {
		return "", err
	}
	return cs.Seal(c.Path(), position), nil
}
