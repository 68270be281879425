package evaluation

// strSet is the set of a long in-list's strings (setThreshold or more): open addressing with
// linear probing over a table at most half full, keyed by 64-bit FNV-1a. Go's map hashes with
// AES and probes groups of eight slots, which costs several times as much for the short
// strings in-lists hold (country codes, plans, ids). The table is built by Compile from the
// ruleset, so a context value cannot make a probe longer than the table's longest run.
type strSet struct {
	slots []int32 // 1 + the index in strs of the string in that slot; 0 for an empty slot
	strs  []string
	mask  uint64
}

func newStrSet(xs []string) *strSet {
	size := 4
	for size < 2*len(xs) {
		size *= 2
	}
	s := &strSet{slots: make([]int32, size), mask: uint64(size - 1)}
	for _, x := range xs {
		if !s.has(x) {
			s.strs = append(s.strs, x)
			i := fnv1a(x) & s.mask
			for s.slots[i] != 0 {
				i = (i + 1) & s.mask
			}
			s.slots[i] = int32(len(s.strs))
		}
	}
	return s
}

func (s *strSet) has(x string) bool {
	for i := fnv1a(x) & s.mask; ; i = (i + 1) & s.mask {
		j := s.slots[i]
		if j == 0 {
			return false
		}
		if s.strs[j-1] == x {
			return true
		}
	}
}

// fnv1a is the 64-bit FNV-1a hash of s.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
