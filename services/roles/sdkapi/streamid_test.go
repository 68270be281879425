package sdkapi

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// A stream opened without Last-Event-ID starts with a data-less block carrying the version's id:
// EventSource takes it as its last event id without dispatching an event, so a stream dropped
// before any change resumes from that version. A stream resumed with an id gets no such line
// (the client keeps its id until the resume event it is owed).
func TestStreamStartsWithTheVersionID(t *testing.T) {
	f := newStreamFixture(t)
	preamble := func(lastEventID string) []string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", f.base+"/sdk/v1/stream?key="+testClientKey, nil)
		if lastEventID != "" {
			req.Header.Set("Last-Event-ID", lastEventID)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var lines []string
		for sc := bufio.NewScanner(res.Body); sc.Scan() && sc.Text() != ""; {
			lines = append(lines, sc.Text())
		}
		return lines
	}
	first := preamble("")
	if !slices.Contains(first, "id: 10") || !slices.Contains(first, "retry: 2000") {
		t.Fatalf("the first block %q lacks the version's id or the retry", first)
	}
	for _, l := range first {
		if strings.HasPrefix(l, "data:") || strings.HasPrefix(l, "event:") {
			t.Fatalf("the first block %q dispatches an event", first)
		}
	}
	for _, l := range preamble("7") {
		if strings.HasPrefix(l, "id:") {
			t.Fatalf("a resumed stream's first block sets the id: %q", l)
		}
	}
}
