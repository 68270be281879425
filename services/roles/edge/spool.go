package edge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// errSpoolFull is returned by Append when the spool holds its bound: the edge refuses new events
// (503 with Retry-After) rather than drop accepted ones.
var errSpoolFull = errors.New("edge: the event spool is full")

// spool is a bounded queue of telemetry batches on local disk, oldest first: one file per batch
// (its stream encoding), named by a sequence number. A batch is on disk (fsync'd, then renamed
// into place) before the SDK hears 202, and its file is removed only after the core accepted it,
// so a crash loses nothing accepted; a batch sent twice is stored once at the core (event ids).
type spool struct {
	dir      string
	maxBytes int64

	mu    sync.Mutex
	next  uint64           // sequence number of the next batch
	files map[uint64]int64 // sequence -> size of every batch held
	bytes int64
	wake  chan struct{} // one slot: a batch was appended
}

const spoolSuffix = ".batch"

// openSpool opens (creating) dir and takes over the batches a previous run left there.
func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("edge: spool directory: %w", err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes, files: map[uint64]int64{}, wake: make(chan struct{}, 1)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("edge: read spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(dir, name)) // a write that never completed: never acknowledged
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, spoolSuffix), 10, 64)
		if err != nil || !strings.HasSuffix(name, spoolSuffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("edge: spool file %s: %w", name, err)
		}
		s.files[seq] = info.Size()
		s.bytes += info.Size()
		s.next = max(s.next, seq+1)
	}
	return s, nil
}

func (s *spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, spoolSuffix))
}

// Append stores one batch durably; errSpoolFull when it would pass the bound.
func (s *spool) Append(payload []byte) error {
	s.mu.Lock()
	if s.bytes+int64(len(payload)) > s.maxBytes {
		s.mu.Unlock()
		return errSpoolFull
	}
	seq := s.next
	s.next++
	// Reserve the room now, so concurrent appends cannot pass the bound together.
	s.bytes += int64(len(payload))
	s.mu.Unlock()
	if err := writeFileSync(s.path(seq), payload); err != nil {
		s.mu.Lock()
		s.bytes -= int64(len(payload))
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	s.files[seq] = int64(len(payload))
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Oldest returns the sequence numbers and contents of the oldest batches, up to n of them and
// about maxBytes in all (at least one).
func (s *spool) Oldest(n int, maxBytes int64) ([]uint64, [][]byte, error) {
	s.mu.Lock()
	seqs := make([]uint64, 0, len(s.files))
	for seq := range s.files {
		seqs = append(seqs, seq)
	}
	s.mu.Unlock()
	slices.Sort(seqs)
	var out [][]byte
	var taken []uint64
	var size int64
	for _, seq := range seqs {
		if len(taken) == n || (len(taken) > 0 && size >= maxBytes) {
			break
		}
		b, err := os.ReadFile(s.path(seq))
		if err != nil {
			return nil, nil, fmt.Errorf("edge: read spooled batch %d: %w", seq, err)
		}
		taken = append(taken, seq)
		out = append(out, b)
		size += int64(len(b))
	}
	return taken, out, nil
}

// Remove drops batches the core accepted.
func (s *spool) Remove(seqs []uint64) error {
	var errs []error
	for _, seq := range seqs {
		if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		s.bytes -= s.files[seq]
		delete(s.files, seq)
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Depth is the number of batches and bytes held.
func (s *spool) Depth() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files), s.bytes
}

// writeFileSync writes b to path atomically and durably: a temporary file, fsync, rename, and an
// fsync of the directory so the rename survives a power cut.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("edge: write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("edge: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("edge: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("edge: close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("edge: rename %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
