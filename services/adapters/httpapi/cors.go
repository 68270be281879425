package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// CORSPolicy is the cross-origin policy of the routes under some path prefixes. Browsers ask it
// before a cross-origin call (the preflight, OPTIONS with Access-Control-Request-Method) and check
// the Access-Control-Allow-Origin of every answer; without it a web page on another origin cannot
// read anything Vexil answers.
type CORSPolicy struct {
	// Prefixes are the path prefixes the policy covers, e.g. "/ofrep/v1/".
	Prefixes []string
	// Origins may call: "*" for any (answered as "*"), or exact origins (scheme://host[:port]),
	// each answered by echoing the caller's origin with Vary: Origin. Empty: the routes stay
	// same-origin (no CORS headers at all).
	Origins []string
	// Methods and Headers are what a preflight allows; Expose the response headers a page may read
	// beyond the CORS-safelisted ones (ETag is not one of them).
	Methods, Headers, Expose []string
	// MaxAge is how long a browser may cache a preflight answer; 0 sends no Max-Age.
	MaxAge time.Duration
}

// CORS applies the first policy whose prefix matches the request path; other paths pass
// untouched. It answers preflights itself with 204, before any handler, so they need no
// credentials and never count against a rate limit; on other requests it sets the headers before
// the handler runs, so errors (401, 429, 503) are readable by the page too.
func CORS(policies ...CORSPolicy) echo.MiddlewareFunc {
	type compiled struct {
		CORSPolicy
		any                              bool
		methods, headers, expose, maxAge string
	}
	var list []compiled
	for _, p := range policies {
		if len(p.Origins) == 0 {
			continue
		}
		c := compiled{CORSPolicy: p, any: slices.Contains(p.Origins, "*"),
			methods: strings.Join(p.Methods, ", "), headers: strings.Join(p.Headers, ", "),
			expose: strings.Join(p.Expose, ", ")}
		if p.MaxAge > 0 {
			c.maxAge = strconv.FormatInt(int64(p.MaxAge/time.Second), 10)
		}
		list = append(list, c)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if len(list) == 0 {
			return next
		}
		return func(c echo.Context) error {
			req := c.Request()
			var p *compiled
			for i := range list {
				if slices.ContainsFunc(list[i].Prefixes, func(pre string) bool { return strings.HasPrefix(req.URL.Path, pre) }) {
					p = &list[i]
					break
				}
			}
			if p == nil {
				return next(c)
			}
			h := c.Response().Header()
			if !p.any {
				h.Add(echo.HeaderVary, echo.HeaderOrigin) // the answer differs by origin: caches must know
			}
			origin := req.Header.Get(echo.HeaderOrigin)
			allowed := ""
			if origin != "" {
				if p.any {
					allowed = "*"
				} else if slices.Contains(p.Origins, strings.ToLower(origin)) {
					allowed = origin
				}
			}
			preflight := req.Method == http.MethodOptions && origin != "" &&
				req.Header.Get(echo.HeaderAccessControlRequestMethod) != ""
			if !preflight {
				if allowed != "" {
					h.Set(echo.HeaderAccessControlAllowOrigin, allowed)
					if p.expose != "" {
						h.Set(echo.HeaderAccessControlExposeHeaders, p.expose)
					}
				}
				return next(c)
			}
			// A refused origin gets the same 204 without Allow-Origin: the browser then blocks
			// the call, which is the refusal.
			if allowed != "" {
				h.Set(echo.HeaderAccessControlAllowOrigin, allowed)
				h.Set(echo.HeaderAccessControlAllowMethods, p.methods)
				h.Set(echo.HeaderAccessControlAllowHeaders, p.headers)
				if p.maxAge != "" {
					h.Set(echo.HeaderAccessControlMaxAge, p.maxAge)
				}
			}
			return c.NoContent(http.StatusNoContent)
		}
	}
}
