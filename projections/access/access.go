// Package access is the read model of credentials: SDK keys by environment and management API
// tokens by hash. It runs inline, in the transaction that appends the events, so a new key or
// token works, and a rotated or revoked one stops working, the moment the write returns.
package access

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
)

// Name of this projection.
const Name = "access"

// Projection maintains rm_sdk_keys and rm_api_tokens.
type Projection struct{}

func (Projection) Name() string { return Name }

// Tables implements projections.TableOwner.
func (Projection) Tables() []string { return []string{"rm_sdk_keys", "rm_api_tokens"} }

// VolatileColumns implements projections.TableOwner.
func (Projection) VolatileColumns() map[string][]string { return nil }

// Apply implements projections.Projection, for replay: history is not needed.
func (p Projection) Apply(ctx context.Context, tx pgx.Tx, _, newEvents []domain.RecordedEvent) error {
	return p.ApplyInline(ctx, tx, newEvents)
}

// ApplyInline implements the event store's inline projection.
func (Projection) ApplyInline(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	for _, r := range events {
		e, err := r.Decode()
		if err != nil {
			return err
		}
		project := ""
		if domain.StreamKind(r.StreamID) == "project" {
			project = r.StreamID[len("project/"):]
		}
		switch e := e.(type) {
		case *domain.EnvironmentCreated:
			_, err = tx.Exec(ctx, `INSERT INTO rm_sdk_keys (key, project, environment, kind, created_at)
				VALUES ($1,$2,$3,'client',$5), ($4,$2,$3,'server',$5) ON CONFLICT (key) DO NOTHING`,
				e.ClientKey, project, e.Key, e.ServerKey, r.OccurredAt)
		case *domain.SDKKeyRotated:
			if _, err = tx.Exec(ctx, `DELETE FROM rm_sdk_keys WHERE key = $1`, e.PreviousKey); err == nil {
				_, err = tx.Exec(ctx, `INSERT INTO rm_sdk_keys (key, project, environment, kind, created_at)
					VALUES ($1,$2,$3,$4,$5) ON CONFLICT (key) DO NOTHING`, e.Key, project, e.Environment, e.Kind, r.OccurredAt)
			}
		case *domain.TokenIssued:
			envs := e.Environments
			if envs == nil {
				envs = []string{}
			}
			_, err = tx.Exec(ctx, `INSERT INTO rm_api_tokens (id, name, hash, scope, project, environments, created_at)
				VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (id) DO NOTHING`, e.ID, e.Name, e.Hash, e.Scope, e.Project, envs, r.OccurredAt)
		case *domain.TokenRevoked:
			_, err = tx.Exec(ctx, `UPDATE rm_api_tokens SET revoked = true, revoked_at = $2 WHERE id = $1`, e.ID, r.OccurredAt)
		}
		if err != nil {
			return fmt.Errorf("access: apply %s %s v%d: %w", r.Type, r.StreamID, r.Version, err)
		}
	}
	return nil
}

// Querier is what the lookups need: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SDKKey is what an SDK key grants.
type SDKKey struct {
	Project     string
	Environment string
	Kind        string // client or server
}

// LookupSDKKey resolves an SDK key. Unknown (or rotated) keys return ENotFound.
func LookupSDKKey(ctx context.Context, q Querier, key string) (SDKKey, error) {
	var k SDKKey
	err := q.QueryRow(ctx, `SELECT project, environment, kind FROM rm_sdk_keys WHERE key = $1`, key).
		Scan(&k.Project, &k.Environment, &k.Kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return SDKKey{}, domain.Errorf(domain.ENotFound, "unknown SDK key")
	}
	if err != nil {
		return SDKKey{}, fmt.Errorf("access: lookup sdk key: %w", err)
	}
	return k, nil
}

// Token is an API token as the management API authorizes it.
type Token struct {
	ID      string
	Name    string
	Scope   string
	Project string // empty: every project
	// Environments narrows an edge token to these environments of Project; empty: all.
	Environments []string
	Revoked      bool
	CreatedAt    time.Time
}

// LookupToken resolves a token by the hex SHA-256 of its secret. Unknown tokens return ENotFound;
// revoked tokens are returned with Revoked set so callers can say so.
func LookupToken(ctx context.Context, q Querier, hash string) (Token, error) {
	var t Token
	err := q.QueryRow(ctx, `SELECT id, name, scope, project, environments, revoked, created_at FROM rm_api_tokens WHERE hash = $1`, hash).
		Scan(&t.ID, &t.Name, &t.Scope, &t.Project, &t.Environments, &t.Revoked, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, domain.Errorf(domain.ENotFound, "unknown API token")
	}
	if err != nil {
		return Token{}, fmt.Errorf("access: lookup token: %w", err)
	}
	return t, nil
}
