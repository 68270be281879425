package domain_test

import (
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

func TestCreateProject(t *testing.T) {
	prod := domain.NewEnvironment{Key: "production", Name: "Production", Color: "#d32f2f"}
	stag := domain.NewEnvironment{Key: "staging", Name: "Staging"}
	tests := []struct {
		name        string
		key, pname  string
		description string
		envs        []domain.NewEnvironment
		keygen      func(string) string
		noKeygen    bool
		then        []domain.Event
		code, field string
	}{
		{name: "with environments", key: "acme", pname: "Acme", description: "shop",
			envs: []domain.NewEnvironment{prod, stag},
			then: []domain.Event{
				&domain.ProjectCreated{Key: "acme", Name: "Acme", Description: "shop"},
				&domain.EnvironmentCreated{Key: "production", Name: "Production", Color: "#d32f2f",
					ClientKey: "client-0000000000000001", ServerKey: "server-0000000000000002"},
				&domain.EnvironmentCreated{Key: "staging", Name: "Staging",
					ClientKey: "client-0000000000000003", ServerKey: "server-0000000000000004"},
			}},
		{name: "without environments", key: "acme", pname: "Acme",
			then: []domain.Event{&domain.ProjectCreated{Key: "acme", Name: "Acme"}}},
		{name: "invalid key", key: "-acme", pname: "Acme", code: domain.EInvalid, field: "key"},
		{name: "key with slash", key: "ac/me", pname: "Acme", code: domain.EInvalid, field: "key"},
		{name: "missing name", key: "acme", pname: "  ", code: domain.EInvalid, field: "name"},
		{name: "name too long", key: "acme", pname: strings.Repeat("n", 201), code: domain.EInvalid, field: "name"},
		{name: "NUL in the name", key: "acme", pname: "Ac\x00me", code: domain.EInvalid, field: "name"},
		{name: "NUL in the description", key: "acme", pname: "Acme", description: "\x00", code: domain.EInvalid, field: "description"},
		{name: "description too long", key: "acme", pname: "Acme", description: strings.Repeat("d", 2001),
			code: domain.EInvalid, field: "description"},
		{name: "invalid environment key", key: "acme", pname: "Acme",
			envs: []domain.NewEnvironment{prod, {Key: "st aging", Name: "Staging"}},
			code: domain.EInvalid, field: "environments[1].key"},
		{name: "duplicate environment", key: "acme", pname: "Acme",
			envs: []domain.NewEnvironment{prod, prod}, code: domain.EConflict, field: "environments[1].key"},
		{name: "environment without name", key: "acme", pname: "Acme",
			envs: []domain.NewEnvironment{{Key: "production"}}, code: domain.EInvalid, field: "environments[0].name"},
		{name: "environment color too long", key: "acme", pname: "Acme",
			envs:  []domain.NewEnvironment{{Key: "production", Name: "P", Color: strings.Repeat("c", 33)}},
			code:  domain.EInvalid,
			field: "environments[0].color"},
		{name: "too many environments", key: "acme", pname: "Acme",
			envs: make([]domain.NewEnvironment, domain.MaxEnvironments+1), code: domain.EInvalid, field: "environments"},
		{name: "no key generator", key: "acme", pname: "Acme", envs: []domain.NewEnvironment{prod},
			noKeygen: true, code: domain.EInternal},
		{name: "key generator returns short keys", key: "acme", pname: "Acme", envs: []domain.NewEnvironment{prod},
			keygen: func(string) string { return "k" }, code: domain.EInternal},
		{name: "key generator repeats itself", key: "acme", pname: "Acme", envs: []domain.NewEnvironment{prod},
			keygen: func(string) string { return "same-key-every-time" }, code: domain.EInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kg := tc.keygen
			if kg == nil && !tc.noKeygen {
				kg = keygen()
			}
			got, err := domain.CreateProject(tc.key, tc.pname, tc.description, tc.envs, kg)
			then(t, got, err, tc.then, tc.code, tc.field)
		})
	}
}

// acmeHistory is the stream of project acme with production and staging.
func acmeHistory() []domain.Event {
	return []domain.Event{
		&domain.ProjectCreated{Key: "acme", Name: "Acme"},
		&domain.EnvironmentCreated{Key: "production", Name: "Production", ClientKey: "client-aaaaaaaaaaaaaaaa", ServerKey: "server-aaaaaaaaaaaaaaaa"},
		&domain.EnvironmentCreated{Key: "staging", Name: "Staging", ClientKey: "client-bbbbbbbbbbbbbbbb", ServerKey: "server-bbbbbbbbbbbbbbbb"},
	}
}

