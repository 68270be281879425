package platform

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
)

// Demo objects beyond flags and segments: what makes the demo look alive. Their keys are what the
// README's examples use.
const (
	DemoGoalPurchase   = "purchase"
	DemoGoalOrderValue = "order-value"
	DemoExperiment     = "checkout-v2"
	DemoRollout        = "fast-search-rollout"
	DemoSchedule       = "summer-sale"
	demoRolloutFlag    = "fast-search"
)

// seedDemoLive creates, when missing, the demo's goals, a running experiment on new-checkout in
// production (the simulator makes "true" convert clearly better), a progressive rollout of
// fast-search in production whose first step is due a few seconds after seeding, and a change
// scheduled for the next 09:00 UTC (the banner switches to the sale). Idempotent like SeedDemo:
// on a later start, whatever exists (including a rollout that has moved on, or a concluded
// experiment) is left as it is.
func seedDemoLive(ctx context.Context, a *app.Application, now time.Time) error {
	for _, g := range []domain.NewGoal{
		{Project: DemoProject, Key: DemoGoalPurchase, Name: "Purchase", Description: "The user completed a checkout",
			Kind: domain.GoalConversion},
		{Project: DemoProject, Key: DemoGoalOrderValue, Name: "Order value", Description: "Revenue per user, in euros",
			Kind: domain.GoalValue, ValueCap: 1000},
	} {
		if _, _, err := a.Commands.CreateGoal(ctx, seedMeta, app.CreateGoal{Goal: g}); existing(err) != nil {
			return fmt.Errorf("seed: goal %s: %w", g.Key, err)
		}
	}

	// The experiment: created as a draft, then started (a draft left by an interrupted seed starts
	// on the next one).
	_, _, err := a.Commands.CreateExperiment(ctx, seedMeta, app.CreateExperiment{Project: DemoProject, Key: DemoExperiment,
		Definition: domain.ExperimentDefinition{
			Name: "Checkout v2", Hypothesis: "The redesigned checkout converts better than the current one",
			Flag: "new-checkout", Environment: "production",
			Variations:  []domain.ExperimentVariation{{Variation: "false", Control: true}, {Variation: "true"}},
			PrimaryGoal: DemoGoalPurchase, SecondaryGoals: []string{DemoGoalOrderValue}}})
	if err = existing(err); err != nil {
		return fmt.Errorf("seed: experiment: %w", err)
	}
	exp, _, err := a.Queries.Experiment(ctx, DemoProject, DemoExperiment)
	if err != nil {
		return err
	}
	if exp.Status == domain.ExperimentStatusDraft {
		if _, _, err := a.Commands.StartExperiment(ctx, seedMeta, app.StartExperiment{Project: DemoProject, Experiment: DemoExperiment}); err != nil {
			return fmt.Errorf("seed: start experiment: %w", err)
		}
	}

	// The rollout: fast-search goes from 0% to 100% over three hours, the first step (5%) a few
	// seconds after seeding, so the experiment role applies it while the reader watches.
	_, _, err = a.Commands.CreateFlag(ctx, seedMeta, app.CreateFlag{Project: DemoProject, Key: demoRolloutFlag, Name: "Fast search",
		Description: "The new search backend, rolled out progressively", Tags: []string{"search", "web"},
		Type: domain.FlagBoolean, ClientSide: true})
	if err = existing(err); err != nil {
		return fmt.Errorf("seed: flag %s: %w", demoRolloutFlag, err)
	}
	f, _, err := a.Queries.Flag(ctx, DemoProject, demoRolloutFlag)
	if err != nil {
		return err
	}
	if !f.ConfigFor("production").Targeting.On { // not set up yet
		if _, _, err := a.Commands.UpdateTargeting(ctx, seedMeta, app.UpdateTargeting{Project: DemoProject, Flag: demoRolloutFlag,
			Environment: "production", Targeting: domain.Targeting{On: true, OffVariation: "false",
				Default: domain.Serve{Variation: "false"}}}); err != nil {
			return fmt.Errorf("seed: targeting of %s: %w", demoRolloutFlag, err)
		}
	}
	_, _, err = a.Commands.CreateRollout(ctx, seedMeta, app.CreateRollout{Project: DemoProject, ID: DemoRollout, Flag: demoRolloutFlag,
		Env: "production", Steps: domain.RolloutTemplate(now.Add(5*time.Second), time.Hour, 5, 25, 50, 100), Now: now})
	if err = existing(err); err != nil {
		return fmt.Errorf("seed: rollout: %w", err)
	}

	// The scheduled change: at the next 09:00 UTC the production banner switches to the sale.
	next9 := time.Date(now.Year(), now.Month(), now.Day(), 9, 0, 0, 0, time.UTC)
	if !next9.After(now.Add(time.Minute)) {
		next9 = next9.Add(24 * time.Hour)
	}
	_, _, err = a.Commands.ScheduleChange(ctx, seedMeta, app.ScheduleChange{Project: DemoProject, ID: DemoSchedule, Flag: "banner-text",
		Env: "production", Change: app.ChangeSpec{At: next9, Kind: domain.ChangeDefault, Default: &domain.Serve{Variation: "sale"}}, Now: now})
	if err = existing(err); err != nil {
		return fmt.Errorf("seed: scheduled change: %w", err)
	}
	return nil
}

// StartDemo seeds the demo project (see SeedDemo) and, when the api role runs here and
// DemoTraffic is positive, starts the traffic simulator against this process until it closes.
// Ready is called once the seed is done: with NotReadyUntil called before Start, /readyz says
// "starting" until the demo's data is there.
func (p *Platform) StartDemo(ctx context.Context) (*SeedResult, error) {
	res, err := SeedDemo(ctx, p.App)
	if err != nil {
		return nil, err
	}
	p.Ready()
	if p.Config.DemoTraffic <= 0 || p.SDK == nil {
		return res, nil
	}
	for _, e := range res.Environments {
		if e.Key != "production" {
			continue
		}
		traffic := &DemoTraffic{Base: "http://" + p.Addr, ClientKey: e.ClientKey, UsersPerSecond: p.Config.DemoTraffic, Log: p.Log}
		p.run("demo-traffic", func() error { return traffic.Run(p.runCtx) })
		p.Log.Info("demo traffic started", "users_per_second", p.Config.DemoTraffic)
	}
	return res, nil
}
