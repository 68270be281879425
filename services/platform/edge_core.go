package platform

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/roles/sdkapi"
)

// edgeAuth resolves an edge token (scope edge) for the core's /edge/v1 routes. Other tokens,
// even admin ones, are refused: an edge credential is made for edges and nothing else.
func edgeAuth(pool *pgxpool.Pool) func(ctx context.Context, secret string) (sdkapi.EdgeScope, error) {
	return func(ctx context.Context, secret string) (sdkapi.EdgeScope, error) {
		t, err := access.LookupToken(ctx, pool, app.HashToken(secret))
		if domain.ErrorCode(err) == domain.ENotFound {
			return sdkapi.EdgeScope{}, domain.Errorf(domain.EUnauthorized, "unknown edge token")
		}
		if err != nil {
			return sdkapi.EdgeScope{}, err
		}
		if t.Revoked {
			return sdkapi.EdgeScope{}, domain.Errorf(domain.EUnauthorized, "this edge token has been revoked")
		}
		if t.Scope != domain.ScopeEdge {
			return sdkapi.EdgeScope{}, domain.Errorf(domain.EForbidden, "this token has scope %q; /edge/v1 needs an edge token (scope %q)", t.Scope, domain.ScopeEdge)
		}
		return sdkapi.EdgeScope{Project: t.Project, Environments: t.Environments}, nil
	}
}

// exposuresOff is the core's list of environments without server-side exposures, for edges.
func exposuresOff(pool *pgxpool.Pool) func(ctx context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) { return catalog.ServerExposuresOff(ctx, pool) }
}
