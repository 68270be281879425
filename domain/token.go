package domain

const tokenAggregate = "token"

// scopeRank orders scopes: each scope implies the ones ranked below it.
var scopeRank = map[string]int{ScopeRead: 1, ScopeWrite: 2, ScopeAdmin: 3}

// ValidScope reports whether s is read, write, admin or edge.
func ValidScope(s string) bool { return scopeRank[s] > 0 || s == ScopeEdge }

// ScopeAllows reports whether a token with scope have may do what needs scope need:
// admin ⊇ write ⊇ read. Edge stands apart: an edge token allows no management scope (it only
// mirrors and forwards, through /edge/v1), and only admin allows issuing or revoking one.
// Unknown scopes allow nothing and are allowed by nothing.
func ScopeAllows(have, need string) bool {
	if need == ScopeEdge {
		return have == ScopeAdmin
	}
	h, n := scopeRank[have], scopeRank[need]
	return h > 0 && n > 0 && h >= n
}

// Permits reports whether the token may act with scope need on project (a token bound to a
// project reaches only that project; project "" asks about project-independent resources, which
// only unbound tokens reach). A revoked token permits nothing. It is the management API's whole
// authorization rule: acting on another token asks Permits(target's project, target's scope), so
// no token creates, sees or revokes one beyond itself.
func (t *APIToken) Permits(project, need string) bool {
	if t == nil || t.ID == "" || t.Revoked {
		return false
	}
	if t.Project != "" && t.Project != project {
		return false
	}
	return ScopeAllows(t.Scope, need)
}

// IssueToken records a new API token. id is chosen by the caller (URL-safe, ValidKey), hash is
// the lowercase hex SHA-256 of the secret (the secret itself never reaches the domain), project
// is empty for a token valid in every project.
func IssueToken(id, name, hash, scope, project string) ([]Event, error) {
	return IssueEdgeToken(id, name, hash, scope, project, nil)
}

// IssueEdgeToken is IssueToken with the environments an edge token is narrowed to (scope edge
// and a project only: environment keys belong to a project). No environments: all of them.
func IssueEdgeToken(id, name, hash, scope, project string, environments []string) ([]Event, error) {
	if !ValidKey(id) {
		return nil, Invalid("id", "invalid token id %q", truncate(id, 120))
	}
	if err := validName("name", name); err != nil {
		return nil, err
	}
	if !validSHA256Hex(hash) {
		return nil, Invalid("hash", "hash must be a lowercase hex SHA-256 (64 characters)")
	}
	if !ValidScope(scope) {
		return nil, Invalid("scope", "scope must be %q, %q, %q or %q, not %q", ScopeRead, ScopeWrite, ScopeAdmin, ScopeEdge, truncate(scope, 40))
	}
	if project != "" && !ValidKey(project) {
		return nil, Invalid("project", "invalid project key %q", truncate(project, 120))
	}
	if len(environments) > 0 {
		if scope != ScopeEdge {
			return nil, Invalid("environments", "only edge tokens are narrowed to environments")
		}
		if project == "" {
			return nil, Invalid("environments", "environments narrow a token of one project: give project too")
		}
		seen := map[string]bool{}
		for _, env := range environments {
			if !ValidKey(env) {
				return nil, Invalid("environments", "invalid environment key %q", truncate(env, 120))
			}
			if seen[env] {
				return nil, Invalid("environments", "environment %q is listed twice", env)
			}
			seen[env] = true
		}
	}
	return []Event{&TokenIssued{ID: id, Name: name, Hash: hash, Scope: scope, Project: project,
		Environments: environments}}, nil
}

func validSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Revoke revokes the token; it stops working at once. Revoking a revoked token is EConflict.
func (t *APIToken) Revoke() ([]Event, error) {
	if t == nil || t.ID == "" {
		return nil, Errorf(ENotFound, "token not found")
	}
	if t.Revoked {
		return nil, Errorf(EConflict, "token %q is already revoked", t.ID)
	}
	return []Event{&TokenRevoked{ID: t.ID}}, nil
}

// Apply changes the in-memory state by one event of the token stream and bumps Version. Events
// of other aggregates are ignored.
func (t *APIToken) Apply(e Event) { t.apply(e) }

func (t *APIToken) apply(e Event) bool {
	switch e := e.(type) {
	case *TokenIssued:
		t.ID, t.Name, t.Hash, t.Scope, t.Project, t.Environments = e.ID, e.Name, e.Hash, e.Scope, e.Project, e.Environments
	case *TokenRevoked:
		t.Revoked = true
	default:
		return false
	}
	t.Version++
	return true
}

// ApplyRecorded decodes a stored event and applies it, taking Version and the timestamps from the
// record.
func (t *APIToken) ApplyRecorded(r RecordedEvent) error {
	e, err := r.Decode()
	if err != nil {
		return err
	}
	if err := checkOrder(tokenAggregate, r, t.ID != "", isType[*TokenIssued](e)); err != nil {
		return err
	}
	if !t.apply(e) {
		return unexpectedEvent(tokenAggregate, r)
	}
	t.Version = r.Version
	switch e.(type) {
	case *TokenIssued:
		t.CreatedAt = r.OccurredAt
	case *TokenRevoked:
		t.RevokedAt = r.OccurredAt
	}
	return nil
}
