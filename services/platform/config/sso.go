package config

import (
	"fmt"
	"net/url"
	"strings"
)

// SSO is single sign-on to the console through an OpenID Connect provider (issue 18).
type SSO struct {
	Issuer, ClientID, ClientSecret, RedirectURL string
	Scopes                                      []string
	GroupsClaim                                 string
	// GroupRoles is VEXIL_OIDC_GROUP_ROLES as written; identity.ParseGroupRoles reads it (the
	// platform checks it at start).
	GroupRoles string
	// LocalPasswords off: the console refuses sign-in with a password (SSO only).
	LocalPasswords bool
}

// Enabled reports whether an issuer is configured.
func (s SSO) Enabled() bool { return s.Issuer != "" }

func init() {
	settings = append(settings,
		setting{"VEXIL_OIDC_ISSUER", "oidc-issuer", "", "console single sign-on: the OpenID Connect provider's issuer URL (its /.well-known/openid-configuration is read); empty: no SSO"},
		setting{"VEXIL_OIDC_CLIENT_ID", "oidc-client-id", "", "console single sign-on: the client id Vexil is registered with at the provider"},
		setting{"VEXIL_OIDC_CLIENT_SECRET", "oidc-client-secret", "", "console single sign-on: the client secret (empty for a public client: the flow uses PKCE either way)"},
		setting{"VEXIL_OIDC_REDIRECT_URL", "oidc-redirect-url", "", "console single sign-on: this console's callback as registered at the provider, https://vexil.example.com/login/sso/callback"},
		setting{"VEXIL_OIDC_SCOPES", "oidc-scopes", "openid,email,profile", "console single sign-on: comma list of scopes asked for; add groups where the provider needs it to send the groups claim"},
		setting{"VEXIL_OIDC_GROUPS_CLAIM", "oidc-groups-claim", "groups", "console single sign-on: the claim (ID token or userinfo) that lists the person's groups"},
		setting{"VEXIL_OIDC_GROUP_ROLES", "oidc-group-roles", "", "console single sign-on: comma list of group:project=role (viewer, editor, admin), e.g. eng:shop=editor,admins:*=admin (* with admin: instance admin); applied at every sign-in"},
		setting{"VEXIL_LOCAL_PASSWORDS", "local-passwords", "on", "on or off: off refuses console sign-in with a password (people sign in with SSO only)"},
	)
}

func (c *Config) parseSSO(vals map[string]*string) error {
	c.SSO = SSO{Issuer: strings.TrimSpace(*vals["oidc-issuer"]), ClientID: strings.TrimSpace(*vals["oidc-client-id"]),
		ClientSecret: *vals["oidc-client-secret"], RedirectURL: strings.TrimSpace(*vals["oidc-redirect-url"]),
		GroupsClaim: strings.TrimSpace(*vals["oidc-groups-claim"]), GroupRoles: *vals["oidc-group-roles"]}
	for _, s := range strings.Split(*vals["oidc-scopes"], ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.SSO.Scopes = append(c.SSO.Scopes, s)
		}
	}
	switch strings.ToLower(strings.TrimSpace(*vals["local-passwords"])) {
	case "on", "true", "1", "yes":
		c.SSO.LocalPasswords = true
	case "off", "false", "0", "no":
	default:
		return fmt.Errorf("config: local-passwords must be on or off, got %q", *vals["local-passwords"])
	}
	if !c.SSO.Enabled() {
		if !c.SSO.LocalPasswords {
			return fmt.Errorf("config: local-passwords=off needs single sign-on (oidc-issuer): nobody could sign in")
		}
		return nil
	}
	for name, v := range map[string]string{"oidc-issuer": c.SSO.Issuer, "oidc-redirect-url": c.SSO.RedirectURL} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("config: %s must be an absolute http(s) URL, got %q", name, v)
		}
	}
	if c.SSO.ClientID == "" {
		return fmt.Errorf("config: oidc-client-id is required with oidc-issuer")
	}
	return nil
}
