package postgres_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/postgres"
)

// A database host that takes the connection but never answers (a hung server, a blackholed
// route behind a proxy) makes Open fail after the default connect timeout instead of hanging, so
// requests answer 503 instead of waiting for ever.
func TestOpenGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // never accepted: the kernel completes the handshake, nobody answers
	done := make(chan error, 1)
	go func() {
		pool, err := postgres.Open(context.Background(), "postgres://postgres@"+ln.Addr().String()+"/x?sslmode=disable")
		if pool != nil {
			pool.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Open succeeded against a server that never answers")
		}
	case <-time.After(6 * postgres.DefaultConnectTimeout): // generous: the bound is the timeout
		t.Fatalf("Open still waits after %v", 6*postgres.DefaultConnectTimeout)
	}
}
