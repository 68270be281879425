package domain_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

// secretHash is what the caller computes from a presented secret.
func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// killSwitch is a trigger turning flag color off in production.
func killSwitch() *domain.TriggerCreated {
	return &domain.TriggerCreated{Project: project, ID: "tr1", Name: "Pager kill switch", Flag: "color",
		Environment: "production", Action: domain.TriggerOff, SecretHash: secretHash("s3cret")}
}

func foldTrigger(tb testing.TB, events ...domain.Event) *domain.Trigger {
	tb.Helper()
	if len(events) == 0 {
		return nil
	}
	tr, err := domain.FoldTrigger(record(tb, domain.TriggerStream(project, "tr1"), events...))
	if err != nil {
		tb.Fatalf("fold trigger: %v", err)
	}
	return tr
}

func TestCreateTrigger(t *testing.T) {
	in := func(mod func(*domain.NewTrigger)) domain.NewTrigger {
		tr := domain.NewTrigger{Project: project, ID: "tr1", Name: "Pager kill switch", Flag: "color",
			Environment: "production", Action: domain.TriggerOff, SecretHash: secretHash("s3cret")}
		if mod != nil {
			mod(&tr)
		}
		return tr
	}
	tests := []struct {
		name        string
		in          domain.NewTrigger
		then        []domain.Event
		code, field string
	}{
		{name: "off", in: in(nil), then: []domain.Event{killSwitch()}},
		{name: "on", in: in(func(tr *domain.NewTrigger) { tr.Action = domain.TriggerOn }),
			then: []domain.Event{func() domain.Event { c := killSwitch(); c.Action = domain.TriggerOn; return c }()}},
		{name: "invalid project", in: in(func(tr *domain.NewTrigger) { tr.Project = "" }), code: domain.EInvalid, field: "project"},
		{name: "invalid id", in: in(func(tr *domain.NewTrigger) { tr.ID = "a b" }), code: domain.EInvalid, field: "id"},
		{name: "missing name", in: in(func(tr *domain.NewTrigger) { tr.Name = "" }), code: domain.EInvalid, field: "name"},
		{name: "unknown flag", in: in(func(tr *domain.NewTrigger) { tr.Flag = "ghost" }), code: domain.EInvalid, field: "flag"},
		{name: "archived flag", in: in(func(tr *domain.NewTrigger) { tr.Flag = "retired" }), code: domain.EInvalid, field: "flag"},
		{name: "unknown environment", in: in(func(tr *domain.NewTrigger) { tr.Environment = "qa" }), code: domain.EInvalid, field: "environment"},
		{name: "unknown action", in: in(func(tr *domain.NewTrigger) { tr.Action = "toggle" }), code: domain.EInvalid, field: "action"},
		{name: "plain secret instead of a hash", in: in(func(tr *domain.NewTrigger) { tr.SecretHash = "s3cret" }),
			code: domain.EInvalid, field: "secret_hash"},
		{name: "uppercase hash", in: in(func(tr *domain.NewTrigger) { tr.SecretHash = strings.ToUpper(secretHash("s3cret")) }),
			code: domain.EInvalid, field: "secret_hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.CreateTrigger(tc.in, catalog())
			then(t, got, err, tc.then, tc.code, tc.field)
		})
	}
}

