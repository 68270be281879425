package platform

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/services/console"
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
func seedDemoLive(ctx context.Context, app *console.App, now time.Time) error {
	for _, g := range []domain.NewGoal{
		{Project: DemoProject, Key: DemoGoalPurchase, Name: "Purchase", Description: "The user completed a checkout",
			Kind: domain.GoalConversion},
		{Project: DemoProject, Key: DemoGoalOrderValue, Name: "Order value", Description: "Revenue per user, in euros",
			Kind: domain.GoalValue, ValueCap: 1000},
	} {
		if err := createIfMissing(ctx, app, domain.GoalStream(DemoProject, g.Key), func(*domain.Catalog) ([]domain.Event, error) {
			return domain.CreateGoal(g)
		}); err != nil {
			return fmt.Errorf("seed: goal %s: %w", g.Key, err)
		}
	}

	// The experiment: created as a draft, then started (a draft left by an interrupted seed starts
	// on the next one).
	expStream := domain.ExperimentStream(DemoProject, DemoExperiment)
	cat, err := app.ExperimentCatalog(ctx, DemoProject)
	if err != nil {
		return err
	}
	if _, _, err := app.Execute(ctx, expStream, console.AnyVersion, seedMeta, func(cur projections.Aggregate) ([]domain.Event, error) {
		if cur != nil {
			return nil, nil
		}
		return domain.CreateExperiment(domain.NewExperiment{Project: DemoProject, Key: DemoExperiment,
			ExperimentDefinition: domain.ExperimentDefinition{
				Name: "Checkout v2", Hypothesis: "The redesigned checkout converts better than the current one",
				Flag: "new-checkout", Environment: "production",
				Variations: []domain.ExperimentVariation{{Variation: "false", Control: true}, {Variation: "true"}},
				Seed:       console.NewID(8), PrimaryGoal: DemoGoalPurchase, SecondaryGoals: []string{DemoGoalOrderValue}}}, cat)
	}); err != nil {
		return fmt.Errorf("seed: experiment: %w", err)
	}
	if cat, err = app.ExperimentCatalog(ctx, DemoProject); err != nil {
		return err
	}
	if _, _, err := app.Execute(ctx, expStream, console.AnyVersion, seedMeta, func(cur projections.Aggregate) ([]domain.Event, error) {
		if e := cur.(*domain.Experiment); e.Status != domain.ExperimentStatusDraft {
			return nil, nil
		}
		return cur.(*domain.Experiment).Start(cat, now)
	}); err != nil {
		return fmt.Errorf("seed: start experiment: %w", err)
	}

	// The rollout: fast-search goes from 0% to 100% over three hours, the first step (5%) a few
	// seconds after seeding, so the experiment role applies it while the reader watches.
	if err := createIfMissing(ctx, app, domain.FlagStream(DemoProject, demoRolloutFlag), func(cat *domain.Catalog) ([]domain.Event, error) {
		return domain.CreateFlag(domain.NewFlag{Project: DemoProject, Key: demoRolloutFlag, Name: "Fast search",
			Description: "The new search backend, rolled out progressively", Tags: []string{"search", "web"},
			Type: domain.FlagBoolean, ClientSide: true, Salt: console.NewID(8)}, cat)
	}); err != nil {
		return fmt.Errorf("seed: flag %s: %w", demoRolloutFlag, err)
	}
	flagCat, err := app.Catalog(ctx, DemoProject)
	if err != nil {
		return err
	}
	if _, _, err := app.Execute(ctx, domain.FlagStream(DemoProject, demoRolloutFlag), console.AnyVersion, seedMeta,
		func(cur projections.Aggregate) ([]domain.Event, error) {
			f := cur.(*domain.Flag)
			if f.ConfigFor("production").Targeting.On {
				return nil, nil // set up already
			}
			return f.UpdateTargeting("production", domain.Targeting{On: true, OffVariation: "false",
				Default: domain.Serve{Variation: "false"}}, flagCat)
		}); err != nil {
		return fmt.Errorf("seed: targeting of %s: %w", demoRolloutFlag, err)
	}
	current, err := app.LoadFlag(ctx, DemoProject, demoRolloutFlag)
	if err != nil {
		return err
	}
	if err := createIfMissing(ctx, app, domain.RolloutStream(DemoProject, DemoRollout), func(cat *domain.Catalog) ([]domain.Event, error) {
		return domain.CreateRollout(domain.NewRollout{Project: DemoProject, ID: DemoRollout, Flag: demoRolloutFlag,
			Environment: "production", Steps: domain.RolloutTemplate(now.Add(5*time.Second), time.Hour, 5, 25, 50, 100)},
			current, cat, nil, nil, now)
	}); err != nil {
		return fmt.Errorf("seed: rollout: %w", err)
	}

	// The scheduled change: at the next 09:00 UTC the production banner switches to the sale.
	next9 := time.Date(now.Year(), now.Month(), now.Day(), 9, 0, 0, 0, time.UTC)
	if !next9.After(now.Add(time.Minute)) {
		next9 = next9.Add(24 * time.Hour)
	}
	banner, err := app.LoadFlag(ctx, DemoProject, "banner-text")
	if err != nil {
		return err
	}
	if err := createIfMissing(ctx, app, domain.ScheduleStream(DemoProject, DemoSchedule), func(cat *domain.Catalog) ([]domain.Event, error) {
		return domain.ScheduleChange(domain.NewScheduledChange{Project: DemoProject, ID: DemoSchedule, Flag: "banner-text",
			Environment: "production", ChangeSpec: domain.ChangeSpec{At: next9, Kind: domain.ChangeDefault,
				Default: &domain.Serve{Variation: "sale"}}}, banner, cat, now)
	}); err != nil {
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
