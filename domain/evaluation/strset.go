package evaluation

// strSet is the set of a long in-list's strings (setThreshold or more): open addressing with
// linear probing over a table at most half full, keyed by strHash. A Go map calls its hash
// function through a pointer and probes groups of eight slots, which costs several times as
// much for the short strings in-lists hold (country codes, plans, ids). The table is built by
// Compile from the ruleset, so a context value cannot make a probe longer than the table's
// longest run.
type strSet struct {
	slots []int32 // 1 + the index in strs of the string in that slot; 0 for an empty slot
	strs  []string
	mask  uint64
	shift uint8
}

// tableSize returns the number of slots (a power of two, at least twice n) and the shift that
// turns a strHash into a slot.
func tableSize(n int) (size int, shift uint8) {
	size, shift = 4, 62
	for size < 2*n {
		size, shift = size*2, shift-1
	}
	return size, shift
}

func newStrSet(xs []string) *strSet {
	size, shift := tableSize(len(xs))
	s := &strSet{slots: make([]int32, size), mask: uint64(size - 1), shift: shift}
	for _, x := range xs {
		if !s.has(x) {
			s.strs = append(s.strs, x)
			i := strHash(x) >> s.shift
			for s.slots[i] != 0 {
				i = (i + 1) & s.mask
			}
			s.slots[i] = int32(len(s.strs))
		}
	}
	return s
}

func (s *strSet) has(x string) bool {
	for i := strHash(x) >> s.shift; ; i = (i + 1) & s.mask {
		j := s.slots[i]
		if j == 0 {
			return false
		}
		if s.strs[j-1] == x {
			return true
		}
	}
}

// strHash hashes s eight bytes at a time with a multiply-xorshift mix (as FxHash and wyhash
// do), the last one to eight bytes in two overlapping loads. A multiplication carries every
// input bit into the high bits only, so tables index with the top bits (slot). It needs no seed: the tables it
// indexes are built from the ruleset, and a lookup stops at the first empty slot, so no input
// can cost more than a scan of the table's longest run.
func strHash(s string) uint64 {
	h := uint64(len(s)) * 0x9e3779b97f4a7c15
	for ; len(s) > 8; s = s[8:] {
		h = (h ^ load64(s)) * 0xbf58476d1ce4e5b9
		h ^= h >> 31
	}
	var w uint64
	switch n := len(s); {
	case n >= 4:
		w = uint64(load32(s)) | uint64(load32(s[n-4:]))<<32
	case n > 0:
		w = uint64(s[0]) | uint64(s[n/2])<<8 | uint64(s[n-1])<<16
	}
	return (h ^ w) * 0x94d049bb133111eb
}

// load64 and load32 read s little-endian; the compiler makes each one load.
func load64(s string) uint64 {
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func load32(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}
