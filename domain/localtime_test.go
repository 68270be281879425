package domain_test

import (
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // the zones these tests name, whatever the host has

	"github.com/vexil-flags/vexil/domain"
)

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// Europe/Paris changes in 2026 on Sunday 29 March (02:00 CET -> 03:00 CEST) and Sunday 25 October
// (03:00 CEST -> 02:00 CET); America/New_York on Sunday 8 March and Sunday 1 November.
func TestResolveLocal(t *testing.T) {
	tests := []struct {
		zone      string
		local     string // 2006-01-02T15:04
		want      string // RFC 3339 UTC
		resolving domain.LocalResolution
	}{
		{"Europe/Paris", "2026-12-24T09:00", "2026-12-24T08:00:00Z", domain.LocalExact},
		{"Europe/Paris", "2026-07-14T09:00", "2026-07-14T07:00:00Z", domain.LocalExact},
		{"Europe/Paris", "2026-03-28T09:00", "2026-03-28T08:00:00Z", domain.LocalExact}, // the day before
		{"Europe/Paris", "2026-03-30T09:00", "2026-03-30T07:00:00Z", domain.LocalExact}, // the day after
		{"Europe/Paris", "2026-10-24T09:00", "2026-10-24T07:00:00Z", domain.LocalExact},
		{"Europe/Paris", "2026-10-26T09:00", "2026-10-26T08:00:00Z", domain.LocalExact},
		{"Europe/Paris", "2026-03-29T01:59", "2026-03-29T00:59:00Z", domain.LocalExact},
		{"Europe/Paris", "2026-03-29T02:00", "2026-03-29T01:00:00Z", domain.LocalNonexistent}, // = 03:00 CEST
		{"Europe/Paris", "2026-03-29T02:30", "2026-03-29T01:30:00Z", domain.LocalNonexistent}, // = 03:30 CEST
		{"Europe/Paris", "2026-03-29T03:00", "2026-03-29T01:00:00Z", domain.LocalExact},
		{"Europe/Paris", "2026-10-25T02:30", "2026-10-25T00:30:00Z", domain.LocalAmbiguous}, // the first 02:30 (CEST)
		{"Europe/Paris", "2026-10-25T02:00", "2026-10-25T00:00:00Z", domain.LocalAmbiguous},
		{"Europe/Paris", "2026-10-25T03:00", "2026-10-25T02:00:00Z", domain.LocalExact},
		{"America/New_York", "2026-03-08T02:30", "2026-03-08T07:30:00Z", domain.LocalNonexistent},
		{"America/New_York", "2026-11-01T01:30", "2026-11-01T05:30:00Z", domain.LocalAmbiguous},
		{"America/New_York", "2026-11-02T09:00", "2026-11-02T14:00:00Z", domain.LocalExact},
		{"Australia/Sydney", "2026-04-05T02:30", "2026-04-04T15:30:00Z", domain.LocalAmbiguous}, // AEDT ends
		{"Asia/Kolkata", "2026-12-24T09:00", "2026-12-24T03:30:00Z", domain.LocalExact},
		{"UTC", "2026-12-24T09:00", "2026-12-24T09:00:00Z", domain.LocalExact},
	}
	for _, tc := range tests {
		t.Run(tc.zone+" "+tc.local, func(t *testing.T) {
			l, err := time.Parse("2006-01-02T15:04", tc.local)
			if err != nil {
				t.Fatal(err)
			}
			got, how := domain.ResolveLocal(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), 0, zone(t, tc.zone))
			if !got.Equal(utc(tc.want)) || how != tc.resolving {
				t.Fatalf("got %s (%s), want %s (%s)", got.UTC().Format(time.RFC3339), how, tc.want, tc.resolving)
			}
			if got.Location().String() != tc.zone {
				t.Fatalf("result in %s, want the zone %s", got.Location(), tc.zone)
			}
		})
	}
}

