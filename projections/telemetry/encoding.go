package telemetry

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
)

// The stream payload of a Batch is binary: the projector decodes thousands of events per second
// on a small machine, and JSON decoding cost more than the insert. Layout (little endian,
// strings and slices prefixed with their uvarint length, times as varint microseconds since the
// Unix epoch):
//
//	"VXB" version(1 byte) id(16) project environment received_at
//	evaluations: n ids(16n) occurred_at(n) flag(n) variation(n) reason(n) user(n) experiment(n) attributes(n) count(n uvarint)
//	goals:       m ids(16m) occurred_at(m) goal(m) user(m) has_value(m bytes) value(m float64 bits)
//
// UnmarshalBatch also reads the JSON form of a Batch (a payload starting with '{'), handy to
// inject a batch by hand.
const payloadMagic = "VXB"

// Marshal encodes the batch as a stream message payload.
func (b *Batch) Marshal() ([]byte, error) {
	e, g := &b.Evaluations, &b.Goals
	size := 64 + len(b.Project) + len(b.Environment) + 16*(len(e.EventID)+len(g.EventID)) + 24*len(g.EventID)
	for i := range e.EventID {
		size += 40 + len(e.Flag[i]) + len(e.Variation[i]) + len(e.Reason[i]) + len(e.User[i]) + len(e.Experiment[i]) + len(e.Attributes[i])
	}
	for i := range g.Goal {
		size += 8 + len(g.Goal[i]) + len(g.User[i])
	}
	out := make([]byte, 0, size)
	out = append(out, payloadMagic...)
	out = append(out, byte(b.Version))
	out = append(out, b.ID[:]...)
	out = appendString(out, b.Project)
	out = appendString(out, b.Environment)
	out = binary.AppendVarint(out, b.ReceivedAt.UnixMicro())

	out = appendIDs(out, e.EventID)
	out = appendTimes(out, e.OccurredAt)
	for _, col := range [][]string{e.Flag, e.Variation, e.Reason, e.User, e.Experiment, e.Attributes} {
		out = appendStrings(out, col)
	}
	out = binary.AppendUvarint(out, uint64(len(e.Count)))
	for _, n := range e.Count {
		out = binary.AppendVarint(out, int64(n))
	}

	out = appendIDs(out, g.EventID)
	out = appendTimes(out, g.OccurredAt)
	out = appendStrings(out, g.Goal)
	out = appendStrings(out, g.User)
	out = binary.AppendUvarint(out, uint64(len(g.HasValue)))
	for _, h := range g.HasValue {
		if h {
			out = append(out, 1)
		} else {
			out = append(out, 0)
		}
	}
	out = binary.AppendUvarint(out, uint64(len(g.Value)))
	for _, v := range g.Value {
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
	}
	return out, nil
}

func appendString(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}

func appendStrings(out []byte, col []string) []byte {
	out = binary.AppendUvarint(out, uint64(len(col)))
	for _, s := range col {
		out = appendString(out, s)
	}
	return out
}

func appendIDs(out []byte, ids IDs) []byte {
	out = binary.AppendUvarint(out, uint64(len(ids)))
	for i := range ids {
		out = append(out, ids[i][:]...)
	}
	return out
}

func appendTimes(out []byte, ts Times) []byte {
	out = binary.AppendUvarint(out, uint64(len(ts)))
	for _, t := range ts {
		out = binary.AppendVarint(out, t.UnixMicro())
	}
	return out
}

// UnmarshalBatch decodes and checks a stream message payload. Every error means the payload can
// never be stored as it is (a consumer dead-letters it).
func UnmarshalBatch(payload []byte) (*Batch, error) {
	var b Batch
	if len(payload) > 0 && payload[0] == '{' {
		if err := json.Unmarshal(payload, &b); err != nil {
			return nil, fmt.Errorf("telemetry: decode batch: %w", err)
		}
	} else if err := decodeBatch(payload, &b); err != nil {
		return nil, fmt.Errorf("telemetry: decode batch: %w", err)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

var errTruncated = errors.New("truncated or corrupt payload")

// reader reads the binary payload; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errTruncated
	}
	r.b = nil
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length, refusing one larger than what could follow (each element is at least
// minSize bytes) or than MaxBatchEvents.
func (r *reader) count(minSize int) int {
	n := r.uvarint()
	if r.err != nil || n > MaxBatchEvents || n*uint64(minSize) > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) string() string { return string(r.bytes(int(min(r.uvarint(), math.MaxInt32)))) }

func (r *reader) strings() []string {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.string()
	}
	return out
}

func (r *reader) ids() IDs {
	n := r.count(16)
	if n == 0 {
		return nil
	}
	raw := r.bytes(16 * n)
	if r.err != nil {
		return nil
	}
	out := make(IDs, n)
	for i := range out {
		out[i] = uuid.UUID(raw[16*i : 16*i+16])
	}
	return out
}

func (r *reader) times() Times {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	out := make(Times, n)
	for i := range out {
		out[i] = time.UnixMicro(r.varint()).UTC()
	}
	return out
}

func decodeBatch(p []byte, b *Batch) error {
	if len(p) < len(payloadMagic)+1+16 || string(p[:len(payloadMagic)]) != payloadMagic {
		return errors.New("not a telemetry batch payload")
	}
	r := &reader{b: p[len(payloadMagic):]}
	b.Version = int(r.bytes(1)[0]) // the length check above guarantees version and id
	b.ID = uuid.UUID(r.bytes(16))
	b.Project, b.Environment = r.string(), r.string()
	b.ReceivedAt = time.UnixMicro(r.varint()).UTC()

	e, g := &b.Evaluations, &b.Goals
	e.EventID, e.OccurredAt = r.ids(), r.times()
	e.Flag, e.Variation, e.Reason, e.User, e.Experiment, e.Attributes = r.strings(), r.strings(), r.strings(), r.strings(), r.strings(), r.strings()
	if n := r.count(1); n > 0 {
		e.Count = make([]int32, n)
		for i := range e.Count {
			v := r.varint()
			if v < math.MinInt32 || v > math.MaxInt32 {
				r.fail()
			}
			e.Count[i] = int32(v)
		}
	}
	g.EventID, g.OccurredAt, g.Goal, g.User = r.ids(), r.times(), r.strings(), r.strings()
	if n := r.count(1); n > 0 {
		g.HasValue = make([]bool, n)
		for i, c := range r.bytes(n) {
			g.HasValue[i] = c != 0
		}
	}
	if n := r.count(8); n > 0 {
		raw := r.bytes(8 * n)
		g.Value = make([]float64, n)
		for i := range g.Value {
			if r.err == nil {
				g.Value[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		}
	}
	if r.err == nil && len(r.b) != 0 {
		return errors.New("trailing bytes after the batch")
	}
	return r.err
}