func TestTriggerCommands(t *testing.T) {
	created := []domain.Event{killSwitch()}
	disabled := []domain.Event{killSwitch(), &domain.TriggerDisabled{}}
	deleted := []domain.Event{killSwitch(), &domain.TriggerDeleted{}}
	rotate := func(h string) func(tr *domain.Trigger) ([]domain.Event, error) {
		return func(tr *domain.Trigger) ([]domain.Event, error) { return tr.RotateSecret(h) }
	}
	enable := func(tr *domain.Trigger) ([]domain.Event, error) { return tr.Enable() }
	disable := func(tr *domain.Trigger) ([]domain.Event, error) { return tr.Disable() }
	del := func(tr *domain.Trigger) ([]domain.Event, error) { return tr.Delete() }
	tests := []struct {
		name        string
		given       []domain.Event
		when        func(tr *domain.Trigger) ([]domain.Event, error)
		then        []domain.Event
		code, field string
	}{
		{name: "rotate", given: created, when: rotate(secretHash("new")), then: []domain.Event{&domain.TriggerSecretRotated{SecretHash: secretHash("new")}}},
		{name: "rotate a disabled trigger", given: disabled, when: rotate(secretHash("new")),
			then: []domain.Event{&domain.TriggerSecretRotated{SecretHash: secretHash("new")}}},
		{name: "rotate to the same secret is a no-op", given: created, when: rotate(secretHash("s3cret"))},
		{name: "rotate to an invalid hash", given: created, when: rotate("nope"), code: domain.EInvalid, field: "secret_hash"},
		{name: "rotate a deleted trigger", given: deleted, when: rotate(secretHash("new")), code: domain.ENotFound},
		{name: "disable", given: created, when: disable, then: []domain.Event{&domain.TriggerDisabled{}}},
		{name: "disable a disabled trigger is a no-op", given: disabled, when: disable},
		{name: "disable a deleted trigger", given: deleted, when: disable, code: domain.ENotFound},
		{name: "enable", given: disabled, when: enable, then: []domain.Event{&domain.TriggerEnabled{}}},
		{name: "enable an enabled trigger is a no-op", given: created, when: enable},
		{name: "enable a deleted trigger", given: deleted, when: enable, code: domain.ENotFound},
		{name: "delete", given: created, when: del, then: []domain.Event{&domain.TriggerDeleted{}}},
		{name: "delete a disabled trigger", given: disabled, when: del, then: []domain.Event{&domain.TriggerDeleted{}}},
		{name: "delete twice", given: deleted, when: del, code: domain.ENotFound},
		{name: "delete a missing trigger", when: del, code: domain.ENotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := foldTrigger(t, tc.given...)
			before := jsonOf(t, tr)
			got, err := tc.when(tr)
			then(t, got, err, tc.then, tc.code, tc.field)
			if jsonOf(t, tr) != before {
				t.Fatalf("the command mutated the trigger")
			}
		})
	}
}

func TestTriggerVerify(t *testing.T) {
	tr := foldTrigger(t, killSwitch())
	for h, want := range map[string]bool{
		secretHash("s3cret"):                   true,
		secretHash("s3cret "):                  false,
		secretHash("other"):                    false,
		strings.ToUpper(secretHash("s3cret")):  false,
		secretHash("s3cret")[:63]:              false,
		secretHash("s3cret") + "0":             false,
		"":                                     false,
		"s3cret":                               false,
		strings.Repeat("0", 64):                false,
		" " + secretHash("s3cret")[1:]:         false,
		secretHash("s3cret")[:32] + "00000000": false,
	} {
		if got := tr.Verify(h); got != want {
			t.Errorf("Verify(%q) = %v, want %v", h, got, want)
		}
	}
	rotated := foldTrigger(t, killSwitch(), &domain.TriggerSecretRotated{SecretHash: secretHash("new")})
	if rotated.Verify(secretHash("s3cret")) || !rotated.Verify(secretHash("new")) {
		t.Errorf("rotation: the old secret works or the new one does not")
	}
	if foldTrigger(t, killSwitch(), &domain.TriggerDeleted{}).Verify(secretHash("s3cret")) {
		t.Errorf("a deleted trigger verifies")
	}
	if !foldTrigger(t, killSwitch(), &domain.TriggerDisabled{}).Verify(secretHash("s3cret")) {
		t.Errorf("Verify checks enablement (Fire does)")
	}
	var none *domain.Trigger
	if none.Verify("") || (&domain.Trigger{}).Verify("") {
		t.Errorf("a missing trigger verifies")
	}
}

