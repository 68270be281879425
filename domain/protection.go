package domain

import "fmt"

// Approver roles: the project role a person needs to approve a change request in a protected
// environment. An admin may approve where an editor may.
const (
	ApproverEditor = "editor"
	ApproverAdmin  = "admin"
	// MaxRequiredApprovals bounds an environment's required approvals: more people than a team
	// has would make every change wait forever.
	MaxRequiredApprovals = 10
)

// Protection is the approval policy of a protected environment: every change to what it serves
// becomes a change request that RequiredApprovals people other than its author, each holding
// ApproverRole in the project, must approve before it applies.
type Protection struct {
	RequiredApprovals int    `json:"required_approvals"`
	ApproverRole      string `json:"approver_role"`
}

// EnvironmentProtectionSet protects an environment (Protection set) or lifts the protection (nil).
type EnvironmentProtectionSet struct {
	Environment string      `json:"environment"`
	Protection  *Protection `json:"protection,omitempty"`
}

func (*EnvironmentProtectionSet) EventType() string { return "EnvironmentProtectionSet" }

func init() {
	register(func() Event { return new(EnvironmentProtectionSet) })
}

// SetEnvironmentProtection protects env with p, or lifts its protection when p is nil. Zero
// required approvals mean the default, 1; an empty role means editor.
func (p *Project) SetEnvironmentProtection(env string, prot *Protection) ([]Event, error) {
	if err := p.exists(); err != nil {
		return nil, err
	}
	e, ok := p.Environments[env]
	if !ok {
		return nil, &Error{Code: ENotFound, Field: "environment", Message: fmt.Sprintf("environment %q not found", env)}
	}
	if prot != nil {
		c := *prot
		if c.RequiredApprovals == 0 {
			c.RequiredApprovals = 1
		}
		if c.RequiredApprovals < 1 || c.RequiredApprovals > MaxRequiredApprovals {
			return nil, Invalid("required_approvals", "required approvals must be 1 to %d, got %d", MaxRequiredApprovals, c.RequiredApprovals)
		}
		if c.ApproverRole == "" {
			c.ApproverRole = ApproverEditor
		}
		if c.ApproverRole != ApproverEditor && c.ApproverRole != ApproverAdmin {
			return nil, Invalid("approver_role", "approver role must be %q or %q, not %q", ApproverEditor, ApproverAdmin, truncate(c.ApproverRole, 40))
		}
		prot = &c
	}
	if (e.Protection == nil && prot == nil) || (e.Protection != nil && prot != nil && *e.Protection == *prot) {
		return nil, nil
	}
	return []Event{&EnvironmentProtectionSet{Environment: env, Protection: prot}}, nil
}

// Protected returns the approval policy of env, or nil when changes there apply directly.
func (p *Project) Protected(env string) *Protection {
	if e := p.Environment(env); e != nil {
		return e.Protection
	}
	return nil
}

// RoleMayApprove says whether a person holding role ("viewer", "editor", "admin") in the project
// may approve under p.
func (p Protection) RoleMayApprove(role string) bool {
	switch p.ApproverRole {
	case ApproverAdmin:
		return role == ApproverAdmin
	default:
		return role == ApproverEditor || role == ApproverAdmin
	}
}
