//go:build !unix

package sdkapi

import (
	"net"
	"time"
)

// heldSocket writes to a held stream's connection. Without unix sockets to write to without
// waiting, a write may wait up to heldOtherWriteTimeout; a client gone is found by a failed write.
type heldSocket = *deadlineSocket

// heldOtherWriteTimeout bounds a write of a held stream where writes may wait.
const heldOtherWriteTimeout = time.Second

type deadlineSocket struct{ c net.Conn }

func newHeldSocket(c net.Conn) (heldSocket, error) { return &deadlineSocket{c: c}, nil }

func (s *deadlineSocket) write(p []byte) (int, error) {
	_ = s.c.SetWriteDeadline(time.Now().Add(heldOtherWriteTimeout))
	return s.c.Write(p)
}

func (s *deadlineSocket) peerGone([]byte) bool { return false }
