package platform

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
)

var bootstrapMeta = app.Meta{Actor: "system:bootstrap", Reason: "bootstrap admin token"}

// BootstrapAdminToken makes sure an administrator can reach the management API.
//
// With VEXIL_ADMIN_TOKEN set, a token with that secret exists (stored hashed, created on first
// start; the stream id is derived from the hash, so several processes starting at once create it
// once). Without it, when no live admin token exists at all, one is generated and returned, to be
// printed once; it is never shown again. It returns "" when nothing was generated.
func BootstrapAdminToken(ctx context.Context, a *app.Application, pool *pgxpool.Pool, configured string) (string, error) {
	if configured != "" {
		hash := app.HashToken(configured)
		// Already there (possibly revoked by an admin): left so.
		_, err := a.Commands.RegisterToken(ctx, bootstrapMeta, app.RegisterToken{ID: "bootstrap-" + hash[:12],
			Name: "bootstrap admin (VEXIL_ADMIN_TOKEN)", Scope: domain.ScopeAdmin, Hash: hash})
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
	issued, err := a.Commands.IssueToken(ctx, bootstrapMeta, app.IssueToken{Name: "bootstrap admin (generated)", Scope: domain.ScopeAdmin})
	if err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	return issued.Secret, nil
}
