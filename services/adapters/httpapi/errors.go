// Package httpapi holds what every HTTP role shares: the mapping of domain errors to HTTP
// statuses (in exactly one place), strict JSON decoding with size limits, request ids, access logs
// and request metrics on echo.
package httpapi

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

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

// OutageRetryAfter is the Retry-After, in seconds, of a 503 that names no wait of its own: long
// enough not to hammer a database that is restarting, short enough that clients notice recovery.
const OutageRetryAfter = 5

// Outage classifies err as a dependency being down: the connection could not be made or was
// lost, the server is shutting down or refusing connections, or the wait for a connection timed
// out. It returns the EUnavailable error a client sees (naming the dependency in
// Details[domain.DependencyDetail], never its address or credentials) and true; other errors
// give nil and false. It is the one classifier of outages: Body applies it to every error that
// is not already a domain error other than EInternal, so no handler or adapter has to.
func Outage(err error) (*domain.Error, bool) {
	if err == nil {
		return nil, false
	}
	var de *domain.Error
	if errors.As(err, &de) && de.Code == domain.EUnavailable {
		if _, named := de.Details[domain.DependencyDetail]; named {
			return de, true
		}
	}
	if dep := downDependency(err); dep != "" {
		return unavailable(dep), true
	}
	if de != nil && de.Code == domain.EUnavailable {
		return de, true
	}
	return nil, false
}

// unavailable is the answer to an outage of dep.
func unavailable(dep string) *domain.Error {
	what := "the " + dep
	if dep == domain.DependencyRedis {
		what = "Redis"
	}
	return &domain.Error{Code: domain.EUnavailable, Message: what + " is unavailable; retry later",
		Details: map[string]any{domain.DependencyDetail: dep, retryAfterDetail: OutageRetryAfter}}
}

// retryAfterDetail is the Details key of a refusal's Retry-After seconds (as telemetry uses it).
const retryAfterDetail = "retry_after_seconds"

// downDependency names the dependency err says is down, or "".
func downDependency(err error) string {
	// PostgreSQL: any failure to connect (refused, timed out, the server starting up, shutting
	// down or refusing the login) leaves the database unusable. pgconn marks every error of its
	// own network layer (lost connection, timeout, a conn busy or closed) with SafeToRetry, so a
	// bare net.Error below is not PostgreSQL's.
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return domain.DependencyDatabase
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutting down, starting
			pgErr.Code == "53300": // too many connections
			return domain.DependencyDatabase
		}
		return ""
	}
	var pgconnErr interface{ SafeToRetry() bool }
	if errors.As(err, &pgconnErr) || pgconn.Timeout(err) ||
		errors.Is(err, driver.ErrBadConn) {
		return domain.DependencyDatabase
	}
	// Redis: go-redis returns the network's errors bare. pgconn wraps its dial failures in a
	// ConnectError (above), so a bare failed dial is Redis's. A bare failed read or write is not
	// classified: it may as well be the client's own connection (a request body cut short).
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return domain.DependencyRedis
	}
	if errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) ||
		redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) {
		return domain.DependencyRedis
	}
	// A deadline while waiting for a pooled connection is the database not answering: the only
	// deadlines on request paths are the database's (the pool's acquire, statement timeouts).
	if errors.Is(err, context.DeadlineExceeded) {
		return domain.DependencyDatabase
	}
	// pgx returns a connection the server dropped mid-query (a crash, an immediate shutdown, a
	// failover) as a bare io.ErrUnexpectedEOF or io.EOF. Request bodies are the other source of
	// EOFs, and every reader of them (DecodeJSON, the SDK API's) answers its own 400 first, so a
	// bare EOF reaching here is the database's.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return domain.DependencyDatabase
	}
	return ""
}

// Body turns any error into the status and body a client sees. Errors that are not domain or echo
// errors become a generic internal error: their text may hold details that must not leak.
// Outages (see Outage) become 503 whatever layer returned them.
func Body(err error) (int, ErrorBody) {
	var de *domain.Error
	if errors.As(err, &de) && de.Code != domain.EInternal && de.Code != domain.EUnavailable {
		return StatusOf(de.Code), ErrorBody{Code: de.Code, Message: de.Message, Field: de.Field, Details: de.Details}
	}
	if out, ok := Outage(err); ok {
		de = out
	}
	if de != nil {
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

// SetRetryAfter gives a 503 its Retry-After, unless the handler set one: the refusal's own
// (Details retry_after_seconds) or OutageRetryAfter. Handlers that answer errors in another
// protocol's shape (OFREP) call it too.
func SetRetryAfter(c echo.Context, status int, body ErrorBody) {
	if status != http.StatusServiceUnavailable || c.Response().Header().Get("Retry-After") != "" {
		return
	}
	secs := OutageRetryAfter
	if n, ok := body.Details[retryAfterDetail].(int); ok && n > 0 {
		secs = n
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
}

// StatusClientClosedRequest is what the access log records for a request its client abandoned
// (nginx's 499): no client reads it.
const StatusClientClosedRequest = 499

// ErrorHandler is echo's HTTPErrorHandler for every Vexil server.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
			// The client went away (closed its connection or gave up) while the handler waited
			// on a dependency: no failure of the server's, and nobody reads the answer, so it is
			// neither a 500 nor an error in the log.
			log.Debug("request abandoned by the client", "err", err, "method", c.Request().Method,
				"path", c.Path(), "request_id", RequestID(c))
			c.Response().WriteHeader(StatusClientClosedRequest)
			return
		}
		status, body := Body(err)
		SetRetryAfter(c, status, body)
		if status == http.StatusServiceUnavailable {
			// An outage fails every request alike: a warning each, not an error page per request.
			log.Warn("request failed: a dependency is unavailable", "err", err, "method", c.Request().Method,
				"path", c.Path(), "request_id", RequestID(c))
		} else if status >= 500 {
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
