package platform

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strings"

	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/platform/config"
)

// tokens is `vexil tokens create|list|revoke`: admin access a person can recover without a token,
// by talking to the database directly (whoever can reach the database owns the installation
// anyway). Every change is an ordinary event, attributed to the operating-system user on this host.
func (m *Main) tokens(ctx context.Context, args []string) error {
	const usage = "usage: vexil tokens create --scope read|write|admin [--name NAME] [--project KEY] [flags] | list [flags] | revoke ID [--reason R] [flags]"
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	verb, args := args[0], args[1:]
	own := flag.NewFlagSet("vexil tokens "+verb, flag.ContinueOnError)
	own.SetOutput(m.Stderr)
	scope := own.String("scope", "", "read, write or admin")
	name := own.String("name", "", "what the token is for (default: created from the command line)")
	project := own.String("project", "", "restrict the token to this project (default: every project)")
	reason := own.String("reason", "", "why, recorded in the audit log")
	secretOnly := own.Bool("secret-only", false, "print only the token's secret, for TOKEN=$(vexil tokens create ...)")
	var id string
	if verb == "revoke" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return fmt.Errorf("%s", usage)
		}
		id, args = args[0], args[1:]
	}
	p, err := m.openFor(ctx, "vexil tokens "+verb, own, args, []string{"scope", "name", "project", "reason"}, []string{"secret-only"})
	if err != nil {
		return err
	}
	defer p.Close()
	meta := app.Meta{Actor: cliActor(), Reason: *reason}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	switch verb {
	case "create":
		if *scope == "" {
			return fmt.Errorf("tokens create: --scope is required (read, write or admin)")
		}
		if *name == "" {
			*name = "created by " + meta.Actor
		}
		if meta.Reason == "" {
			meta.Reason = "vexil tokens create"
		}
		issued, err := p.App.Commands.IssueToken(ctx, meta, app.IssueToken{Name: *name, Scope: *scope, Project: *project})
		if err != nil {
			return err
		}
		if *secretOnly {
			_, err := fmt.Fprintln(m.Stdout, issued.Secret)
			return err
		}
		t := issued.Token
		return enc.Encode(map[string]any{"id": t.ID, "name": t.Name, "scope": t.Scope, "project": t.Project, "token": issued.Secret})
	case "list":
		tokens, err := p.App.Queries.ListTokens(ctx)
		if err != nil {
			return fmt.Errorf("tokens list: %w", err)
		}
		out := []map[string]any{}
		for _, t := range tokens {
			out = append(out, map[string]any{"id": t.ID, "name": t.Name, "scope": t.Scope, "project": t.Project,
				"revoked": t.Revoked, "created_at": t.CreatedAt})
		}
		return enc.Encode(out)
	case "revoke":
		t, err := p.App.Commands.RevokeToken(ctx, meta, app.RevokeToken{ID: id})
		if err != nil {
			return err
		}
		return enc.Encode(map[string]any{"id": t.ID, "name": t.Name, "revoked": t.Revoked})
	}
	return fmt.Errorf("unknown tokens command %q; %s", verb, usage)
}

// openFor parses a subcommand's own flags (the valued and boolean names given) out of args into
// own, the configuration from the rest, and opens the platform the command works on; the caller
// closes it.
func (m *Main) openFor(ctx context.Context, command string, own *flag.FlagSet, args, valued, boolean []string) (*Platform, error) {
	ownArgs, rest := splitOwnFlags(args, valued, boolean)
	if err := own.Parse(ownArgs); err != nil {
		return nil, err
	}
	cfg, err := config.Parse(command, rest, m.Lookup)
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg, m.logger(cfg))
}

// splitOwnFlags separates a command's own flags from the configuration flags: valued ones take
// the next argument unless written --name=value; boolean ones never do.
func splitOwnFlags(args, valued, boolean []string) (own, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		n, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case !strings.HasPrefix(a, "-"):
			rest = append(rest, a)
		case slices.Contains(boolean, n):
			own = append(own, a)
		case slices.Contains(valued, n):
			own = append(own, a)
			if !hasValue && i+1 < len(args) {
				own = append(own, args[i+1])
				i++
			}
		default:
			rest = append(rest, a)
		}
	}
	return own, rest
}

// cliActor names the person at the command line in the audit log: cli:<user>@<host>.
func cliActor() string {
	who := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		who = u.Username
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return "cli:" + who + "@" + host
}
