package httpapi_test

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
)

// realConnectError is what pgx returns when the server refuses connections: a *pgconn.ConnectError
// from a real failed connect, whose text names the user, database, host and port.
func realConnectError(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = pgconn.Connect(context.Background(), "postgres://secret_user:hunter2@"+addr+"/secret_db?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	return err
}

// refusedByServer is a *pgconn.ConnectError wrapping the server's own refusal (a *PgError,
// here 3D000 for a database that does not exist; a wrong password or a server starting up come
// the same way): a database we cannot connect to is unavailable, whatever the SQLSTATE.
func refusedByServer(t *testing.T) error {
	t.Helper()
	u, err := url.Parse(pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/vexil_no_such_database_for_httpapi"
	_, err = pgconn.Connect(context.Background(), u.String())
	var pgErr *pgconn.PgError
	var connectErr *pgconn.ConnectError
	if !errors.As(err, &connectErr) || !errors.As(err, &pgErr) {
		t.Fatalf("connecting to a missing database: %v", err)
	}
	return err
}

func TestOutagesAnswer503NamingTheDependency(t *testing.T) {
	connect := realConnectError(t)
	dialRedis := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name string
		err  error
		dep  string // "" when it is not an outage
	}{
		{"connect refused", fmt.Errorf("access: lookup token: %w", connect), domain.DependencyDatabase},
		{"connection lost mid-query", fmt.Errorf("access: lookup token: %w", io.ErrUnexpectedEOF), domain.DependencyDatabase},
		{"the server refusing the connection", refusedByServer(t), domain.DependencyDatabase},
		{"admin shutdown", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, domain.DependencyDatabase},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, domain.DependencyDatabase},
		{"starting up", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, domain.DependencyDatabase},
		{"connection failure", &pgconn.PgError{Code: "08006"}, domain.DependencyDatabase},
		{"too many connections", &pgconn.PgError{Code: "53300"}, domain.DependencyDatabase},
		{"bad connection", fmt.Errorf("query: %w", driver.ErrBadConn), domain.DependencyDatabase},
		{"deadline waiting for a connection", fmt.Errorf("acquire: %w", context.DeadlineExceeded), domain.DependencyDatabase},
		{"redis dial", fmt.Errorf("publish: %w", dialRedis), domain.DependencyRedis},
		{"redis client closed", redis.ErrClosed, domain.DependencyRedis},
		{"redis pool timeout", redis.ErrPoolTimeout, domain.DependencyRedis},
		{"a domain error naming its dependency", &domain.Error{Code: domain.EUnavailable, Message: "x",
			Details: map[string]any{domain.DependencyDetail: domain.DependencyRedis}}, domain.DependencyRedis},
		{"an internal domain error wrapping a lost connection", errors.Join(domain.Errorf(domain.EInternal, "internal error"), io.ErrUnexpectedEOF), domain.DependencyDatabase},

		{"unique violation", &pgconn.PgError{Code: "23505"}, ""},
		{"syntax error", &pgconn.PgError{Code: "42601"}, ""},
		{"a plain error", errors.New("boom"), ""},
		{"a read of a client's connection", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := httpapi.Body(c.err)
			if c.dep == "" {
				if status != http.StatusInternalServerError || body.Code != domain.EInternal || body.Message != "internal error" {
					t.Fatalf("got %d %+v, want a plain 500", status, body)
				}
				return
			}
			if status != http.StatusServiceUnavailable || body.Code != domain.EUnavailable || body.Details[domain.DependencyDetail] != c.dep {
				t.Fatalf("got %d %+v, want 503 naming %s", status, body, c.dep)
			}
			js, _ := json.Marshal(body)
			for _, leak := range []string{"secret_user", "hunter2", "secret_db", "127.0.0.1", "dial"} {
				if strings.Contains(string(js), leak) {
					t.Fatalf("the answer reveals %q: %s", leak, js)
				}
			}
		})
	}
}

// The error handler answers an outage with Retry-After: the refusal's own when it names one
// (telemetry's backlog), OutageRetryAfter otherwise.
func TestErrorHandlerSetsRetryAfterOn503(t *testing.T) {
	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))
	e.GET("/db", func(echo.Context) error { return fmt.Errorf("lookup: %w", io.ErrUnexpectedEOF) })
	e.GET("/named", func(echo.Context) error {
		return &domain.Error{Code: domain.EUnavailable, Message: "the telemetry stream is unavailable",
			Details: map[string]any{"retry_after_seconds": 9}}
	})
	for path, want := range map[string]string{"/db": "5", "/named": "9"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 503 || rec.Header().Get("Retry-After") != want {
			t.Fatalf("%s: %d Retry-After %q, want 503 and %s: %s", path, rec.Code, rec.Header().Get("Retry-After"), want, rec.Body)
		}
		var b httpapi.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Code != domain.EUnavailable {
			t.Fatalf("%s: body %s", path, rec.Body)
		}
	}
}

// A request whose client went away while the handler waited on the database is not a server
// failure: no 500, and no error in the log (found when a client timed out during bulk writes).
func TestErrorHandlerTreatsAnAbandonedRequestAsTheClients(t *testing.T) {
	var logged strings.Builder
	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, cancel := context.WithCancel(context.Background())
	e.GET("/slow", func(c echo.Context) error {
		cancel() // the client hangs up while the query runs
		return fmt.Errorf("catalog rm_segments of demo: %w", c.Request().Context().Err())
	})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/slow", nil).WithContext(ctx))
	if rec.Code != httpapi.StatusClientClosedRequest {
		t.Fatalf("status %d, want %d", rec.Code, httpapi.StatusClientClosedRequest)
	}
	if logged.Len() != 0 {
		t.Fatalf("logged %q, want nothing at info level", logged.String())
	}
	// The same error while the client is still there is the server's: a 500, logged.
	e.GET("/broken", func(c echo.Context) error { return fmt.Errorf("worker: %w", context.Canceled) })
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/broken", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(logged.String(), "request failed") {
		t.Fatalf("status %d, log %q: want a logged 500", rec.Code, logged.String())
	}
}
