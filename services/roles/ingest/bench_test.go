package ingest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vexil-flags/vexil/services/roles/ingest"
)

// batchBody is a realistic SDK batch of n events: four evaluations (with attributes, some in an
// experiment) for each goal (with a value), every event with its own event_id and occurred_at,
// as the Go SDK sends them.
func batchBody(n int, at time.Time) []byte {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		id := uuid.Must(uuid.NewV7()).String()
		ts := at.Add(-time.Duration(i) * time.Second).Format(time.RFC3339Nano)
		if i%5 == 4 {
			fmt.Fprintf(&b, `{"kind":"goal","event_id":%q,"occurred_at":%q,"goal_key":"purchase","user_key":"user-%d","value":%d.5}`,
				id, ts, i*7919%10000, i)
			continue
		}
		exp := ""
		if i%2 == 0 {
			exp = `,"experiment_key":"checkout-test"`
		}
		fmt.Fprintf(&b, `{"kind":"evaluation","event_id":%q,"occurred_at":%q,"flag_key":"new-checkout-%d","variation_key":"on","reason":"TARGETING_MATCH","user_key":"user-%d"%s,"attributes":{"country":"DE","plan":"pro","age":%d,"beta":true}}`,
			id, ts, i%10, i*7919%10000, exp, 20+i%50)
	}
	b.WriteString(`],"sdk":{"name":"go","version":"1.4.0"}}`)
	return []byte(b.String())
}

// BenchmarkParse100 is the whole of POST /sdk/v1/events' parsing of a 100-event batch: decode,
// validate, stamp, columnar batch.
func BenchmarkParse100(b *testing.B) {
	body := batchBody(100, now)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		batch, errs, err := ingest.Parse(body, "demo", "production", now, ingest.DefaultLimits)
		if err != nil || len(errs) != 0 || batch.Len() != 100 {
			b.Fatalf("Parse: %v %+v", err, errs)
		}
	}
}

// BenchmarkDecode100 compares the decoders of the batch into the wire events alone (the step
// the fast path chose a decoder for; docs/architecture.md has the figures).
func BenchmarkDecode100(b *testing.B) {
	body := batchBody(100, now)
	for _, d := range ingest.Decoders {
		b.Run(d.Name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if n, ok := d.Decode(body); !ok || n != 100 {
					b.Fatalf("%s decoded %d events (ok %v)", d.Name, n, ok)
				}
			}
		})
	}
}
