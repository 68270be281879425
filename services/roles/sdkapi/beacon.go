package sdkapi

import (
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
)

// Browsers send their last events with navigator.sendBeacon when a page is hidden or left: the
// only request a browser still delivers after the page is gone. A beacon cannot carry headers,
// so the event routes (POST /sdk/v1/events, POST /ofrep/v1/track) also take a client-side key as
// ?key= (as the SSE stream does for EventSource) and a text/plain body: text/plain is the
// CORS-safelisted type that needs no preflight, which a beacon cannot wait for. The body is JSON
// all the same.

// beaconContentType reports whether ct is a Content-Type the event routes read as JSON.
func beaconContentType(ct string) bool {
	return ct == "" || strings.HasPrefix(ct, echo.MIMEApplicationJSON) || strings.HasPrefix(ct, echo.MIMETextPlain)
}

// refuseServerKeyInURL answers 401 when ?key= holds a server-side key: server keys are secrets,
// and a URL ends up in proxy and server logs, browser history and Referer headers.
func (s *Server) refuseServerKeyInURL(c echo.Context) error {
	if q := c.QueryParam("key"); q != "" {
		if k, ok := s.snaps.lookupKey(q); ok && k.Kind != domain.ClientSideKey {
			return domain.Errorf(domain.EUnauthorized, "server-side SDK keys are secrets and are not accepted in the URL: send it in the Authorization: Bearer header (and rotate this one if the URL was logged); ?key= is for client-side keys")
		}
	}
	return nil
}
