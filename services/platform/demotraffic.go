package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"
)

// DemoTraffic simulates the users of a shop using the demo project, through the same SDK API real
// applications use: each simulated visit evaluates every client-side flag with OFREP (production
// client key), and the visits of each second are reported with one POST /sdk/v1/events of
// evaluation events (carrying the experiment key OFREP answered, as SDKs do) and the goals the
// users reached. The new checkout converts clearly better than the old one (14% against 8%), so
// the checkout-v2 experiment reaches a verdict within minutes; flag stats, goal stats and Grafana
// fill as they would with real traffic.
type DemoTraffic struct {
	Base           string  // the platform's URL, e.g. http://127.0.0.1:8080
	ClientKey      string  // production client key of the demo project
	UsersPerSecond float64 // visits a second
	Log            *slog.Logger
	Client         *http.Client
	// Rand draws users and their behaviour; a fixed seed makes a run repeatable.
	Rand *rand.Rand
}

// demoPopulation is how many distinct users visit: returning users keep their variations.
const demoPopulation = 20000

var (
	demoCountries = []string{"US", "DE", "FR", "CA", "GB", "ES", "NL"}
	demoPlans     = []string{"free", "free", "free", "pro"}
	demoVersions  = []string{"1.9.3", "2.0.0", "2.1.4"}
)

// Run sends traffic until ctx ends. A failed request is logged (once per kind of failure per
// minute) and the simulation goes on: the demo must not stop because Redis blinked.
func (d *DemoTraffic) Run(ctx context.Context) error {
	if d.UsersPerSecond <= 0 {
		return nil
	}
	if d.Client == nil {
		d.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if d.Rand == nil {
		d.Rand = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var owed float64 // fractional visits carried to the next second
	lastLogged := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		owed += d.UsersPerSecond
		n := int(owed)
		owed -= float64(n)
		if err := d.second(ctx, n); err != nil && ctx.Err() == nil {
			msg := err.Error()
			if time.Since(lastLogged[msg]) > time.Minute {
				lastLogged[msg] = time.Now()
				d.Log.Warn("demo traffic: a request failed; the simulation goes on", "error", msg)
			}
		}
	}
}

// ofrepBulk is the part of OFREP's bulk answer the simulation reads.
type ofrepBulk struct {
	Flags []struct {
		Key      string         `json:"key"`
		Value    any            `json:"value"`
		Variant  string         `json:"variant"`
		Reason   string         `json:"reason"`
		Metadata map[string]any `json:"metadata"`
	} `json:"flags"`
}

// second simulates n visits and reports them.
func (d *DemoTraffic) second(ctx context.Context, n int) error {
	now := time.Now().UTC()
	events := make([]map[string]any, 0, n*8)
	var firstErr error
	for range n {
		user := fmt.Sprintf("user-%d", d.Rand.IntN(demoPopulation))
		attrs := map[string]any{"country": demoCountries[d.Rand.IntN(len(demoCountries))],
			"plan": demoPlans[d.Rand.IntN(len(demoPlans))], "app_version": demoVersions[d.Rand.IntN(len(demoVersions))]}
		evalContext := map[string]any{"targetingKey": user}
		for k, v := range attrs {
			evalContext[k] = v
		}
		var bulk ofrepBulk
		if err := d.post(ctx, "/ofrep/v1/evaluate/flags", map[string]any{"context": evalContext}, &bulk); err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		newCheckout := false
		for _, f := range bulk.Flags {
			ev := map[string]any{"kind": "evaluation", "occurred_at": now, "flag_key": f.Key, "variation_key": f.Variant,
				"reason": f.Reason, "user_key": user, "attributes": attrs}
			if exp, ok := f.Metadata["experiment"].(string); ok && exp != "" {
				ev["experiment_key"] = exp
			}
			events = append(events, ev)
			if f.Key == "new-checkout" && f.Value == true {
				newCheckout = true
			}
		}
		// The redesigned checkout converts better and sells a little more per order.
		rate, basket := 0.08, 45.0
		if newCheckout {
			rate, basket = 0.14, 52.0
		}
		if d.Rand.Float64() < rate {
			at := now.Add(time.Duration(d.Rand.IntN(900)) * time.Millisecond)
			value := basket + 20*d.Rand.NormFloat64()
			if value < 5 {
				value = 5
			}
			events = append(events,
				map[string]any{"kind": "goal", "occurred_at": at, "goal_key": DemoGoalPurchase, "user_key": user},
				map[string]any{"kind": "goal", "occurred_at": at, "goal_key": DemoGoalOrderValue, "user_key": user, "value": value})
		}
	}
	if len(events) == 0 {
		return firstErr
	}
	return cmpErr(firstErr, d.post(ctx, "/sdk/v1/events", map[string]any{"events": events}, nil))
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// post sends body as JSON with the client key and decodes a 2xx answer into out (if not nil).
func (d *DemoTraffic) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.ClientKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := d.Client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: status %d", path, res.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}