func TestProjectCommands(t *testing.T) {
	tests := []struct {
		name        string
		given       []domain.Event
		when        func(p *domain.Project) ([]domain.Event, error)
		then        []domain.Event
		code, field string
	}{
		{name: "update", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) { return p.UpdateProject("Acme Inc", "the shop") },
			then: []domain.Event{&domain.ProjectUpdated{Name: "Acme Inc", Description: "the shop"}}},
		{name: "update to the same is a no-op", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) { return p.UpdateProject("Acme", "") }},
		{name: "update without name", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) { return p.UpdateProject("", "x") },
			code: domain.EInvalid, field: "name"},
		{name: "update description too long", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.UpdateProject("Acme", strings.Repeat("d", 2001))
			},
			code: domain.EInvalid, field: "description"},
		{name: "update a missing project",
			when: func(p *domain.Project) ([]domain.Event, error) { return p.UpdateProject("Acme", "") },
			code: domain.ENotFound},
		{name: "add environment", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.AddEnvironment(domain.NewEnvironment{Key: "qa", Name: "QA", Color: "#00f"}, keygen())
			},
			then: []domain.Event{&domain.EnvironmentCreated{Key: "qa", Name: "QA", Color: "#00f",
				ClientKey: "client-0000000000000001", ServerKey: "server-0000000000000002"}}},
		{name: "add existing environment", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.AddEnvironment(domain.NewEnvironment{Key: "staging", Name: "S"}, keygen())
			},
			code: domain.EConflict, field: "key"},
		{name: "add environment with invalid key", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.AddEnvironment(domain.NewEnvironment{Key: "", Name: "S"}, keygen())
			},
			code: domain.EInvalid, field: "key"},
		{name: "add environment whose generated key is in use", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.AddEnvironment(domain.NewEnvironment{Key: "qa", Name: "QA"},
					func(string) string { return "server-aaaaaaaaaaaaaaaa" })
			},
			code: domain.EInternal},
		{name: "update environment", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.UpdateEnvironment("staging", "Pre-production", "#ffa000")
			},
			then: []domain.Event{&domain.EnvironmentUpdated{Key: "staging", Name: "Pre-production", Color: "#ffa000"}}},
		{name: "update environment to the same is a no-op", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) { return p.UpdateEnvironment("staging", "Staging", "") }},
		{name: "update unknown environment", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) { return p.UpdateEnvironment("qa", "QA", "") },
			code: domain.ENotFound, field: "key"},
		{name: "turn server-side exposures off", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.UpdateEnvironmentSettings("staging", domain.EnvironmentSettings{Name: "Staging"})
			},
			then: []domain.Event{&domain.EnvironmentUpdated{Key: "staging", Name: "Staging", ServerExposures: new(false)}}},
		{name: "server-side exposures already on is a no-op", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.UpdateEnvironmentSettings("staging", domain.EnvironmentSettings{Name: "Staging", ServerExposures: true})
			}},
		{name: "renaming keeps server-side exposures off",
			given: append(acmeHistory(), &domain.EnvironmentUpdated{Key: "staging", Name: "Staging", ServerExposures: new(false)}),
			when:  func(p *domain.Project) ([]domain.Event, error) { return p.UpdateEnvironment("staging", "QA", "") },
			then:  []domain.Event{&domain.EnvironmentUpdated{Key: "staging", Name: "QA"}}},
		{name: "update environment without name", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) { return p.UpdateEnvironment("staging", "", "") },
			code: domain.EInvalid, field: "name"},
		{name: "rotate client key", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.RotateSDKKey("production", domain.ClientSideKey, keygen())
			},
			then: []domain.Event{&domain.SDKKeyRotated{Environment: "production", Kind: "client",
				Key: "client-0000000000000001", PreviousKey: "client-aaaaaaaaaaaaaaaa"}}},
		{name: "rotate server key", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.RotateSDKKey("staging", domain.ServerSideKey, keygen())
			},
			then: []domain.Event{&domain.SDKKeyRotated{Environment: "staging", Kind: "server",
				Key: "server-0000000000000001", PreviousKey: "server-bbbbbbbbbbbbbbbb"}}},
		{name: "rotate key of unknown environment", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) {
				return p.RotateSDKKey("qa", domain.ServerSideKey, keygen())
			},
			code: domain.ENotFound, field: "environment"},
		{name: "rotate key of unknown kind", given: acmeHistory(),
			when: func(p *domain.Project) ([]domain.Event, error) { return p.RotateSDKKey("staging", "mobile", keygen()) },
			code: domain.EInvalid, field: "kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p *domain.Project
			if len(tc.given) > 0 {
				var err error
				if p, err = fold[domain.Project](record(t, "project/acme", tc.given...)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := tc.when(p)
			then(t, got, err, tc.then, tc.code, tc.field)
			if p != nil && p.Version != int64(len(tc.given)) {
				t.Fatalf("command mutated the project (version %d)", p.Version)
			}
		})
	}
}

