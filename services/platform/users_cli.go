package platform

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vexil-flags/vexil/services/app/identity"
)

// users is `vexil users create|list|revoke-sessions`: the first-run path to the web console (the
// first admin), and recovery, by talking to the database directly, like `vexil tokens`.
func (m *Main) users(ctx context.Context, args []string) error {
	const usage = "usage: vexil users create --email E --name N [--admin] [--project P --role viewer|editor|admin] [flags] | list [flags] | revoke-sessions EMAIL [flags]"
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	verb, args := args[0], args[1:]
	own := flag.NewFlagSet("vexil users "+verb, flag.ContinueOnError)
	own.SetOutput(m.Stderr)
	email := own.String("email", "", "the person's email, with which they sign in")
	name := own.String("name", "", "the person's display name, shown in the audit log")
	admin := own.Bool("admin", false, "an instance admin: admin of every project, manages members and tokens")
	project := own.String("project", "", "give the person a role in this project")
	role := own.String("role", "", "viewer, editor or admin (with --project)")
	var target string
	if verb == "revoke-sessions" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return fmt.Errorf("%s", usage)
		}
		target, args = args[0], args[1:]
	}
	p, err := m.openFor(ctx, "vexil users "+verb, own, args, []string{"email", "name", "project", "role"}, []string{"admin"})
	if err != nil {
		return err
	}
	defer p.Close()
	people, err := identity.NewStore(p.Pool)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	switch verb {
	case "create":
		if *email == "" || *name == "" {
			return fmt.Errorf("users create: --email and --name are required; %s", usage)
		}
		if (*project == "") != (*role == "") {
			return fmt.Errorf("users create: --project and --role go together")
		}
		password, err := m.password()
		if err != nil {
			return err
		}
		u, err := people.CreateUser(ctx, identity.NewUser{Email: *email, DisplayName: *name, Password: password, InstanceAdmin: *admin, CreatedBy: cliActor()})
		if err != nil {
			return fmt.Errorf("users create: %w", err)
		}
		if *project != "" {
			if err := people.SetRole(ctx, u.ID, *project, *role, cliActor()); err != nil {
				return fmt.Errorf("users create: %w", err)
			}
		}
		return enc.Encode(u)
	case "list":
		us, err := people.Users(ctx)
		if err != nil {
			return err
		}
		if us == nil {
			us = []identity.User{}
		}
		return enc.Encode(us)
	case "revoke-sessions":
		u, err := people.UserByEmail(ctx, target)
		if err != nil {
			return err
		}
		n, err := people.RevokeSessions(ctx, u.ID, cliActor())
		if err != nil {
			return err
		}
		return enc.Encode(map[string]any{"email": u.Email, "revoked_sessions": n})
	}
	return fmt.Errorf("unknown users command %q; %s", verb, usage)
}

// password reads the new person's password from VEXIL_USER_PASSWORD, else the first line of
// standard input: never from a flag, which other users of the host could read in the process list.
func (m *Main) password() (string, error) {
	if pw, ok := m.Lookup("VEXIL_USER_PASSWORD"); ok && pw != "" {
		return pw, nil
	}
	var in io.Reader = os.Stdin
	if m.Stdin != nil {
		in = m.Stdin
	}
	fmt.Fprintf(m.Stderr, "Password (at least %d characters): ", identity.MinPasswordLength)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("users create: no password: set VEXIL_USER_PASSWORD or type it on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
