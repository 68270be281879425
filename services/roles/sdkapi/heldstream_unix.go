//go:build unix

package sdkapi

import (
	"errors"
	"net"
	"syscall"
)

// heldSocket writes to a held stream's socket and finds a client gone, without ever waiting: one
// shard goroutine serves thousands of streams and must not stall behind one slow client.
type heldSocket = *rawSocket

type rawSocket struct{ rc syscall.RawConn }

func newHeldSocket(c net.Conn) (heldSocket, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("the connection has no socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &rawSocket{rc: rc}, nil
}

// write writes what the socket takes now (the socket is non-blocking, as the Go runtime keeps
// every network socket) and returns how much that was.
func (s *rawSocket) write(p []byte) (int, error) {
	n := 0
	var werr error
	err := s.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, err := syscall.Write(int(fd), p[n:])
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return true // full: the rest is kept for later, never waited for
			case err != nil:
				werr = err
				return true
			case m <= 0:
				return true
			}
			n += m
		}
		return true
	})
	if err != nil {
		return n, err
	}
	return n, werr
}

// peerGone reports whether the client closed its end (or the connection failed). A client has
// nothing to send on a stream: what it sends anyway is read into buf and discarded.
func (s *rawSocket) peerGone(buf []byte) bool {
	gone := false
	err := s.rc.Read(func(fd uintptr) bool {
		for range 16 { // bounded: a client that keeps sending is read at the next heartbeat again
			n, err := syscall.Read(int(fd), buf)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return true // open, nothing to read
			case err != nil || n == 0:
				gone = true // reset, or end of file
				return true
			}
		}
		return true
	})
	return gone || err != nil
}
