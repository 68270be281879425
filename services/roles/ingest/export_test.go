package ingest

import (
	"encoding/json"

	gojson "github.com/goccy/go-json"
)

// ParseSlow is the event-by-event path of Parse, which tests compare with the fast path.
var ParseSlow = parseSlow

// ValidKey is the key check of events.
var ValidKey = validKey

// Decoders are the candidate decoders of a batch into wire events, which BenchmarkDecode100
// compares; Decode returns how many events it decoded.
var Decoders = []struct {
	Name   string
	Decode func(body []byte) (int, bool)
}{
	{"encoding-json", func(body []byte) (int, bool) {
		var wb struct{ Events []*wireEvent }
		err := json.Unmarshal(body, &wb)
		return len(wb.Events), err == nil
	}},
	{"goccy-go-json", func(body []byte) (int, bool) {
		var wb struct{ Events []*wireEvent }
		err := gojson.Unmarshal(body, &wb)
		return len(wb.Events), err == nil
	}},
}