func TestTriggerFire(t *testing.T) {
	on := []domain.Event{colorCreated(), &domain.FlagToggled{Environment: "production", On: true}}
	fired := func(changed bool, addr string) *domain.TriggerFired {
		return &domain.TriggerFired{Environment: "production", At: at(5), RemoteAddr: addr, Changed: changed}
	}
	tests := []struct {
		name          string
		given         []domain.Event // the trigger's history; killSwitch() when nil
		flag          []domain.Event // on when nil
		secret        string         // s3cret when empty
		addr          string
		flagEvents    []domain.Event
		triggerEvents []domain.Event
		code          string
	}{
		{name: "turns the flag off", addr: "203.0.113.7:51234",
			flagEvents:    []domain.Event{&domain.FlagToggled{Environment: "production", On: false}},
			triggerEvents: []domain.Event{fired(true, "203.0.113.7:51234")}},
		{name: "a flag already off is still a recorded use", flag: []domain.Event{colorCreated()},
			triggerEvents: []domain.Event{fired(false, "")}},
		{name: "turns the flag on", given: []domain.Event{func() domain.Event { c := killSwitch(); c.Action = domain.TriggerOn; return c }()},
			flag:          []domain.Event{colorCreated()},
			flagEvents:    []domain.Event{&domain.FlagToggled{Environment: "production", On: true}},
			triggerEvents: []domain.Event{fired(true, "")}},
		{name: "a long or broken remote address is cut and cleaned", addr: "\xff" + strings.Repeat("a", 200),
			flagEvents:    []domain.Event{&domain.FlagToggled{Environment: "production", On: false}},
			triggerEvents: []domain.Event{fired(true, "?"+strings.Repeat("a", domain.MaxRemoteAddrLength-1))}},
		{name: "wrong secret", secret: "guess", code: domain.EUnauthorized},
		{name: "wrong secret on a disabled trigger", secret: "guess", given: []domain.Event{killSwitch(), &domain.TriggerDisabled{}},
			code: domain.EUnauthorized},
		{name: "disabled", given: []domain.Event{killSwitch(), &domain.TriggerDisabled{}}, code: domain.EConflict},
		{name: "deleted", given: []domain.Event{killSwitch(), &domain.TriggerDeleted{}}, code: domain.ENotFound},
		{name: "missing trigger", given: []domain.Event{}, code: domain.ENotFound},
		{name: "archived flag", flag: append(on, &domain.FlagArchived{}), code: domain.EConflict},
		{name: "missing flag", flag: []domain.Event{}, code: domain.ENotFound},
		{name: "another flag loaded", flag: []domain.Event{boolCreated("other")}, code: domain.EInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			given := tc.given
			if given == nil {
				given = []domain.Event{killSwitch()}
			}
			flag := tc.flag
			if flag == nil {
				flag = on
			}
			secret := tc.secret
			if secret == "" {
				secret = "s3cret"
			}
			tr, f := foldTrigger(t, given...), foldFlag(t, flag...)
			trBefore, fBefore := jsonOf(t, tr), jsonOf(t, f)
			fe, te, err := tr.Fire(secretHash(secret), tc.addr, f, catalog(), at(5))
			if jsonOf(t, tr) != trBefore || jsonOf(t, f) != fBefore {
				t.Fatalf("Fire mutated its inputs")
			}
			if tc.code != "" {
				wantError(t, err, tc.code, "", fe, te)
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			sameEvents(t, "flag events", fe, tc.flagEvents)
			sameEvents(t, "trigger events", te, tc.triggerEvents)
			applyAll(tr, te)
			if tr.Fired != 1 || !tr.LastFiredAt.Equal(at(5)) {
				t.Fatalf("after firing: %+v", tr)
			}
		})
	}
}

func TestFoldTrigger(t *testing.T) {
	tr, err := domain.FoldTrigger(record(t, domain.TriggerStream(project, "tr1"),
		killSwitch(),
		&domain.TriggerFired{Environment: "production", At: at(1), RemoteAddr: "198.51.100.1", Changed: true},
		&domain.TriggerSecretRotated{SecretHash: secretHash("new")},
		&domain.TriggerDisabled{},
		&domain.TriggerEnabled{},
		&domain.TriggerFired{Environment: "production", At: at(5), Changed: false},
	))
	if err != nil {
		t.Fatal(err)
	}
	want := &domain.Trigger{Project: project, ID: "tr1", Name: "Pager kill switch", Flag: "color", Environment: "production",
		Action: domain.TriggerOff, SecretHash: secretHash("new"), Enabled: true, LastFiredAt: at(5), Fired: 2, Version: 6,
		CreatedAt: t0, UpdatedAt: at(5)}
	if jsonOf(t, tr) != jsonOf(t, want) {
		t.Fatalf("got  %s\nwant %s", jsonOf(t, tr), jsonOf(t, want))
	}
	if tr, err := domain.FoldTrigger(nil); tr != nil || err != nil {
		t.Fatalf("empty stream: %v %v", tr, err)
	}
	for name, stream := range map[string][]domain.RecordedEvent{
		"no creation event":          record(t, "trigger/acme/tr1", &domain.TriggerEnabled{}),
		"created twice":              record(t, "trigger/acme/tr1", killSwitch(), killSwitch()),
		"event of another aggregate": record(t, "trigger/acme/tr1", killSwitch(), &domain.AutoOpsRuleEnabled{}),
	} {
		if _, err := domain.FoldTrigger(stream); err == nil {
			t.Errorf("%s: folded without error", name)
		}
	}
}
