package identity_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/testkit"
)

// twoReplicas opens two stores on one database, each with its own pool, as two console replicas.
func twoReplicas(t *testing.T) (*identity.Store, *identity.Store) {
	t.Helper()
	url := pgtest.NewMigratedDatabase(t)
	var stores [2]*identity.Store
	for i := range stores {
		pool, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		if stores[i], err = identity.NewStore(pool); err != nil {
			t.Fatal(err)
		}
	}
	return stores[0], stores[1]
}

// The sign-in budget is shared: 5 attempts at once in all, whichever replica they reach, also
// when they arrive at the same moment; other keys have their own budget.
func TestLoginLimiterIsSharedByReplicas(t *testing.T) {
	t.Parallel()
	a, b := twoReplicas(t)
	la, lb := a.NewLoginLimiter(5, time.Hour), b.NewLoginLimiter(5, time.Hour)
	ctx := context.Background()
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			l := la
			if i%2 == 1 {
				l = lb
			}
			_, ok, err := l.Allow(ctx, "email:ada@example.com")
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 5 {
		t.Fatalf("%d of 12 attempts on two replicas allowed, want 5 in all", allowed)
	}
	wait, ok, err := lb.Allow(ctx, "email:ada@example.com")
	if err != nil || ok || wait < 59*time.Minute || wait > time.Hour {
		t.Fatalf("after the burst: ok %v, wait %v, err %v; want refused with about an hour to wait", ok, wait, err)
	}
	if _, ok, err := la.Allow(ctx, "email:bob@example.com"); err != nil || !ok {
		t.Fatalf("another email: ok %v, err %v", ok, err)
	}
}

// Attempts come back at the configured rate.
func TestLoginLimiterRefills(t *testing.T) {
	t.Parallel()
	a, _ := twoReplicas(t)
	l := a.NewLoginLimiter(1, 200*time.Millisecond)
	ctx := context.Background()
	if _, ok, _ := l.Allow(ctx, "ip:192.0.2.1"); !ok {
		t.Fatal("first attempt refused")
	}
	if _, ok, _ := l.Allow(ctx, "ip:192.0.2.1"); ok {
		t.Fatal("second attempt at once allowed with a burst of 1")
	}
	testkit.WaitFor(t, 10*time.Second, "an attempt to come back at one per 200 ms", func() bool {
		_, ok, err := l.Allow(ctx, "ip:192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
}

// Account and membership changes are recorded with actor and time, in the transaction of the
// change; a project's audit shows its own changes and its members' accounts.
func TestAccountAudit(t *testing.T) {
	t.Parallel()
	s, _ := twoReplicas(t)
	ctx := context.Background()
	ada, err := s.CreateUser(ctx, identity.NewUser{Email: "ada@example.com", DisplayName: "Ada", Password: "correct horse battery", CreatedBy: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{identity.RoleViewer, identity.RoleViewer, identity.RoleEditor} {
		if err := s.SetRole(ctx, ada.ID, "shop", role, "user:u_admin"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetRole(ctx, ada.ID, "other", identity.RoleAdmin, "user:u_admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeSessions(ctx, ada.ID, "user:u_admin"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSignInRefused(ctx, "ada@example.com", "192.0.2.7", "unknown email or wrong password"); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.AccountAudit(ctx, identity.AccountQuery{Project: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ action, actor, before, after string }{
		{identity.ActionSessionsRevoked, "user:u_admin", "", "0 sessions"},
		{identity.ActionMemberRoleChange, "user:u_admin", "viewer", "editor"},
		{identity.ActionMemberAdded, "user:u_admin", "", "viewer"}, // the repeated viewer changed nothing
		{identity.ActionUserCreated, "cli", "", "ada@example.com (Ada)"},
	}
	if len(got) != len(want) {
		t.Fatalf("shop's account audit: %+v", got)
	}
	for i, w := range want {
		g := got[i]
		if g.Action != w.action || g.Actor != w.actor || g.Before != w.before || g.After != w.after || g.Subject != ada.Actor() || g.OccurredAt.IsZero() {
			t.Errorf("entry %d: %+v, want %+v", i, g, w)
		}
	}
	if err := s.SetRole(ctx, ada.ID, "shop", "", "user:u_admin"); err != nil {
		t.Fatal(err)
	}
	all, _, err := s.AccountAudit(ctx, identity.AccountQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if all[0].Action != identity.ActionMemberRemoved || all[0].Before != "editor" || all[1].Action != identity.ActionSignInRefused || all[1].Client != "192.0.2.7" {
		t.Fatalf("instance audit: %+v", all)
	}
}

// A password change needs the current password, ends the person's other sessions (not this one)
// and is audited.
func TestChangePassword(t *testing.T) {
	t.Parallel()
	s, _ := twoReplicas(t)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, identity.NewUser{Email: "ada@example.com", DisplayName: "Ada", Password: "correct horse battery", CreatedBy: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	policy := identity.DefaultSessionPolicy
	here, sess, err := s.StartSession(ctx, u, policy, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	there, _, err := s.StartSession(ctx, u, policy, "phone")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ChangePassword(ctx, sess, "wrong password!", "a new long password"); domainField(err) != "current_password" {
		t.Fatalf("a wrong current password: %v", err)
	}
	if err := s.ChangePassword(ctx, sess, "correct horse battery", "short"); domainField(err) != "password" {
		t.Fatalf("a short new password: %v", err)
	}
	if err := s.ChangePassword(ctx, sess, "correct horse battery", "a new long password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "ada@example.com", "a new long password"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if _, err := s.Authenticate(ctx, "ada@example.com", "correct horse battery"); err == nil {
		t.Fatal("the old password still works")
	}
	if _, err := s.LookupSession(ctx, here, policy); err != nil {
		t.Fatalf("the session that changed it ended: %v", err)
	}
	if _, err := s.LookupSession(ctx, there, policy); err == nil {
		t.Fatal("another session survived the password change")
	}
	all, _, err := s.AccountAudit(ctx, identity.AccountQuery{Limit: 1})
	if err != nil || all[0].Action != identity.ActionPasswordChanged || all[0].Actor != u.Actor() || all[0].After != "1 other sessions ended" {
		t.Fatalf("audit: %+v %v", all, err)
	}
}

func domainField(err error) string {
	var de *domain.Error
	if errors.As(err, &de) {
		return de.Field
	}
	return ""
}
