package evaluation

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

func TestBucketLimit(t *testing.T) {
	if bucketLimit%BucketCount != 0 || math.MaxUint64-bucketLimit >= BucketCount {
		t.Fatalf("bucketLimit %d is not the largest multiple of %d below 2^64", bucketLimit, BucketCount)
	}
}

func TestBucketRejection(t *testing.T) {
	var d [sha256.Size]byte
	binary.BigEndian.PutUint64(d[0:], bucketLimit)    // rejected
	binary.BigEndian.PutUint64(d[8:], math.MaxUint64) // rejected
	binary.BigEndian.PutUint64(d[16:], 1234567)       // taken
	if got := bucketOfDigest(&d); got != 34567 {
		t.Fatalf("got %d, want 34567", got)
	}
	binary.BigEndian.PutUint64(d[0:], bucketLimit-1) // the largest accepted word
	if got := bucketOfDigest(&d); got != BucketCount-1 {
		t.Fatalf("got %d, want %d", got, BucketCount-1)
	}
	for i := 0; i < 4; i++ {
		binary.BigEndian.PutUint64(d[8*i:], math.MaxUint64-uint64(i))
	}
	if got, want := bucketOfDigest(&d), int((math.MaxUint64-3)%BucketCount); got != want {
		t.Fatalf("all rejected: got %d, want %d", got, want)
	}
}

// FuzzSemver checks that the allocation-free parser agrees with domain.ParseSemver on what is a
// semantic version and on the order of versions.
func FuzzSemver(f *testing.F) {
	for _, s := range []string{"1.2.3", "v1.2.3", "V1", "1.2", "1.2.3-rc.1", "1.2.3-rc.1+b.2", "1.2.3+b",
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92", "01.2.3", "1.2.3.4", "1..2",
		"1.2.3-", "1.2.3+", "1.2.3-01", "1-2.3", "18446744073709551615.0.0", "18446744073709551616",
		"", "v", "1.2.3 ", "1.0.0-rc-1", "1.2.3-a..b", "1.2-rc.1"} {
		f.Add(s, "1.2.3-rc.1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, oka := parseSemver(a)
		da, err := domain.ParseSemver(a)
		if oka != (err == nil) {
			t.Fatalf("%q: fast parser ok=%v, domain err=%v", a, oka, err)
		}
		vb, okb := parseSemver(b)
		db, err := domain.ParseSemver(b)
		if okb != (err == nil) {
			t.Fatalf("%q: fast parser ok=%v, domain err=%v", b, okb, err)
		}
		if oka && okb {
			if got, want := compareSemver(va, vb), da.Compare(db); got != want {
				t.Fatalf("compare(%q, %q) = %d, domain %d", a, b, got, want)
			}
		}
	})
}

// FuzzParseDate checks that the RFC 3339 fast path accepts only what domain.ParseDate accepts,
// and gives the same instant.
func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2023-05-01T10:00:00Z", "2024-02-29T23:59:59.123456789+01:00",
		"2023-02-29T10:00:00Z", "2023-05-01T24:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
		"2023-05-01T10:00:00+24:00", "2023-05-01T10:00:00.Z", "2023-05-01t10:00:00z", "1970-01-01T00:00:00Z",
		"2023-05-01T10:00:00.1234567891Z", "2023-05-01T10:00:00,5Z", "yesterday"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseDate(s)
		want, wantOK := domain.ParseDate(s)
		if ok != wantOK || (ok && !got.Equal(want)) {
			t.Fatalf("%q: fast %v %v, domain %v %v", s, got, ok, want, wantOK)
		}
		if fast, ok := parseRFC3339Checked(s); ok && !fast.Equal(want) {
			t.Fatalf("%q: fast path %v, domain %v", s, fast, want)
		}
	})
}

func parseRFC3339Checked(s string) (time.Time, bool) {
	if len(s) < 5 || !digits(s[0:4]) || s[4] != '-' {
		return time.Time{}, false
	}
	return parseRFC3339(s)
}
