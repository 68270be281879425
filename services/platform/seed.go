package platform

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
)

// DemoProject is the key of the project `vexil seed demo` creates.
const DemoProject = "demo"

// SeedResult is what `vexil seed demo` prints.
type SeedResult struct {
	Project      string            `json:"project"`
	Environments []SeedEnvironment `json:"environments"`
	Flags        []string          `json:"flags"`
	Goals        []string          `json:"goals"`
	Experiment   string            `json:"experiment"` // running in production on new-checkout
	Rollout      string            `json:"rollout"`    // of fast-search in production
	Schedule     string            `json:"schedule"`   // the banner's sale, at the next 09:00 UTC
}

// SeedEnvironment carries the SDK keys of one demo environment.
type SeedEnvironment struct {
	Key       string `json:"key"`
	ClientKey string `json:"client_key"`
	ServerKey string `json:"server_key"`
}

type demoFlag struct {
	flag      domain.NewFlag
	targeting map[string]domain.Targeting // per environment, applied when the flag is created
}

var seedMeta = app.Meta{Actor: "system:seed", Reason: "demo data"}

// SeedDemo creates the demo project idempotently: whatever exists already is left as it is, what is
// missing is created. Running it twice changes nothing the second time.
func SeedDemo(ctx context.Context, a *app.Application) (*SeedResult, error) {
	envs := []domain.NewEnvironment{
		{Key: "development", Name: "Development", Color: "#4caf50"},
		{Key: "staging", Name: "Staging", Color: "#ff9800"},
		{Key: "production", Name: "Production", Color: "#f44336"},
	}
	_, _, err := a.Commands.CreateProject(ctx, seedMeta, app.CreateProject{Key: DemoProject, Name: "Demo",
		Description: "Demo data created by vexil seed demo", Environments: envs})
	if err = existing(err); err != nil {
		return nil, fmt.Errorf("seed: project: %w", err)
	}
	p, _, err := a.Queries.Project(ctx, DemoProject)
	if err != nil {
		return nil, err
	}
	for _, e := range envs {
		if p.Environments[e.Key] != nil {
			continue
		}
		if _, err := a.Commands.CreateEnvironment(ctx, seedMeta, app.CreateEnvironment{Project: DemoProject, Environment: e}); err != nil {
			return nil, fmt.Errorf("seed: environment %s: %w", e.Key, err)
		}
	}

	_, _, err = a.Commands.CreateSegment(ctx, seedMeta, app.CreateSegment{Project: DemoProject, Key: "beta-testers",
		Definition: domain.SegmentDefinition{
			Name: "Beta testers", Description: "Staff and invited users", Match: domain.MatchAny,
			Clauses: []domain.Clause{
				{Attribute: "email", Operator: domain.OpEndsWith, Values: []any{"@example.com"}},
				{Attribute: "beta", Operator: domain.OpEquals, Values: []any{true}},
			},
			Included: []string{"user-alice"}, Excluded: []string{"user-mallory"},
		}})
	if err = existing(err); err != nil {
		return nil, fmt.Errorf("seed: segment: %w", err)
	}

	flags := demoFlags()
	res := &SeedResult{Project: DemoProject}
	for _, df := range flags {
		f := df.flag
		_, _, err := a.Commands.CreateFlag(ctx, seedMeta, app.CreateFlag{Project: f.Project, Key: f.Key, Name: f.Name,
			Description: f.Description, Tags: f.Tags, Type: f.Type, Variations: f.Variations, Defaults: f.Defaults,
			ClientSide: f.ClientSide})
		created := err == nil
		if err = existing(err); err != nil {
			return nil, fmt.Errorf("seed: flag %s: %w", f.Key, err)
		}
		if created {
			for _, e := range envs {
				t, ok := df.targeting[e.Key]
				if !ok {
					continue
				}
				if _, _, err := a.Commands.UpdateTargeting(ctx, seedMeta, app.UpdateTargeting{Project: DemoProject, Flag: f.Key,
					Environment: e.Key, Targeting: t}); err != nil {
					return nil, fmt.Errorf("seed: targeting of %s in %s: %w", f.Key, e.Key, err)
				}
			}
		}
		res.Flags = append(res.Flags, f.Key)
	}

	if err := seedDemoLive(ctx, a, time.Now().UTC()); err != nil {
		return nil, err
	}
	res.Flags = append(res.Flags, demoRolloutFlag)
	res.Goals = []string{DemoGoalPurchase, DemoGoalOrderValue}
	res.Experiment, res.Rollout, res.Schedule = DemoExperiment, DemoRollout, DemoSchedule

	if p, _, err = a.Queries.Project(ctx, DemoProject); err != nil {
		return nil, err
	}
	for _, k := range p.EnvironmentOrder {
		e := p.Environments[k]
		res.Environments = append(res.Environments, SeedEnvironment{Key: e.Key, ClientKey: e.ClientKey, ServerKey: e.ServerKey})
	}
	return res, nil
}

