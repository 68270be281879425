package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
)

// InstallationSecret returns the installation's secret called name (32 random bytes), creating
// it on first use. Processes that ask at once all get the one that was stored first, so every
// replica signs and checks with the same key.
func InstallationSecret(ctx context.Context, db Querier, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("installation secret %s: %w", name, err)
	}
	// Two statements, not one: a statement's snapshot would miss a row that a concurrent
	// process committed while this INSERT waited on it.
	if _, err := db.Exec(ctx, `INSERT INTO installation_secrets (name, secret) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, name, fresh); err != nil {
		return nil, TranslateError(fmt.Errorf("installation secret %s: %w", name, err))
	}
	var secret []byte
	if err := db.QueryRow(ctx, `SELECT secret FROM installation_secrets WHERE name = $1`, name).Scan(&secret); err != nil {
		return nil, TranslateError(fmt.Errorf("installation secret %s: %w", name, err))
	}
	return secret, nil
}
