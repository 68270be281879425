// Command quickstart is a service using Vexil through OpenFeature with the Go SDK: flags are
// evaluated in process (no network round trip per flag), changes arrive by SSE, and exposures
// and goals are sent in batches. Against `vexil serve --demo` (see the repository's README):
//
//	eval "$(vexil seed demo --shell production)"   # sets SERVER_KEY
//	VEXIL_URL=http://127.0.0.1:8080 VEXIL_SERVER_KEY=$SERVER_KEY go run .
//
// It is its own module, like an application: its go.mod shows what an application that imports
// the SDK requires (no pgx, watermill or echo; sdk/go's dependency test checks it).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	vexil "github.com/vexil-flags/vexil/sdk/go"
)

func main() {
	base, key := os.Getenv("VEXIL_URL"), os.Getenv("VEXIL_SERVER_KEY")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	if key == "" {
		log.Fatal("set VEXIL_SERVER_KEY to an environment's server-side SDK key (vexil seed demo --shell production prints one)")
	}
	provider, err := vexil.NewProvider(vexil.Options{BaseURL: base, ServerKey: key,
		// Start from the last ruleset seen when the server is unreachable at start.
		BootstrapFile: os.TempDir() + "/vexil-quickstart-ruleset.json", SaveBootstrap: true})
	if err != nil {
		log.Fatal(err)
	}
	if err := openfeature.SetProviderAndWait(provider); err != nil {
		log.Fatal(err)
	}
	defer openfeature.Shutdown() // delivers the queued exposures and goals

	openfeature.AddHandler(openfeature.ProviderConfigChange, &configChanged)
	client := openfeature.NewClient("quickstart")
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		user := openfeature.NewEvaluationContext(fmt.Sprintf("user-%d", i), map[string]any{"plan": "pro", "country": "NL"})
		checkout, err := client.BooleanValueDetails(ctx, "new-checkout", false, user)
		if err != nil {
			log.Printf("new-checkout: %v", err)
		}
		banner, _ := client.StringValue(ctx, "banner-text", "Welcome", user)
		items, _ := client.IntValue(ctx, "max-cart-items", 10, user)
		fmt.Printf("%s: new-checkout=%v (%s, variant %q) banner=%q max-cart-items=%d\n",
			user.TargetingKey(), checkout.Value, checkout.Reason, checkout.Variant, banner, items)
		if checkout.Value {
			// A goal: attributed to the experiment variation the user was exposed to.
			client.Track(ctx, "purchase", user, openfeature.NewTrackingEventDetails(0))
		}
	}
	if d := os.Getenv("QUICKSTART_WATCH"); d != "" {
		wait, err := time.ParseDuration(d)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("watching changes for %v (toggle a flag in the console)...\n", wait)
		time.Sleep(wait)
	}
	st := provider.Stats()
	fmt.Printf("ruleset version %d, %d events queued\n", st.RulesetVersion, st.EventsQueued)
}

var configChanged = func(d openfeature.EventDetails) {
	fmt.Printf("configuration changed: %v\n", d.FlagChanges)
}
