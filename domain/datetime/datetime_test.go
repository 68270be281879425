package datetime_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain/datetime"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   any
		want time.Time // zero: not a date
	}{
		{"2025-01-02T03:04:05Z", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2025-01-02T03:04:05.25+02:00", time.Date(2025, 1, 2, 1, 4, 5, 250e6, time.UTC)},
		{1735689600000.0, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{1735689600000.5, time.Date(2025, 1, 1, 0, 0, 0, 500e3, time.UTC)},
		{-1000.0, time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)},
		{int64(1000), time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)},
		{1000, time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)},
		{json.Number("1000"), time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)},
		{"2025-01-02", time.Time{}},
		{"2025-13-02T03:04:05Z", time.Time{}},
		{"next tuesday", time.Time{}},
		{"", time.Time{}},
		{math.NaN(), time.Time{}},
		{math.Inf(1), time.Time{}},
		{1e20, time.Time{}},
		{true, time.Time{}},
		{nil, time.Time{}},
		{json.Number("x"), time.Time{}},
	}
	for _, tc := range tests {
		got, ok := datetime.Parse(tc.in)
		if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
			t.Errorf("Parse(%#v) = %v, %v; want %v", tc.in, got, ok, tc.want)
		}
		if ok && got.Location() != time.UTC {
			t.Errorf("Parse(%#v) not in UTC", tc.in)
		}
	}
}

func TestParseString(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time // zero: not a date
	}{
		{"2024-02-29T23:59:59.123456789+01:00", time.Date(2024, 2, 29, 22, 59, 59, 123456789, time.UTC)},
		{"1970-01-01T00:00:00Z", time.Unix(0, 0).UTC()},
		{"0000-01-01T00:00:00Z", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"9999-12-31T23:59:59-23:59", time.Date(10000, 1, 1, 23, 58, 59, 0, time.UTC)},
		{"2023-05-01T10:00:00+24:00", time.Date(2023, 4, 30, 10, 0, 0, 0, time.UTC)}, // time.Parse takes it
		{"2023-02-29T10:00:00Z", time.Time{}},
		{"2023-05-01T24:00:00Z", time.Time{}},
		{"2023-05-01t10:00:00z", time.Time{}},
		{"2023-05-01T10:00:00.Z", time.Time{}},
		{"2023-05-01T10:00:00", time.Time{}},
		{"yesterday", time.Time{}},
		{"2023-", time.Time{}},
	} {
		got, ok := datetime.ParseString(c.in)
		if ok != !c.want.IsZero() || !got.Equal(c.want) || (ok && got.Location() != time.UTC) {
			t.Errorf("ParseString(%q) = %v, %v; want %v", c.in, got, ok, c.want)
		}
	}
}

// sinkTime and sinkOK keep the results of the allocation test, so that the call is not dropped.
var (
	sinkTime time.Time
	sinkOK   bool
)

// The evaluator parses date attributes with ParseString on the hot path.
func TestParseStringDoesNotAllocate(t *testing.T) {
	for _, s := range []string{"2024-05-01T12:00:00Z", "2024-05-01T12:00:00.25+02:00", "next tuesday"} {
		if n := testing.AllocsPerRun(100, func() { sinkTime, sinkOK = datetime.ParseString(s) }); n != 0 {
			t.Errorf("ParseString(%q) allocates %v times", s, n)
		}
	}
}
