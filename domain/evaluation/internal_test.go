package evaluation

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strings"
	"testing"
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

// FuzzStrSet compares the long in-lists' set with a map: the same answer for every query, with
// duplicates, the empty string and shared prefixes in the list.
func FuzzStrSet(f *testing.F) {
	f.Add("NL,BE,DE,FR,US,CA,X00,X01,X02,,NL", "NL")
	f.Add("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "q")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, list, query string) {
		xs := strings.Split(list, ",")
		set, want := newStrSet(xs), map[string]bool{}
		for _, x := range xs {
			want[x] = true
		}
		for _, q := range append(xs, query, query+"x", "", "a longer string than any in the list") {
			if set.has(q) != want[q] {
				t.Fatalf("list %q: has(%q) = %v", list, q, set.has(q))
			}
		}
	})
}
