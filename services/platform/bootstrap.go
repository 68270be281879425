package platform

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/console"
)

var bootstrapMeta = domain.Metadata{Actor: "system:bootstrap", Reason: "bootstrap admin token"}

// BootstrapAdminToken makes sure an administrator can reach the management API.
//
// With VEXIL_ADMIN_TOKEN set, a token with that secret exists (stored hashed, created on first
// start; the stream id is derived from the hash, so several processes starting at once create it
// once). Without it, when no live admin token exists at all, one is generated and returned, to be
// printed once; it is never shown again. It returns "" when nothing was generated.
func BootstrapAdminToken(ctx context.Context, app *console.App, pool *pgxpool.Pool, configured string) (string, error) {
	if configured != "" {
		hash := console.HashToken(configured)
		id := "bootstrap-" + hash[:12]
		_, _, err := app.Execute(ctx, domain.TokenStream(id), console.AnyVersion, bootstrapMeta,
			func(cur projections.Aggregate) ([]domain.Event, error) {
				if cur != nil {
					return nil, nil // already there (possibly revoked by an admin: leave it so)
				}
				return domain.IssueToken(id, "bootstrap admin (VEXIL_ADMIN_TOKEN)", hash, domain.ScopeAdmin, "")
			})
		if err != nil && domain.ErrorCode(err) != domain.EConflict {
			return "", fmt.Errorf("bootstrap admin token: %w", err)
		}
		return "", nil
	}
	var live bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rm_api_tokens WHERE scope = 'admin' AND NOT revoked)`).Scan(&live); err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	if live {
		return "", nil
	}
	secret, _, _, err := app.IssueToken(ctx, bootstrapMeta, "bootstrap admin (generated)", domain.ScopeAdmin, "")
	if err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	return secret, nil
}
