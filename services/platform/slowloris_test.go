package platform_test

import (
	"bufio"
	"errors"
	"github.com/vexil-flags/vexil/services/testkit"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A client that trickles its headers, or its body, one byte at a time is cut off once the
// configured timeout passes, instead of holding a connection (and a goroutine) for as long as it
// likes; an SSE stream stays open well past the same timeouts.
func TestSlowClientsAreCutOffAndStreamsStayOpen(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	v := startVexil(t, "--http-read-header-timeout", timeout.String(), "--http-body-timeout", timeout.String(),
		"--http-write-timeout", "2s", "--consistency-wait", "300ms", "--sse-heartbeat", "200ms")
	addr := strings.TrimPrefix(v.base, "http://")

	// closedAfter sends head, then trickles trickle one byte every 100 ms, and returns how long
	// after the first byte the server closed the connection.
	closedAfter := func(t *testing.T, head, trickle string) time.Duration {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i = (i + 1) % len(trickle) {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte{trickle[i]}); err != nil {
					return // closed by the server
				}
			}
		}()
		// Generous: the test fails only if the connection outlives ten times the timeout.
		_ = conn.SetReadDeadline(time.Now().Add(10 * timeout))
		_, err = io.Copy(io.Discard, conn) // whatever the server answers, until it closes
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection is still open %v after the slow client started", time.Since(start).Round(time.Millisecond))
		}
		return time.Since(start)
	}

	t.Run("headers", func(t *testing.T) {
		d := closedAfter(t, "GET /api/v1/projects HTTP/1.1\r\nHost: vexil\r\n", "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
		testkit.Figure(t, "trickled headers: connection closed after %v (timeout %v)", d.Round(time.Millisecond), timeout)
		if d < timeout-100*time.Millisecond {
			t.Fatalf("closed after %v, before the timeout of %v: something else cut it", d, timeout)
		}
	})
	t.Run("body", func(t *testing.T) {
		body := `{"key":"slow","name":"Slow","type":"boolean","description":"` + strings.Repeat("x", 200) + `"}`
		head := "POST /api/v1/projects HTTP/1.1\r\nHost: vexil\r\nAuthorization: Bearer " + adminToken +
			"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		d := closedAfter(t, head, body)
		testkit.Figure(t, "trickled body: connection closed after %v (timeout %v)", d.Round(time.Millisecond), timeout)
		if d < timeout-100*time.Millisecond {
			t.Fatalf("closed after %v, before the timeout of %v: something else cut it", d, timeout)
		}
		if r := v.do("GET", "/api/v1/projects/slow", nil); r.Status != 404 {
			t.Fatalf("the trickled request was acted on: %d %s", r.Status, r.Body)
		}
	})
	t.Run("headers too large", func(t *testing.T) {
		req, _ := http.NewRequest("GET", v.base+"/healthz", nil)
		// Twice the 64 KiB limit: net/http's bound is approximate (it reads in 4 KiB buffers).
		req.Header.Set("X-Big", strings.Repeat("a", 128<<10))
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("128 KiB of headers: %d, want 431", res.StatusCode)
		}
	})
	t.Run("an SSE stream outlives the timeouts", func(t *testing.T) {
		keys := v.tv.CreateProject("streams", "beta")
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /sdk/v1/stream?key="+keys.Client+" HTTP/1.1\r\nHost: vexil\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		rd := bufio.NewReader(conn)
		start := time.Now()
		// Heartbeats every 200 ms: read them until the stream has been open for three times the
		// body, header and write timeouts.
		for time.Since(start) < 3*2*time.Second {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("the stream closed after %v: %v", time.Since(start).Round(time.Millisecond), err)
			}
			if strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.1 200") {
				t.Fatalf("stream answer: %s", line)
			}
		}
		// Still delivering changes, not only heartbeats.
		v.must(200, "POST", "/api/v1/projects/streams/flags/beta/environments/production/toggle", map[string]any{"on": true})
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("no change event on the stream: %v", err)
			}
			if strings.HasPrefix(line, "data: ") && strings.Contains(line, "refetchEvaluation") {
				break
			}
		}
		testkit.Figure(t, "SSE stream open for %v past timeouts of %v (body, headers) and 2s (write)", time.Since(start).Round(time.Millisecond), timeout)
	})
}
