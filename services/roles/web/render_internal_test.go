package web

import (
	"io"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/roles/webhooks"
)

// Every page renders with typical data, errors included: a template mistake fails here, not in
// front of a person.
func TestPagesRender(t *testing.T) {
	p, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	proj := &domain.Project{Key: "shop", Name: "Shop", Environments: map[string]*domain.Environment{
		"production": {Key: "production", Name: "Production"}, "development": {Key: "development", Name: "Development"}}}
	u := identity.User{ID: "u_1", DisplayName: "Ada"}
	fr := frame{Title: "T", User: &u, CSRF: "tok", Project: proj, Environment: "production", Role: "editor", CanEdit: true}
	flag := &domain.Flag{Key: "banner", Name: "Banner", Type: domain.FlagString, Variations: []domain.Variation{{Key: "a", Value: "A"}, {Key: "b", Value: "B"}},
		Environments: map[string]*domain.Targeting{"production": {On: true, OffVariation: "a", Default: domain.Serve{Variation: "a"},
			Prerequisites: []domain.Prerequisite{{Flag: "other", Variation: "on"}}, Targets: []domain.Target{{Variation: "b", Values: []string{"u1", "u2"}}},
			Rules: []domain.Rule{{ID: "rule-1", Clauses: []domain.Clause{{Attribute: "country", Operator: domain.OpIn, Values: []any{"FR", 3.0}}, {Operator: domain.OpInSegment, Values: []any{"beta"}}},
				Serve: domain.Serve{Split: &domain.Split{Variations: []domain.WeightedVariation{{Variation: "a", Weight: 10000}, {Variation: "b", Weight: 90000}}}}}}}}}
	fe := &fieldErrors{Field: "rules[0].serve.split.variations", Message: "weights must add up"}
	sw := []switchData{{Project: "shop", Flag: "banner", Environment: "production", EnvironmentName: "Production", On: true, CanEdit: true, Production: true, CSRF: "tok"}}
	cases := map[string]any{
		"login":    loginData{frame: frame{Title: "Sign in"}, Error: "no"},
		"error":    errorData{frame: fr, Status: 403, Message: "no"},
		"projects": projectsData{frame: fr},
		"flags":    flagsData{frame: fr, Flags: []flagRow{{Flag: flag, Switches: sw}}, PageEnvironments: sortedEnvironments(proj), Next: "x"},
		"newflag":  newFlagData{frame: fr, Err: &fieldErrors{Field: "key", Message: "bad"}},
		"flag":     flagData{frame: fr, Flag: flag, Switches: sw, Err: fe},
		"targeting": targetingData{frame: fr, Flag: flag, Env: proj.Environments["production"], Production: true, Draft: draftOf(*flag.Environments["production"]), Err: fe, Confirm: valueDiff(nil, flag), Conflict: &conflictData{Who: "Bo"}, Flags: []string{"other"},
			Segments: []*domain.Segment{{Key: "beta", Name: "Beta"}}},
		"audit": auditData{frame: fr, Entries: []auditRow{{Who: "Ada", Diff: jsonDiff([]byte(`{"on":false}`), []byte(`{"on":true}`))}}},
		"evaluate": evaluateData{frame: fr, Flag: flag, Env: "production", HasEvaluation: true, Result: &evaluation.Result{Variation: "b", Value: "B", Reason: "SPLIT", Bucket: 12},
			Rules: []traceRule{{ID: "rule-1", Clauses: []traceClause{{Clause: domain.Clause{Attribute: "country", Operator: domain.OpIn, Values: []any{"FR"}}, ContextValue: `"FR"`, Matched: true}}}}},
		"segments": segmentsData{frame: fr, Segments: []segmentRow{{Segment: &domain.Segment{Key: "beta", Name: "Beta", Match: "any",
			Clauses: []domain.Clause{{Attribute: "plan", Operator: domain.OpIn, Values: []any{"pro"}}}, Included: []string{"u1"}}, UsedBy: []string{"banner"}}}},
		"webhooks": webhooksData{frame: fr, Kinds: webhooks.Kinds(), Err: &fieldErrors{Field: "url", Message: "bad"},
			Created: &webhooks.SubscriptionWithSecret{Subscription: webhooks.Subscription{ID: "wh_1"}, Secret: "whsec_x"},
			Subscriptions: []webhookRow{{Subscription: webhooks.Subscription{ID: "wh_1", URL: "https://example.com/h", Kinds: []string{"flag.changed"}, Format: "slack"},
				Deliveries: []webhooks.Delivery{{ID: "whd_1", Kind: "test", Status: "delivered", Attempts: 4, ResponseCode: new(int), LatencyMS: new(int), LastError: "x"}}}}},
		"history": historyData{frame: fr, Flag: flag, Then: flag, At: "2026-01-01T00:00:00Z", RestoreEnvs: sortedEnvironments(proj)},
	}
	for name, data := range cases {
		if err := p.sets[name].ExecuteTemplate(io.Discard, "layout.html", data); err != nil {
			t.Errorf("page %s: %v", name, err)
		}
	}
}
