package platform_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/roles/webhooks"
	"github.com/vexil-flags/vexil/services/testkit"
)

// The whole path of an outgoing webhook in the real program: a subscription made through the
// API, flag changes through the API, the outbox filled by the projector, the worker's signed
// deliveries (the first refused three times, then retried with the configured backoff), the
// delivery log and a test delivery; then the history still replays and its audit chain holds.
func TestOutgoingWebhooksThroughTheAPI(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--webhook-retry-base", "10ms", "--webhook-retry-max", "40ms", "--webhook-poll-interval", "20ms")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "checkout", "name": "Checkout", "type": "boolean"})

	var mu sync.Mutex
	seen := map[string]webhooks.Payload{} // by delivery id
	refused, requests := 0, 0
	var secret, first string // first: the delivery refused three times
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		requests++
		if err := webhooks.Verify(secret, r.Header.Get(webhooks.SignatureHeader), body, 0, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if first == "" {
			first = r.Header.Get(webhooks.DeliveryIDHeader)
		}
		if r.Header.Get(webhooks.DeliveryIDHeader) == first && refused < 3 {
			refused++
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var p webhooks.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		seen[r.Header.Get(webhooks.DeliveryIDHeader)] = p
	}))
	t.Cleanup(receiver.Close)

	// Bad input is a 4xx naming the field.
	if r := v.do("POST", "/api/v1/projects/shop/webhooks", map[string]any{"url": "ftp://x", "kinds": []string{"flag.changed"}}); r.Status != 400 || !strings.Contains(string(r.Body), `"url"`) {
		t.Fatalf("bad url: %d %s", r.Status, r.Body)
	}
	sub := v.must(201, "POST", "/api/v1/projects/shop/webhooks", map[string]any{"url": receiver.URL, "kinds": []string{"flag.changed"}})
	mu.Lock()
	secret = sub["secret"].(string)
	mu.Unlock()
	id := sub["id"].(string)
	if r := v.do("GET", "/api/v1/projects/shop/webhooks/"+id, nil); r.Status != 200 || strings.Contains(string(r.Body), secret) {
		t.Fatalf("a subscription read back shows its secret or is missing: %d %s", r.Status, r.Body)
	}

	v.must(200, "POST", "/api/v1/projects/shop/flags/checkout/environments/production/toggle", map[string]any{"on": true}, "X-Vexil-Reason", "launch")
	v.must(200, "POST", "/api/v1/projects/shop/flags/checkout/environments/production/toggle", map[string]any{"on": false})

	testkit.WaitFor(t, 30*time.Second, "two flag changes delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 2
	})
	mu.Lock()
	versions := map[int64]int{}
	for _, p := range seen {
		if p.Kind != webhooks.KindFlagChanged || p.Flag != "checkout" || p.Environment != "production" || p.Event.Type != "FlagToggled" {
			t.Errorf("payload %+v", p)
		}
		versions[p.Event.Version]++
	}
	mu.Unlock()
	if versions[2] != 1 || versions[3] != 1 {
		t.Errorf("each toggle once after de-duplication by delivery id: %v", versions)
	}

	// The receiver answers before the worker records the answer: wait for the log.
	var list []map[string]any
	testkit.WaitFor(t, 30*time.Second, "the delivery log to show both delivered", func() bool {
		list = items(t, v.must(200, "GET", "/api/v1/projects/shop/webhooks/"+id+"/deliveries", nil))
		for _, d := range list {
			if d["status"] != "delivered" {
				return false
			}
		}
		return len(list) == 2
	})
	mu.Lock()
	refusedID := first
	mu.Unlock()
	for _, d := range list {
		want := 1.0
		if d["id"] == refusedID {
			want = 4 // refused three times, then delivered
		}
		if d["response_code"].(float64) != 200 || d["attempts"].(float64) != want || len(d["attempt_log"].([]any)) != int(want) {
			t.Errorf("delivery %v: want %v attempts", d, want)
		}
	}

	d := v.must(202, "POST", "/api/v1/projects/shop/webhooks/"+id+"/test", nil)
	testkit.WaitFor(t, 30*time.Second, "the test delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen[d["id"].(string)].Kind == webhooks.KindTest
	})

	// The console's Webhooks page: admins only; the delivery log with the refused delivery's
	// attempts; a subscription added by form shows its secret once; Send test queues one.
	admin := signIn(t, v, addPerson(t, v, "hooks-admin@example.com", "Hook Admin", "shop", "admin", false))
	editor := signIn(t, v, addPerson(t, v, "hooks-editor@example.com", "Hook Editor", "shop", "editor", false))
	if status, _ := editor.get("/projects/shop/webhooks"); status != http.StatusForbidden {
		t.Errorf("an editor opens the webhooks page: %d", status)
	}
	status, page := admin.get("/projects/shop/webhooks")
	if status != http.StatusOK || !strings.Contains(page, receiver.URL) || !strings.Contains(page, "<td>4</td>") ||
		!strings.Contains(page, "delivered") || strings.Contains(page, secret) {
		t.Fatalf("webhooks page %d: %s", status, page)
	}
	status, page, _ = admin.post("/projects/shop/webhooks", url.Values{"url": {receiver.URL + "/slack"}, "kinds": {"autoops.fired", "flag.changed"},
		"format": {"slack"}}, true)
	if status != http.StatusCreated || !strings.Contains(page, "whsec_") {
		t.Fatalf("adding a webhook by form: %d %s", status, page)
	}
	if status, page, _ = admin.post("/projects/shop/webhooks", url.Values{"url": {"not a url"}, "kinds": {"flag.changed"}}, true); status != http.StatusBadRequest {
		t.Errorf("a bad URL by form: %d %s", status, page)
	}
	if status, _, hdr := admin.post("/projects/shop/webhooks/"+id+"/test", url.Values{}, true); status != http.StatusSeeOther || !strings.Contains(hdr.Get("Location"), "/webhooks?done=") {
		t.Errorf("send test by form: %d %v", status, hdr)
	}

	// Subscriptions and deliveries are not events: replay and the audit chain are untouched.
	url := v.p.Config.DatabaseURL
	out, err := runCLI(t, "replay", "--verify", "--database-url", url)
	var rep struct {
		Differences []any `json:"differences"`
	}
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Differences) != 0 {
		t.Fatalf("replay --verify: %v\n%s", err, out)
	}
	if out, err := verify(t, url); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}
