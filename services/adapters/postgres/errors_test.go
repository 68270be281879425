package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
)

// What the database refuses to store because of the input itself is the client's error (400),
// not an internal one: a safety net behind the HTTP layer's own checks.
func TestTranslateErrorMakesUnstorableTextAnInputError(t *testing.T) {
	t.Parallel()
	pool := mustOpen(t)
	ctx := context.Background()
	cases := map[string]struct {
		sql  string
		arg  any
		code string
	}{
		"NUL in jsonb":          {`SELECT $1::text::jsonb`, `{"a":"\u0000"}`, "22P05"},
		"NUL in text":           {`SELECT $1::text`, "a\x00b", "22021"},
		"invalid UTF-8 in text": {`SELECT $1::text`, "a\xffb", "22021"},
	}
	for name, c := range cases {
		var out string
		err := pool.QueryRow(ctx, c.sql, c.arg).Scan(&out)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != c.code {
			t.Fatalf("%s: want SQLSTATE %s, got %v", name, c.code, err)
		}
		tr := postgres.TranslateError(err)
		if domain.ErrorCode(tr) != domain.EInvalid {
			t.Errorf("%s: translated to %v, want invalid", name, tr)
		}
		if !errors.As(tr, &pgErr) {
			t.Errorf("%s: the driver error left the chain", name)
		}
	}
	for _, code := range []string{"22001", "54000", "54001"} {
		if got := domain.ErrorCode(postgres.TranslateError(&pgconn.PgError{Code: code})); got != domain.EInvalid {
			t.Errorf("SQLSTATE %s: %s, want invalid", code, got)
		}
	}
}

// Every process gets the same installation secret, however many ask at once.
func TestInstallationSecretIsCreatedOnceAndShared(t *testing.T) {
	t.Parallel()
	pool := mustOpen(t)
	ctx := context.Background()
	secrets := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range secrets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.InstallationSecret(ctx, pool, "cursor")
			if err != nil {
				t.Error(err)
			}
			secrets[i] = s
		}()
	}
	wg.Wait()
	if len(secrets[0]) != 32 {
		t.Fatalf("secret of %d bytes", len(secrets[0]))
	}
	for _, s := range secrets[1:] {
		if string(s) != string(secrets[0]) {
			t.Fatal("two processes got different secrets")
		}
	}
	other, err := postgres.InstallationSecret(ctx, pool, "other")
	if err != nil || string(other) == string(secrets[0]) {
		t.Fatalf("another name: %v (same secret: %v)", err, string(other) == string(secrets[0]))
	}
}