// existing forgives the conflict of a create whose key or id is taken: the seed leaves what
// exists as it is.
func existing(err error) error {
	var de *domain.Error
	if errors.As(err, &de) && de.Code == domain.EConflict && (de.Field == "key" || de.Field == "id") {
		return nil
	}
	return err
}

func split(weights ...any) *domain.Split {
	s := &domain.Split{}
	for i := 0; i < len(weights); i += 2 {
		s.Variations = append(s.Variations, domain.WeightedVariation{Variation: weights[i].(string), Weight: weights[i+1].(int)})
	}
	return s
}

func demoFlags() []demoFlag {
	on := func(t domain.Targeting) domain.Targeting { t.On = true; return t }
	all := func(t domain.Targeting) map[string]domain.Targeting {
		return map[string]domain.Targeting{"development": on(t), "staging": on(t), "production": on(t)}
	}
	return []demoFlag{
		{
			flag: domain.NewFlag{Project: DemoProject, Key: "new-checkout", Name: "New checkout",
				Description: "The redesigned checkout, rolled out gradually", Tags: []string{"checkout", "web"},
				Type: domain.FlagBoolean, ClientSide: true},
			targeting: all(domain.Targeting{OffVariation: "false",
				Rules: []domain.Rule{{Description: "Beta testers first",
					Clauses: []domain.Clause{{Operator: domain.OpInSegment, Values: []any{"beta-testers"}}},
					Serve:   domain.Serve{Variation: "true"}}},
				Default: domain.Serve{Split: split("true", 10000, "false", 90000)}}),
		},
		{
			flag: domain.NewFlag{Project: DemoProject, Key: "banner-text", Name: "Banner text", Tags: []string{"web"},
				Type: domain.FlagString, ClientSide: true, Variations: []domain.Variation{
					{Key: "welcome", Value: "Welcome!"}, {Key: "hello", Value: "Hello there"}, {Key: "sale", Value: "Summer sale: 20% off"}}},
			targeting: all(domain.Targeting{OffVariation: "welcome",
				Rules: []domain.Rule{{Description: "North America",
					Clauses: []domain.Clause{{Attribute: "country", Operator: domain.OpIn, Values: []any{"US", "CA"}}},
					Serve:   domain.Serve{Variation: "sale"}}},
				Default: domain.Serve{Variation: "hello"}}),
		},
		{
			flag: domain.NewFlag{Project: DemoProject, Key: "max-cart-items", Name: "Maximum cart items", Tags: []string{"checkout"},
				Type: domain.FlagNumber, ClientSide: false, Variations: []domain.Variation{
					{Key: "small", Value: 10.0}, {Key: "medium", Value: 25.0}, {Key: "large", Value: 50.0}}},
			targeting: all(domain.Targeting{OffVariation: "small",
				Rules: []domain.Rule{{Description: "Pro plan",
					Clauses: []domain.Clause{{Attribute: "plan", Operator: domain.OpEquals, Values: []any{"pro"}}},
					Serve:   domain.Serve{Variation: "large"}}},
				Default: domain.Serve{Variation: "medium"}}),
		},
		{
			flag: domain.NewFlag{Project: DemoProject, Key: "ui-theme", Name: "UI theme", Tags: []string{"web", "mobile"},
				Type: domain.FlagJSON, ClientSide: true, Variations: []domain.Variation{
					{Key: "light", Value: map[string]any{"theme": "light", "compact": false}},
					{Key: "dark", Value: map[string]any{"theme": "dark", "compact": true}}}},
			targeting: all(domain.Targeting{OffVariation: "light",
				Targets: []domain.Target{{Variation: "dark", Values: []string{"user-alice"}}},
				Rules: []domain.Rule{{Description: "New app versions",
					Clauses: []domain.Clause{{Attribute: "app_version", Operator: domain.OpSemverGT, Values: []any{"2.0.0"}}},
					Serve:   domain.Serve{Variation: "dark"}}},
				Default: domain.Serve{Variation: "light"}}),
		},
		{
			flag: domain.NewFlag{Project: DemoProject, Key: "payments-enabled", Name: "Payments enabled",
				Description: "Kill switch for the payment provider", Tags: []string{"ops", "kill-switch"},
				Type: domain.FlagBoolean, ClientSide: false},
			targeting: all(domain.Targeting{OffVariation: "false", Default: domain.Serve{Variation: "true"}}),
		},
		{
			flag: domain.NewFlag{Project: DemoProject, Key: "one-click-buy", Name: "One-click buy",
				Description: "Needs the new checkout", Tags: []string{"checkout"}, Type: domain.FlagBoolean, ClientSide: true},
			targeting: all(domain.Targeting{OffVariation: "false",
				Prerequisites: []domain.Prerequisite{{Flag: "new-checkout", Variation: "true"}},
				Default:       domain.Serve{Split: split("true", 50000, "false", 50000)}}),
		},
	}
}
