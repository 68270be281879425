package edge

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The spool keeps batches in order across a reopen (a restart), refuses past its bound rather
// than dropping, frees room as batches are removed, and forgets writes that never completed.
func TestSpoolBoundOrderAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := s.Append(bytes.Repeat([]byte{byte('a' + i)}, 25)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := s.Append([]byte("x")); !errors.Is(err, errSpoolFull) {
		t.Fatalf("append past the bound: %v", err)
	}
	// A write cut short by a crash: a temporary file, never acknowledged.
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d%s.tmp", 99, spoolSuffix)), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = openSpool(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n, size := s.Depth(); n != 4 || size != 100 {
		t.Fatalf("reopened spool holds %d batches, %d bytes", n, size)
	}
	seqs, payloads, err := s.Oldest(3, 1<<20)
	if err != nil || len(seqs) != 3 {
		t.Fatalf("oldest: %v %v", seqs, err)
	}
	for i, p := range payloads {
		if p[0] != byte('a'+i) {
			t.Fatalf("batch %d is %q: out of order", i, p[:1])
		}
	}
	if err := s.Remove(seqs[:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(bytes.Repeat([]byte{'e'}, 50)); err != nil {
		t.Fatalf("append after removal: %v", err)
	}
	_, payloads, err = s.Oldest(10, 1<<20)
	if err != nil || len(payloads) != 3 || payloads[0][0] != 'c' || payloads[2][0] != 'e' {
		t.Fatalf("after removal: %d batches, %v", len(payloads), err)
	}
	// ForwardBytes bounds a request, but one batch always goes.
	if seqs, _, _ := s.Oldest(10, 1); len(seqs) != 1 {
		t.Fatalf("a byte bound below one batch takes %d batches", len(seqs))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
