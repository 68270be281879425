package datetime

import (
	"testing"
	"time"
)

// FuzzParseDate checks ParseString, and its RFC 3339 fast path alone, against time.Parse with
// time.RFC3339Nano (strings of at most maxLength bytes): the same strings accepted, the same
// instants.
func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2023-05-01T10:00:00Z", "2024-02-29T23:59:59.123456789+01:00",
		"2023-02-29T10:00:00Z", "2023-05-01T24:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
		"2023-05-01T10:00:00+24:00", "2023-05-01T10:00:00.Z", "2023-05-01t10:00:00z", "1970-01-01T00:00:00Z",
		"2023-05-01T10:00:00.1234567891Z", "2023-05-01T10:00:00,5Z", "yesterday"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := time.Parse(time.RFC3339Nano, s)
		wantOK := err == nil && len(s) <= maxLength
		got, ok := ParseString(s)
		if ok != wantOK || (ok && (!got.Equal(want) || got.Location() != time.UTC)) {
			t.Fatalf("%q: ParseString %v %v, time.Parse %v %v", s, got, ok, want, err)
		}
		if fast, ok := parseRFC3339(s); ok && (!wantOK || !fast.Equal(want)) {
			t.Fatalf("%q: fast path %v, time.Parse %v %v", s, fast, want, err)
		}
	})
}
