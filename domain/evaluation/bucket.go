package evaluation

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strconv"
)

// Bucket returns the bucket in [0, BucketCount) of value for a split hashed with seed (the flag
// key, or the split's seed when it has one) and salt (the flag's salt). The algorithm is part of
// Vexil's contract with every SDK and must never change (BUCKETING.md has test vectors):
//
//  1. input = UTF-8(seed) || 0x00 || UTF-8(salt) || 0x00 || UTF-8(value). The NUL separators
//     keep the encoding unambiguous: keys may contain "." but no key or salt contains NUL.
//  2. d = SHA-256(input), 32 bytes.
//  3. For i = 0, 1, 2, 3: u = d[8i:8i+8] read as a big-endian unsigned 64-bit integer; the first
//     u below 18446744073709500000 (the largest multiple of 100000 not above 2^64) gives the
//     bucket u mod 100000. This rejection removes the modulo bias; a word is rejected with
//     probability 2.8e-15, and if all four are (probability 6e-59), the last word mod 100000 is
//     used.
//
// A numeric bucket-by value is hashed as its decimal integer form ("42", "-7"); see the package
// documentation for which values can be bucketed.
func Bucket(seed, salt, value string) int {
	return bucketOf(seed, salt, value, 0, false)
}

// bucketLimit is the largest multiple of BucketCount not above 2^64: words at or above it are
// rejected, so that every bucket has exactly the same number of preimages.
// 2^64 = 184467440737095 * 100000 + 51616.
const bucketLimit uint64 = 18446744073709500000

// bucketOf hashes seed, salt and either the string s or, when isNum, the integer n. The input
// is assembled in a stack buffer, so the common case does not allocate. The evaluator uses
// bucketOfPrefix, with the seed and salt joined once by Compile; this straightforward form is
// what Bucket (and so the tests' oracle) uses.
func bucketOf(seed, salt, s string, n int64, isNum bool) int {
	var arr [256]byte
	need := len(seed) + len(salt) + 2 + len(s)
	if isNum {
		need = len(seed) + len(salt) + 2 + 20
	}
	b := arr[:0]
	if need > len(arr) {
		b = make([]byte, 0, need)
	}
	b = append(b, seed...)
	b = append(b, 0)
	b = append(b, salt...)
	b = append(b, 0)
	if isNum {
		b = strconv.AppendInt(b, n, 10)
	} else {
		b = append(b, s...)
	}
	d := sha256.Sum256(b)
	return bucketOfDigest(&d)
}

// bucketPrefix is the start of a split's hash input, seed || 0x00 || salt || 0x00, which
// Compile builds once per split.
func bucketPrefix(seed, salt string) string { return seed + "\x00" + salt + "\x00" }

// bucketOfPrefix is bucketOf with the seed and salt already joined by bucketPrefix.
func bucketOfPrefix(prefix, s string, n int64, isNum bool) int {
	var arr [256]byte
	need := len(prefix) + len(s)
	if isNum {
		need = len(prefix) + 20
	}
	b := arr[:0]
	if need > len(arr) {
		b = make([]byte, 0, need)
	}
	b = append(b, prefix...)
	if isNum {
		b = strconv.AppendInt(b, n, 10)
	} else {
		b = append(b, s...)
	}
	d := sha256.Sum256(b)
	return bucketOfDigest(&d)
}

func bucketOfDigest(d *[sha256.Size]byte) int {
	var u uint64
	for i := 0; i < 4; i++ {
		u = binary.BigEndian.Uint64(d[8*i:])
		if u < bucketLimit {
			break
		}
	}
	return int(u % BucketCount)
}

// maxSafeInteger is the largest integer every JSON implementation (IEEE doubles) holds exactly.
const maxSafeInteger = 1 << 53

// bucketNumber reports whether f can be bucketed (an integer, |f| <= 2^53) and as which integer.
func bucketNumber(f float64) (int64, bool) {
	if f != math.Trunc(f) || f > maxSafeInteger || f < -maxSafeInteger {
		return 0, false // also NaN and infinities
	}
	return int64(f), true
}