func TestParseScheduleTime(t *testing.T) {
	tests := []struct {
		at, zone string
		want     string // RFC 3339 UTC; empty: the zero time
		field    string // the error's field; empty: no error
	}{
		{"2026-12-24T09:00:00Z", "", "2026-12-24T09:00:00Z", ""},
		{"2026-12-24T09:00:00+01:00", "", "2026-12-24T08:00:00Z", ""},
		{"2026-12-24T09:00:00+01:00", "America/New_York", "2026-12-24T08:00:00Z", ""}, // the offset names the instant
		{"2026-12-24T09:00", "Europe/Paris", "2026-12-24T08:00:00Z", ""},
		{"2026-12-24T09:00:00", "Europe/Paris", "2026-12-24T08:00:00Z", ""},
		{"2026-10-26T09:00", "Europe/Paris", "2026-10-26T08:00:00Z", ""},
		{"", "", "", ""},
		{"", "Europe/Paris", "", ""},
		{"2026-12-24T09:00:00", "", "", "at"}, // issue 20, defect 4
		{"2026-12-24T09:00", "", "", "at"},
		{"tomorrow", "Europe/Paris", "", "at"},
		{"2026-12-24", "Europe/Paris", "", "at"},
		{"2026-12-24T09:00", "Europe/Parls", "", "time_zone"},
		{"2026-12-24T09:00", "Local", "", "time_zone"},
		{"2026-12-24T09:00", "../../etc/passwd", "", "time_zone"},
		{"2026-12-24T09:00", "+01:00", "", "time_zone"},
	}
	for _, tc := range tests {
		got, err := domain.ParseScheduleTime(tc.at, tc.zone)
		if tc.field != "" {
			if f := errorField(err); f != tc.field || domain.ErrorCode(err) != domain.EInvalid {
				t.Errorf("ParseScheduleTime(%q, %q): error %v at %q, want EInvalid at %q", tc.at, tc.zone, err, f, tc.field)
			}
			continue
		}
		if err != nil || (tc.want == "" && !got.IsZero()) || (tc.want != "" && (!got.Equal(utc(tc.want)) || got.Location() != time.UTC)) {
			t.Errorf("ParseScheduleTime(%q, %q) = %v, %v; want %s", tc.at, tc.zone, got, err, tc.want)
		}
	}
	_, err := domain.ParseScheduleTime("2026-12-24T09:00:00", "")
	if msg := domain.ErrorMessage(err); msg != `at "2026-12-24T09:00:00" has no UTC offset: add one (2026-12-24T09:00:00Z or 2026-12-24T09:00:00+01:00) or name its time zone in time_zone ("Europe/Paris")` {
		t.Errorf("the message of a time without offset: %s", msg)
	}
}

func errorField(err error) string {
	if de, ok := err.(*domain.Error); ok {
		return de.Field
	}
	return ""
}

