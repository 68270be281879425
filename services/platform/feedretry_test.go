package platform_test

import (
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// An api process learns of a change from the domain stream, then waits (5 s at most) for the
// rulesets read model to include it before it refreshes. A projector slower than that (catching
// up after a Redis incident on a busy machine, or restarting) used to leave the api serving the
// old version until the next reconciliation (an hour here): the refresh read the read models
// without the change and nothing looked again. The notification now comes back until the read
// models have it.
func TestAPIRoleServesAChangeItsProjectorAppliesAfterTheWait(t *testing.T) {
	t.Parallel()
	proj := ingesttest.Start(t, "--roles", "projector")
	shared := []string{"--database-url", proj.Database, "--stream-prefix", proj.Prefix}
	writer := startVexil(t, append(shared, "--roles", "console,relay", "--consistency-wait", "12s")...)
	keys := writer.tv.CreateProject("app", "probe")
	api := ingesttest.Start(t, append(shared, "--roles", "api", "--reconcile-interval", "1h")...)
	evaluate := func() string {
		r := api.Do("POST", "/ofrep/v1/evaluate/flags/probe", keys.Server, `{"context":{"targetingKey":"u"}}`)
		if r.Status != 200 {
			t.Fatalf("OFREP: %d %s", r.Status, r.Body)
		}
		reason, _ := r.JSON(t)["reason"].(string)
		return reason
	}
	if got := evaluate(); got != "DISABLED" {
		t.Fatalf("before the toggle: reason %q, want DISABLED", got)
	}

	// The projector stops; the toggle is relayed to the api process but not projected. The write
	// answers after its whole consistency wait (12 s): the api, told of it by the relay within a
	// second or so, has waited out its own 5 s by then and refreshed from read models without
	// the change.
	if err := proj.P.Close(); err != nil {
		t.Fatal(err)
	}
	writer.must(200, "POST", "/api/v1/projects/app/flags/probe/environments/production/toggle", map[string]any{"on": true})
	if got := evaluate(); got != "DISABLED" {
		t.Fatalf("the read models were never told of the toggle, yet the api serves reason %q", got)
	}

	// A projector comes back and catches up; the api serves the change without a reconciliation.
	back := time.Now()
	ingesttest.Start(t, append(shared, "--roles", "projector")...)
	ingesttest.WaitFor(t, 45*time.Second, "the api process to serve the toggle the projector applied late", func() bool {
		return evaluate() != "DISABLED"
	})
	t.Logf("served %v after the projector came back", time.Since(back).Round(time.Millisecond))
}