func TestAddEnvironmentLimit(t *testing.T) {
	p := &domain.Project{}
	p.Apply(&domain.ProjectCreated{Key: "acme", Name: "Acme"})
	kg := keygen()
	for i := 0; i < domain.MaxEnvironments; i++ {
		evs, err := p.AddEnvironment(domain.NewEnvironment{Key: strs("env", domain.MaxEnvironments)[i], Name: "E"}, kg)
		if err != nil {
			t.Fatalf("environment %d: %v", i, err)
		}
		p.Apply(evs[0])
	}
	_, err := p.AddEnvironment(domain.NewEnvironment{Key: "one-more", Name: "E"}, kg)
	then(t, nil, err, nil, domain.EInvalid, "")
}

func TestFoldProject(t *testing.T) {
	history := append(acmeHistory(),
		&domain.ProjectUpdated{Name: "Acme Inc", Description: "shop"},
		&domain.EnvironmentUpdated{Key: "staging", Name: "Pre-production", Color: "#ffa000"},
		&domain.SDKKeyRotated{Environment: "production", Kind: "server", Key: "server-cccccccccccccccc", PreviousKey: "server-aaaaaaaaaaaaaaaa"},
		&domain.EnvironmentCreated{Key: "qa", Name: "QA", ClientKey: "client-dddddddddddddddd", ServerKey: "server-dddddddddddddddd"},
	)
	p, err := fold[domain.Project](record(t, "project/acme", history...))
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != "acme" || p.Name != "Acme Inc" || p.Description != "shop" {
		t.Errorf("identity: %+v", p)
	}
	if p.Version != 7 || !p.CreatedAt.Equal(t0) || !p.UpdatedAt.Equal(t0.Add(6*60e9)) {
		t.Errorf("version %d created %v updated %v", p.Version, p.CreatedAt, p.UpdatedAt)
	}
	if got := strings.Join(p.EnvironmentOrder, ","); got != "production,staging,qa" {
		t.Errorf("environment order %s", got)
	}
	prod, stag, qa := p.Environments["production"], p.Environments["staging"], p.Environment("qa")
	if prod.ServerKey != "server-cccccccccccccccc" || prod.ClientKey != "client-aaaaaaaaaaaaaaaa" {
		t.Errorf("production keys: %+v", prod)
	}
	if stag.Name != "Pre-production" || stag.Color != "#ffa000" || !stag.CreatedAt.Equal(t0.Add(2*60e9)) {
		t.Errorf("staging: %+v", stag)
	}
	if qa == nil || !qa.CreatedAt.Equal(t0.Add(6*60e9)) {
		t.Errorf("qa: %+v", qa)
	}

	// Previewing the result of a command with Apply gives the same state, timestamps aside.
	q, _ := fold[domain.Project](record(t, "project/acme", acmeHistory()...))
	evs, err := q.RotateSDKKey("production", "client", keygen())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		q.Apply(e)
	}
	if q.Version != 4 || q.Environments["production"].ClientKey != "client-0000000000000001" {
		t.Errorf("preview: version %d, %+v", q.Version, q.Environments["production"])
	}
}

func TestFoldProjectRejectsBrokenStreams(t *testing.T) {
	if p, err := fold[domain.Project](nil); p != nil || err != nil {
		t.Fatalf("empty stream: %v, %v", p, err)
	}
	good := record(t, "project/acme", acmeHistory()...)
	undecodable := append(append([]domain.RecordedEvent{}, good...), domain.RecordedEvent{Version: 4, Type: "ProjectUpdated", Data: []byte(`{"name":`)})
	unknownType := append(append([]domain.RecordedEvent{}, good...), domain.RecordedEvent{Version: 4, Type: "ProjectExploded", Data: []byte(`{}`)})
	tests := map[string][]domain.RecordedEvent{
		"undecodable event":          undecodable,
		"unknown event type":         unknownType,
		"no creation event":          good[1:],
		"created twice":              append(append([]domain.RecordedEvent{}, good...), good[0]),
		"event of another aggregate": record(t, "project/acme", &domain.ProjectCreated{Key: "acme", Name: "A"}, &domain.FlagArchived{}),
	}
	for name, stream := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := fold[domain.Project](stream)
			if err == nil || p != nil {
				t.Fatalf("want an error, got %+v", p)
			}
		})
	}
}