func TestRecurrenceOccurrences(t *testing.T) {
	weekdays := domain.Recurrence{Weekdays: []string{"mon", "tue", "wed", "thu", "fri"}, Time: "18:00"}
	paris := zone(t, "Europe/Paris")
	tests := []struct {
		name string
		r    domain.Recurrence
		loc  *time.Location
		from string
		want []string
	}{
		{"weekdays across the weekend and the end of summer time", weekdays, paris, "2026-10-22T15:00:00Z",
			[]string{"2026-10-22T16:00:00Z", "2026-10-23T16:00:00Z", "2026-10-26T17:00:00Z", "2026-10-27T17:00:00Z", "2026-10-28T17:00:00Z"}},
		{"from an occurrence: it is the first", weekdays, paris, "2026-10-23T16:00:00Z",
			[]string{"2026-10-23T16:00:00Z", "2026-10-26T17:00:00Z", "2026-10-27T17:00:00Z", "2026-10-28T17:00:00Z", "2026-10-29T17:00:00Z"}},
		{"one day a week", domain.Recurrence{Weekdays: []string{"sun"}, Time: "02:30"}, paris, "2026-03-20T00:00:00Z",
			// 29 March has no 02:30 (moved to 03:30 CEST), 25 October has two (the first)
			[]string{"2026-03-22T01:30:00Z", "2026-03-29T01:30:00Z", "2026-04-05T00:30:00Z", "2026-04-12T00:30:00Z", "2026-04-19T00:30:00Z"}},
		{"every day in UTC", domain.Recurrence{Weekdays: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, Time: "00:00"}, time.UTC,
			"2026-12-31T12:00:00Z", []string{"2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z", "2027-01-03T00:00:00Z", "2027-01-04T00:00:00Z", "2027-01-05T00:00:00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range tc.r.Occurrences(utc(tc.from), tc.loc, 5) {
				got = append(got, o.UTC().Format(time.RFC3339))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

var fuzzZones = []string{"Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia",
	"America/Sao_Paulo", "Africa/Casablanca", "UTC"}

// ResolveLocal keeps the wall time when it exists, picks the earlier of two, and moves a skipped
// one forward by less than a day; the result is always an instant in the zone.
func FuzzResolveLocal(f *testing.F) {
	f.Add(2026, 3, 29, 2, 30, 0)
	f.Add(2026, 10, 25, 2, 30, 0)
	f.Add(2011, 12, 30, 9, 0, 4) // Samoa skipped 30 December 2011
	f.Fuzz(func(t *testing.T, year, month, day, hour, minute, zi int) {
		if year < 1900 || year > 2200 || month < 1 || month > 12 || day < 1 || day > 28 || hour < 0 || hour > 23 ||
			minute < 0 || minute > 59 || zi < 0 {
			t.Skip()
		}
		loc := zone(t, fuzzZones[zi%len(fuzzZones)])
		got, how := domain.ResolveLocal(year, time.Month(month), day, hour, minute, 0, loc)
		wall := time.Date(year, time.Month(month), day, hour, minute, 0, 0, time.UTC)
		l := got.In(loc)
		gotWall := time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
		switch how {
		case domain.LocalExact, domain.LocalAmbiguous:
			if !gotWall.Equal(wall) {
				t.Fatalf("%s %s: %s has wall time %s", loc, wall, how, gotWall)
			}
			if how == domain.LocalAmbiguous {
				// Another, later instant has the same wall time.
				found := false
				for d := 15 * time.Minute; d <= 3*time.Hour; d += 15 * time.Minute {
					o := got.Add(d).In(loc)
					if time.Date(o.Year(), o.Month(), o.Day(), o.Hour(), o.Minute(), 0, 0, time.UTC).Equal(wall) {
						found = true
					}
				}
				if !found {
					t.Fatalf("%s %s: ambiguous but no later instant has that wall time", loc, wall)
				}
			}
		case domain.LocalNonexistent:
			if d := gotWall.Sub(wall); d <= 0 || d > 24*time.Hour {
				t.Fatalf("%s %s: skipped time moved by %s", loc, wall, d)
			}
		default:
			t.Fatalf("resolution %q", how)
		}
	})
}

// Next is after its argument, on a chosen day, and never skips an occurrence.
func FuzzRecurrenceNext(f *testing.F) {
	f.Add(int64(1792620000), uint8(0b0111110), 18, 0, 0)
	f.Add(int64(1774746000), uint8(0b0000001), 2, 30, 0)
	f.Fuzz(func(t *testing.T, unix int64, days uint8, hour, minute, zi int) {
		if unix < 0 || unix > 7e9 || days&0x7f == 0 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || zi < 0 {
			t.Skip()
		}
		names := []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
		var r domain.Recurrence
		for i, n := range names {
			if days&(1<<i) != 0 {
				r.Weekdays = append(r.Weekdays, n)
			}
		}
		r.Time = time.Date(2000, 1, 1, hour, minute, 0, 0, time.UTC).Format("15:04")
		loc := zone(t, fuzzZones[zi%len(fuzzZones)])
		from := time.Unix(unix, 0)
		next := r.Next(from, loc)
		if !next.After(from) || next.Sub(from) > 9*24*time.Hour {
			t.Fatalf("%v in %s: Next(%s) = %s", r, loc, from, next)
		}
		if !slices.Contains(r.Weekdays, names[next.In(loc).Weekday()]) {
			// A skipped local time moved forward can fall on the next day only past midnight.
			t.Fatalf("%v in %s: Next(%s) = %s, a %s", r, loc, from, next, next.In(loc).Weekday())
		}
		// Nothing in between: from each earlier hour the next occurrence is the same.
		for probe := from.Add(time.Hour); probe.Before(next); probe = probe.Add(7 * time.Hour) {
			if got := r.Next(probe, loc); !got.Equal(next) {
				t.Fatalf("%v in %s: Next(%s) = %s but Next(%s) = %s", r, loc, from, next, probe, got)
			}
		}
	})
}

func FuzzParseScheduleTime(f *testing.F) {
	f.Add("2026-12-24T09:00", "Europe/Paris")
	f.Add("2026-12-24T09:00:00", "")
	f.Add("2026-12-24T09:00:00+01:00", "UTC")
	f.Fuzz(func(t *testing.T, at, tz string) {
		got, err := domain.ParseScheduleTime(at, tz)
		if err != nil {
			if f := errorField(err); f != "at" && f != "time_zone" {
				t.Fatalf("ParseScheduleTime(%q, %q): %v at field %q", at, tz, err, f)
			}
			return
		}
		if !got.IsZero() && got.Location() != time.UTC {
			t.Fatalf("ParseScheduleTime(%q, %q) = %s, not UTC", at, tz, got)
		}
		if at != "" && got.IsZero() {
			t.Fatalf("ParseScheduleTime(%q, %q): no time and no error", at, tz)
		}
	})
}

// The console lists next_runs for every schedule of a page (50 × 5 occurrences): this is the
// cost of one occurrence.
func BenchmarkRecurrenceNext(b *testing.B) {
	r := domain.Recurrence{Weekdays: []string{"mon", "tue", "wed", "thu", "fri"}, Time: "18:00"}
	loc := zone(b, "Europe/Paris")
	from := utc("2026-10-22T15:00:00Z")
	for b.Loop() {
		from = r.Next(from, loc)
	}
}

func BenchmarkLoadTimeZone(b *testing.B) {
	for b.Loop() {
		if _, err := domain.LoadTimeZone("Europe/Paris"); err != nil {
			b.Fatal(err)
		}
	}
}
