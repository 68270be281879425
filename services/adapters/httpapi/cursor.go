package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"

	"github.com/vexil-flags/vexil/domain"
)

// Cursors seal the positions that list queries page from (the last key, id or time of a page)
// into opaque cursors, and open them again. A cursor is base64url of a version byte, a 128-bit
// HMAC-SHA256 tag and the position; the tag covers the version, the list it was made for and the
// position, under a key of the installation. So a client can neither build nor alter a cursor,
// nor carry one to another list: whatever it sends, a query only ever sees a position this
// installation produced, and anything else is a 400 about "cursor".
type Cursors struct{ key []byte }

const (
	cursorVersion = 1
	cursorTagLen  = 16
	// MaxCursorChars bounds a cursor as sent; the positions inside are keys, ids and times.
	MaxCursorChars = 1024
)

// NewCursors returns cursors signed with key (at least 32 bytes of secret).
func NewCursors(key []byte) *Cursors { return &Cursors{key: append([]byte(nil), key...)} }

func (cs *Cursors) tag(list, position string) []byte {
	m := hmac.New(sha256.New, cs.key)
	m.Write([]byte{cursorVersion})
	m.Write([]byte(list))
	m.Write([]byte{0})
	m.Write([]byte(position))
	return m.Sum(nil)[:cursorTagLen]
}

// Seal turns the position after which the next page of list starts into a cursor; "" (no next
// page) stays "".
func (cs *Cursors) Seal(list, position string) string {
	if position == "" {
		return ""
	}
	b := make([]byte, 0, 1+cursorTagLen+len(position))
	b = append(b, cursorVersion)
	b = append(b, cs.tag(list, position)...)
	b = append(b, position...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Open returns the position in cursor, which must have been sealed for list; "" stays "".
func (cs *Cursors) Open(list, cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	bad := domain.Invalid("cursor", "malformed cursor; pass next_cursor from the previous page of this list")
	if len(cursor) > MaxCursorChars {
		return "", bad
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) <= 1+cursorTagLen || b[0] != cursorVersion {
		return "", bad
	}
	position := string(b[1+cursorTagLen:])
	if !hmac.Equal(b[1:1+cursorTagLen], cs.tag(list, position)) || CheckText(position, MaxCursorChars) != "" {
		return "", bad
	}
	return position, nil
}
