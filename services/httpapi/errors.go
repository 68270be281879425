// Package httpapi holds what every HTTP role shares: the mapping of domain errors to HTTP
// statuses (in exactly one place), strict JSON decoding with size limits, request ids, access logs
// and request metrics on echo.
package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Field   string         `json:"field,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

// StatusOf maps a domain error code to its HTTP status. It is the only such mapping.
func StatusOf(code string) int {
	switch code {
	case domain.EInvalid:
		return http.StatusBadRequest
	case domain.ENotFound:
		return http.StatusNotFound
	case domain.EConflict:
		return http.StatusConflict
	case domain.EUnauthorized:
		return http.StatusUnauthorized
	case domain.EForbidden:
		return http.StatusForbidden
	case domain.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case domain.ERateLimited:
		return http.StatusTooManyRequests
	case domain.EUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// CodeMethodNotAllowed answers a route that exists with another method (405). It is an HTTP
// matter, so it has no domain code.
const CodeMethodNotAllowed = "method_not_allowed"

// Codes lists every code an error body can carry, with its status: the README lists them all,
// and a test keeps the two in step.
func Codes() map[string]int {
	out := map[string]int{CodeMethodNotAllowed: http.StatusMethodNotAllowed}
	for _, c := range []string{domain.EInvalid, domain.ENotFound, domain.EConflict, domain.EUnauthorized, domain.EForbidden,
		domain.ETooLarge, domain.ERateLimited, domain.EUnavailable, domain.EInternal} {
		out[c] = StatusOf(c)
	}
	return out
}

// codeOfStatus maps statuses echo produces itself (unknown route, wrong method) back to codes.
func codeOfStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return domain.ENotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return domain.ETooLarge
	case http.StatusUnauthorized:
		return domain.EUnauthorized
	case http.StatusForbidden:
		return domain.EForbidden
	case http.StatusTooManyRequests:
		return domain.ERateLimited
	case http.StatusServiceUnavailable:
		return domain.EUnavailable
	}
	if status >= 500 {
		return domain.EInternal
	}
	return domain.EInvalid
}

// Body turns any error into the status and body a client sees. Errors that are not domain or echo
// errors become a generic internal error: their text may hold details that must not leak.
func Body(err error) (int, ErrorBody) {
	var de *domain.Error
	if errors.As(err, &de) {
		msg := de.Message
		if de.Code == domain.EInternal {
			msg = "internal error"
		}
		return StatusOf(de.Code), ErrorBody{Code: de.Code, Message: msg, Field: de.Field, Details: de.Details}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok && he.Code < 500 {
			msg = s
		}
		return he.Code, ErrorBody{Code: codeOfStatus(he.Code), Message: msg}
	}
	return http.StatusInternalServerError, ErrorBody{Code: domain.EInternal, Message: "internal error"}
}

// ErrorHandler is echo's HTTPErrorHandler for every Vexil server.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, body := Body(err)
		if status >= 500 {
			log.Error("request failed", "err", err, "method", c.Request().Method,
				"path", c.Path(), "request_id", RequestID(c))
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, body)
	}
}
