package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// 50 clients read a flag and write it back with If-Match at once: each write is applied or
// answered 409, the stream's versions stay contiguous, and the read model equals the fold of the
// events.
func TestConcurrentConflictingUpdatesOfOneFlag(t *testing.T) {
	t.Parallel()
	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "p", "name": "P"})
	v.must(201, "POST", "/api/v1/projects/p/flags", map[string]any{"key": "hot", "name": "Hot", "type": "number",
		"variations": []any{map[string]any{"key": "low", "value": 1}, map[string]any{"key": "high", "value": 2}}})

	const writers = 50
	var wg sync.WaitGroup
	statuses := make([]int, writers)
	start := make(chan struct{})
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			r := v.do("GET", "/api/v1/projects/p/flags/hot", nil)
			etag := r.Header.Get("ETag")
			w := v.do("PUT", "/api/v1/projects/p/flags/hot/environments/production", map[string]any{
				"on": i%2 == 0, "off_variation": "low",
				"targets": []any{map[string]any{"variation": "high", "values": []string{fmt.Sprintf("writer-%d", i)}}},
				"default": map[string]any{"variation": "high"}}, "If-Match", etag)
			statuses[i] = w.Status
		}(i)
	}
	close(start)
	wg.Wait()

	applied := 0
	for i, s := range statuses {
		switch s {
		case 200:
			applied++
		case 409:
		default:
			t.Fatalf("writer %d: status %d", i, s)
		}
	}
	if applied == 0 {
		t.Fatal("no write was applied")
	}

	ctx := context.Background()
	events, err := v.p.Store.Load(ctx, domain.FlagStream("p", "hot"))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1+applied {
		t.Fatalf("%d events for %d applied writes", len(events), applied)
	}
	for i, e := range events {
		if e.Version != int64(i+1) {
			t.Fatalf("versions are not contiguous: event %d has version %d", i, e.Version)
		}
	}
	folded, err := domain.FoldFlag(events)
	if err != nil {
		t.Fatal(err)
	}
	// The read model catches up to the last version and then holds exactly the fold.
	var state []byte
	waitUntil(t, 10*time.Second, "catalog read model", func() bool {
		var version int64
		err := v.p.Pool.QueryRow(ctx, `SELECT version, state FROM rm_flags WHERE project='p' AND key='hot'`).Scan(&version, &state)
		return err == nil && version == folded.Version
	})
	var fromReadModel domain.Flag
	if err := json.Unmarshal(state, &fromReadModel); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(folded)
	got, _ := json.Marshal(&fromReadModel)
	var w, g any
	_ = json.Unmarshal(want, &w)
	_ = json.Unmarshal(got, &g)
	if !reflect.DeepEqual(w, g) {
		t.Fatalf("read model differs from the fold of the events:\nread model %s\nfold       %s", got, want)
	}
	// The audit log has one entry per event, and the ruleset one config at the last version.
	audit := items(t, v.must(200, "GET", "/api/v1/projects/p/flags/hot/audit?limit=500", nil))
	if len(audit) != len(events) {
		t.Fatalf("audit has %d entries for %d events", len(audit), len(events))
	}
	var config []byte
	if err := v.p.Pool.QueryRow(ctx, `SELECT config FROM rm_ruleset_flags WHERE project='p' AND environment='production' AND flag='hot'`).Scan(&config); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(config), `"version": `+strconv.FormatInt(folded.Version, 10)) &&
		!strings.Contains(string(config), `"version":`+strconv.FormatInt(folded.Version, 10)) {
		t.Fatalf("ruleset holds %s, want version %d", config, folded.Version)
	}
}
