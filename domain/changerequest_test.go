package domain_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// by records events as the given actors, one each (the change request folds approvals and
// comments from the events' actors).
func by(t *testing.T, stream string, steps ...any) []domain.RecordedEvent {
	t.Helper()
	var out []domain.RecordedEvent
	for i := 0; i+1 < len(steps); i += 2 {
		e := steps[i+1].(domain.Event)
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, domain.RecordedEvent{StreamID: stream, Version: int64(len(out) + 1), Type: e.EventType(), Data: data,
			Metadata: domain.Metadata{Actor: steps[i].(string)}, OccurredAt: t0.Add(time.Duration(len(out)) * time.Minute)})
	}
	return out
}

func foldRequest(t *testing.T, events []domain.RecordedEvent) *domain.ChangeRequest {
	t.Helper()
	r := &domain.ChangeRequest{}
	for _, e := range events {
		if err := r.ApplyRecorded(e); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func TestChangeRequestReview(t *testing.T) {
	in := domain.NewChangeRequest{Project: "shop", ID: "cr1", Environment: "production", Flag: "checkout",
		Target: domain.FlagStream("shop", "checkout"), BaseVersion: 4, Author: "user:ada",
		Change:     domain.ProposedChange{Command: "ToggleFlag", Payload: json.RawMessage(`{"On":true}`)},
		Protection: domain.Protection{RequiredApprovals: 2, ApproverRole: domain.ApproverEditor}}
	opened, err := domain.OpenChangeRequest(in, t0)
	if err != nil {
		t.Fatal(err)
	}
	stream := domain.ChangeRequestStream("shop", "cr1")
	r := foldRequest(t, by(t, stream, "user:ada", opened[0]))
	ref := r.Ref()

	cases := []struct {
		name string
		do   func() ([]domain.Event, error)
		code string
	}{
		{"the author approves", func() ([]domain.Event, error) { return r.Approve("user:ada", "editor", "") }, domain.EForbidden},
		{"a viewer approves", func() ([]domain.Event, error) { return r.Approve("user:bo", "viewer", "") }, domain.EForbidden},
		{"the author rejects", func() ([]domain.Event, error) { return r.Reject("user:ada", "admin", "") }, domain.EForbidden},
		{"another person cancels", func() ([]domain.Event, error) { return r.Cancel("user:bo") }, domain.EForbidden},
		{"an empty comment", func() ([]domain.Event, error) { return r.Comment("user:bo", "") }, domain.EInvalid},
		{"apply before approval", func() ([]domain.Event, error) { return nil, r.CheckApplicable(4) }, domain.EConflict},
		{"a schedule in the past", func() ([]domain.Event, error) { return r.Schedule(t0.Add(-time.Hour), t0) }, domain.EInvalid},
	}
	for _, c := range cases {
		if _, err := c.do(); domain.ErrorCode(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}

	// Two approvals (the same person twice counts once) approve it; a moved flag needs a rebase,
	// which drops the approvals.
	ev1, _ := r.Approve("user:bo", "editor", "ok")
	r = foldRequest(t, by(t, stream, "user:ada", opened[0], "user:bo", ev1[0]))
	if again, err := r.Approve("user:bo", "editor", ""); err != nil || len(again) != 0 || r.Status != domain.RequestOpen {
		t.Fatalf("a second approval by the same person: %v %v, status %s", again, err, r.Status)
	}
	ev2, _ := r.Approve("user:cy", "admin", "")
	events := by(t, stream, "user:ada", opened[0], "user:bo", ev1[0], "user:cy", ev2[0])
	r = foldRequest(t, events)
	if r.Status != domain.RequestApproved || len(r.Approvals) != 2 || r.CheckApplicable(4) != nil {
		t.Fatalf("after two approvals: %+v", r)
	}
	if err := r.CheckApplicable(5); domain.ErrorCode(err) != domain.EConflict {
		t.Fatalf("a moved flag: %v", err)
	}
	rebased, _ := r.Rebase(5, json.RawMessage(`{"on":false}`), json.RawMessage(`{"on":true}`))
	r = foldRequest(t, append(events, by(t, stream, "user:ada", rebased[0])[0]))
	if r.Status != domain.RequestOpen || len(r.Approvals) != 0 || r.BaseVersion != 5 || r.Rebased != 1 || r.Ref() != ref {
		t.Fatalf("after a rebase: %+v", r)
	}
	// Each event names project, environment, flag and request.
	var probe domain.ChangeRequestRef
	_ = json.Unmarshal(mustJSON(t, rebased[0]), &probe)
	if probe != ref {
		t.Fatalf("event ref %+v, want %+v", probe, ref)
	}
}

func TestEnvironmentProtection(t *testing.T) {
	p := &domain.Project{}
	for _, r := range record(t, domain.ProjectStream("shop"), mustCreateProject(t)...) {
		if err := p.ApplyRecorded(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.SetEnvironmentProtection("nope", &domain.Protection{}); domain.ErrorCode(err) != domain.ENotFound {
		t.Fatalf("unknown environment: %v", err)
	}
	for _, bad := range []domain.Protection{{RequiredApprovals: 11}, {RequiredApprovals: -1}, {ApproverRole: "viewer"}} {
		if _, err := p.SetEnvironmentProtection("production", &bad); domain.ErrorCode(err) != domain.EInvalid {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
	ev, err := p.SetEnvironmentProtection("production", &domain.Protection{})
	if err != nil || len(ev) != 1 {
		t.Fatal(ev, err)
	}
	p.Apply(ev[0])
	if got := p.Protected("production"); got == nil || *got != (domain.Protection{RequiredApprovals: 1, ApproverRole: "editor"}) {
		t.Fatalf("defaults: %+v", got)
	}
	if again, _ := p.SetEnvironmentProtection("production", &domain.Protection{RequiredApprovals: 1}); len(again) != 0 {
		t.Fatal("the same protection again is not a no-op")
	}
	lift, _ := p.SetEnvironmentProtection("production", nil)
	p.Apply(lift[0])
	if p.Protected("production") != nil {
		t.Fatal("protection not lifted")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustCreateProject(t *testing.T) []domain.Event {
	t.Helper()
	ev, err := domain.CreateProject("shop", "Shop", "", []domain.NewEnvironment{{Key: "development", Name: "Development"},
		{Key: "production", Name: "Production"}}, keygen())
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
