package telemetry_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/projections/telemetry"
)

func sampleBatch() *telemetry.Batch {
	b := telemetry.NewBatch("shop", "production", time.Now())
	b.AddEvaluation(telemetry.EvaluationEvent{EventID: telemetry.NewEventID(), OccurredAt: time.Now(), Flag: "checkout",
		Variation: "on", Reason: "SPLIT", User: "ü-1", Experiment: "exp", Attributes: json.RawMessage(`{"a":1}`)})
	b.AddEvaluation(telemetry.EvaluationEvent{EventID: telemetry.NewEventID(), OccurredAt: time.Now().Add(-time.Hour), Flag: "checkout", Count: 70})
	v := -12.5
	b.AddGoal(telemetry.GoalEvent{EventID: telemetry.NewEventID(), OccurredAt: time.Now(), Goal: "purchase", User: "u", Value: &v})
	b.AddGoal(telemetry.GoalEvent{EventID: telemetry.NewEventID(), OccurredAt: time.Now(), Goal: "signup", User: "u"})
	return b
}

// The binary payload round-trips every column; the JSON form decodes to the same batch.
func TestPayloadRoundTrip(t *testing.T) {
	b := sampleBatch()
	payload, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := telemetry.UnmarshalBatch(payload)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, b)
	}
	js, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := telemetry.UnmarshalBatch(js)
	if err != nil || !reflect.DeepEqual(fromJSON, b) {
		t.Fatalf("JSON form: %v\n got %+v\nwant %+v", err, fromJSON, b)
	}
	for n := 0; n < len(payload); n++ {
		if _, err := telemetry.UnmarshalBatch(payload[:n]); err == nil {
			t.Fatalf("a payload cut at %d of %d bytes decoded", n, len(payload))
		}
	}
}

// Any payload decodes to a valid batch or an error, never a panic; a decoded batch encodes back
// to the same bytes.
func FuzzUnmarshalBatch(f *testing.F) {
	payload, _ := sampleBatch().Marshal()
	f.Add(payload)
	f.Add([]byte(`{"v": 1}`))
	f.Add([]byte("VXB\x01"))
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := telemetry.UnmarshalBatch(p)
		if err != nil || p[0] == '{' {
			return
		}
		again, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := telemetry.UnmarshalBatch(again)
		if err != nil || !reflect.DeepEqual(b, b2) {
			t.Fatalf("re-encoded batch differs: %v", err)
		}
	})
}
