// Package oidc signs people in to the console through an OpenID Connect provider: the
// authorization code flow with PKCE (S256), a nonce bound to the ID token, and the ID token
// verified against the provider's published keys (github.com/coreos/go-oidc/v3 over
// golang.org/x/oauth2). What it returns is an identity.ExternalIdentity; identity.Store decides
// which account that is and which roles its groups give.
package oidc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app/identity"
)

// Config is the client's registration at the provider (VEXIL_OIDC_*).
type Config struct {
	Issuer, ClientID, ClientSecret, RedirectURL string
	// Scopes asked for; openid is always added. Most providers put groups in the ID token or
	// the userinfo only when a "groups" scope is asked for.
	Scopes []string
	// GroupsClaim names the claim that lists the person's groups ("groups").
	GroupsClaim string
	// HTTPClient talks to the provider (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// Client runs the flow. Discovery (the provider's /.well-known/openid-configuration) happens
// on first use and is retried on the next use after a failure, so the console starts while the
// provider is down and SSO works once it is back.
type Client struct {
	cfg Config

	mu       sync.Mutex
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	oauth    oauth2.Config
}

// New checks cfg; it contacts nobody.
func New(cfg Config) (*Client, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("oidc: issuer, client id and redirect URL are required")
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if !containsScope(cfg.Scopes, gooidc.ScopeOpenID) {
		cfg.Scopes = append([]string{gooidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	return &Client{cfg: cfg}, nil
}

func containsScope(scopes []string, s string) bool {
	for _, x := range scopes {
		if x == s {
			return true
		}
	}
	return false
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return gooidc.ClientContext(ctx, c.cfg.HTTPClient)
}

func (c *Client) discover(ctx context.Context) (*gooidc.Provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c.provider, nil
	}
	p, err := gooidc.NewProvider(c.ctx(ctx), c.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discover %s: %v: %w", c.cfg.Issuer, err,
			domain.Errorf(domain.EUnavailable, "the identity provider cannot be reached; try again in a moment"))
	}
	c.provider = p
	c.verifier = p.Verifier(&gooidc.Config{ClientID: c.cfg.ClientID})
	c.oauth = oauth2.Config{ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret, RedirectURL: c.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: c.cfg.Scopes}
	return p, nil
}

// Start is one sign-in on its way: the provider URL to send the browser to, and the secrets the
// callback needs back (kept in a short-lived cookie by the console).
type Start struct {
	URL                    string
	State, Nonce, Verifier string
}

// Begin starts a sign-in.
func (c *Client) Begin(ctx context.Context) (Start, error) {
	if _, err := c.discover(ctx); err != nil {
		return Start{}, err
	}
	s := Start{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier()}
	s.URL = c.oauth.AuthCodeURL(s.State, gooidc.Nonce(s.Nonce), oauth2.S256ChallengeOption(s.Verifier))
	return s, nil
}

// Finish exchanges the callback's code (with the PKCE verifier), verifies the ID token (issuer,
// audience, expiry, signature, nonce) and reads the person from its claims; the groups come from
// the userinfo endpoint when the ID token does not carry them. Every failure of the person's
// sign-in is EUnauthorized; an unreachable provider is EUnavailable.
func (c *Client) Finish(ctx context.Context, code, verifier, nonce string) (identity.ExternalIdentity, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return identity.ExternalIdentity{}, err
	}
	refused := func(format string, args ...any) (identity.ExternalIdentity, error) {
		// The cause goes to the log (through the wrapped text), the person sees the message.
		return identity.ExternalIdentity{}, fmt.Errorf("oidc: %s: %w", fmt.Sprintf(format, args...),
			domain.Errorf(domain.EUnauthorized, "single sign-on failed; try again"))
	}
	tok, err := c.oauth.Exchange(c.ctx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return refused("exchange the code: %v", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return refused("the token answer has no id_token")
	}
	idt, err := c.verifier.Verify(c.ctx(ctx), raw)
	if err != nil {
		return refused("verify the ID token: %v", err)
	}
	if idt.Nonce != nonce {
		return refused("the ID token's nonce is not this sign-in's")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return refused("read claims: %v", err)
	}
	id := identity.ExternalIdentity{Issuer: idt.Issuer, Subject: idt.Subject}
	fill := func(claims map[string]any) {
		if v, ok := claims["email"].(string); ok && id.Email == "" {
			id.Email = v
		}
		if v, ok := claims["email_verified"].(bool); ok && !id.EmailVerified {
			id.EmailVerified = v
		}
		if v, ok := claims["name"].(string); ok && id.Name == "" {
			id.Name = v
		}
		if id.Groups == nil {
			id.Groups = groupsOf(claims[c.cfg.GroupsClaim])
		}
	}
	fill(claims)
	if id.Groups == nil || id.Email == "" {
		info, err := p.UserInfo(c.ctx(ctx), oauth2.StaticTokenSource(tok))
		if err == nil && info.Subject == idt.Subject {
			var more map[string]any
			if info.Claims(&more) == nil {
				fill(more)
			}
		}
	}
	return id, nil
}

// groupsOf reads a groups claim: a list of strings, or one string (some providers send a
// single group as a string; a few send a space- or comma-separated list).
func groupsOf(v any) []string {
	switch g := v.(type) {
	case []any:
		out := make([]string, 0, len(g))
		for _, x := range g {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return strings.FieldsFunc(g, func(r rune) bool { return r == ',' || r == ' ' })
	}
	return nil
}

func random() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("oidc: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
