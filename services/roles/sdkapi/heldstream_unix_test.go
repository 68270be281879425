//go:build unix

package sdkapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A held stream's writes never wait (heldstream_unix.go): what a client does not read is kept,
// and a client that stops reading is dropped.
func TestHeldStreamDropsAClientThatStopsReading(t *testing.T) {
	f := newStreamFixtureWith(t, Options{Heartbeat: 20 * time.Millisecond})
	ended := make(chan struct{}, 1)
	f.srv.held.ended = func() { ended <- struct{}{} }
	// A client with a small receive buffer that reads its headers and then nothing.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) }); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /sdk/v1/stream HTTP/1.1\r\nHost: vexil\r\nAuthorization: Bearer "+testServerKey+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Fatal(err)
	}
	// The server's side too takes little before its writes would wait.
	var held *heldStream
	for _, sh := range f.srv.held.shards {
		sh.mu.Lock()
		for hs := range sh.streams {
			held = hs
		}
		sh.mu.Unlock()
	}
	if held == nil {
		t.Fatal("no held stream")
	}
	if err := held.conn.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	// Changes until the stream is dropped; each is an event of a few hundred bytes.
	for i := 0; ; i++ {
		select {
		case <-ended:
			if n := f.streams(); n != 0 {
				t.Fatalf("%d streams held after the client stopped reading, want 0", n)
			}
			return
		default:
		}
		if i == 100000 {
			t.Fatal("a client that stopped reading was never dropped")
		}
		f.rs.toggle("ops-mode")
		f.publish()
		runtime.Gosched()
	}
}
