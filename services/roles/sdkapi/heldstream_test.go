package sdkapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Tests of the held (hijacked) HTTP/1.1 streams: the wire stays what net/http sent, and a held
// stream still ends when its client goes, when its key goes, and when the server stops.

// rawStream opens a stream over a plain TCP connection and reads its response headers.
func (f *streamFixture) rawStream(t *testing.T) (net.Conn, *http.Response) {
	t.Helper()
	addr := strings.TrimPrefix(f.base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // bounds a failing test only
	if _, err := io.WriteString(c, "GET /sdk/v1/stream?key="+testClientKey+" HTTP/1.1\r\nHost: vexil\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, res
}

func (f *streamFixture) streams() int {
	return f.snaps.environment(envID{testProject, testEnv}, false).hub.count()
}

// readUntil reads body lines until one starts with prefix.
func readUntil(t *testing.T, br *bufio.Reader, prefix string) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended before %q: %v", prefix, err)
		}
		if strings.HasPrefix(line, prefix) {
			return
		}
	}
}

func TestHeldStreamSpeaksChunkedSSEWithHeartbeats(t *testing.T) {
	f := newStreamFixtureWith(t, Options{Heartbeat: 20 * time.Millisecond})
	_, res := f.rawStream(t)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" ||
		res.Header.Get("X-Accel-Buffering") != "no" || len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" {
		t.Fatalf("answer %d, headers %v, transfer encoding %v", res.StatusCode, res.Header, res.TransferEncoding)
	}
	br := bufio.NewReader(res.Body) // net/http's chunked reader: the framing must be valid
	readUntil(t, br, ": connected to "+testEnv)
	readUntil(t, br, ": heartbeat")
	if n := f.streams(); n != 1 {
		t.Fatalf("%d streams held, want 1", n)
	}
	f.rs.toggle("banner")
	f.publish()
	readUntil(t, br, "data: ")
}

func TestHeldStreamEndsWhenItsClientGoes(t *testing.T) {
	f := newStreamFixtureWith(t, Options{Heartbeat: 20 * time.Millisecond})
	ended := make(chan struct{}, 1)
	f.srv.held.ended = func() { ended <- struct{}{} }
	c, res := f.rawStream(t)
	readUntil(t, bufio.NewReader(res.Body), ": connected")
	if n := f.streams(); n != 1 {
		t.Fatalf("%d streams held, want 1", n)
	}
	c.Close()
	select {
	case <-ended: // found at a heartbeat
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a client that went away was not ended")
	}
	if n := f.streams(); n != 0 {
		t.Fatalf("%d streams held after their client went, want 0", n)
	}
}

func TestStopStreamsEndsHeldStreamsCleanly(t *testing.T) {
	f := newStreamFixture(t)
	_, res := f.rawStream(t)
	br := bufio.NewReader(res.Body)
	readUntil(t, br, ": connected")
	f.srv.StopStreams()
	// The body ends with the last chunk: a clean end, not a dropped connection.
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
	if n := f.streams(); n != 0 {
		t.Fatalf("%d streams held after StopStreams, want 0", n)
	}
	// A stream opened after the stop ends at once.
	_, res = f.rawStream(t)
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatalf("a stream opened after the stop: %v", err)
	}
}
