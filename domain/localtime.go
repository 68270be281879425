package domain

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Named time zones and recurrence of scheduled changes (issue 20). A schedule is stored as a UTC
// instant (ChangeSpec.At) with the IANA zone it was given in (ChangeSpec.TimeZone), kept for
// display and for computing the occurrences of a recurrence. The functions here are pure given a
// *time.Location; LoadTimeZone is the one step that reads the zone database (the host's, or the
// copy embedded in the vexil binary by time/tzdata).

// LocalResolution says how a local date and time was turned into an instant.
type LocalResolution string

const (
	// LocalExact: the local time happens exactly once in the zone.
	LocalExact LocalResolution = "exact"
	// LocalAmbiguous: the local time happens twice (clocks go back, e.g. 02:30 on the last
	// Sunday of October in Europe/Paris); the earlier instant is chosen, as RFC 5545 does.
	LocalAmbiguous LocalResolution = "ambiguous"
	// LocalNonexistent: the local time is skipped (clocks go forward, e.g. 02:30 on the last
	// Sunday of March in Europe/Paris); it is read with the offset in force before the gap, so
	// it moves forward by the gap's length (02:30 becomes 03:30 CEST), as RFC 5545 does.
	LocalNonexistent LocalResolution = "nonexistent"
)

// ResolveLocal turns a wall-clock date and time in loc into an instant, by the rule of
// LocalResolution. The date is normalized as time.Date does (month 13 is January of the next
// year).
func ResolveLocal(year int, month time.Month, day, hour, minute, sec int, loc *time.Location) (time.Time, LocalResolution) {
	wall := time.Date(year, month, day, hour, minute, sec, 0, time.UTC)
	// The offsets in force a day either side cover any instant this wall time can be: offsets
	// lie within ±14 h, and zones change offset at most once in such a window.
	offsetAt := func(t time.Time) int { _, off := t.In(loc).Zone(); return off }
	before, after := offsetAt(wall.Add(-24*time.Hour)), offsetAt(wall.Add(24*time.Hour))
	var found []time.Time
	for _, off := range []int{before, after, offsetAt(wall)} {
		t := wall.Add(-time.Duration(off) * time.Second)
		if sameWall(t.In(loc), wall) && !slices.ContainsFunc(found, t.Equal) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return wall.Add(-time.Duration(before) * time.Second).In(loc), LocalNonexistent
	case 1:
		return found[0].In(loc), LocalExact
	}
	slices.SortFunc(found, func(a, b time.Time) int { return a.Compare(b) })
	return found[0].In(loc), LocalAmbiguous
}

func sameWall(t, wall time.Time) bool {
	y, m, d := t.Date()
	wy, wm, wd := wall.Date()
	return y == wy && m == wm && d == wd && t.Hour() == wall.Hour() && t.Minute() == wall.Minute() && t.Second() == wall.Second()
}

// zoneName is the shape of an IANA zone name ("Europe/Paris", "America/Argentina/Buenos_Aires",
// "UTC", "Etc/GMT+5"): no dots, so no path can be named.
var zoneName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*){0,3}$`)

// LoadTimeZone loads an IANA time zone by name; EInvalid at field "time_zone" for a name that is
// not one. "Local" (the host's zone) is refused: a schedule must mean the same on every host.
func LoadTimeZone(name string) (*time.Location, error) {
	if len(name) > 64 || !zoneName.MatchString(name) || name == "Local" {
		return nil, Invalid("time_zone", "time_zone must be an IANA time zone name such as \"Europe/Paris\" or \"UTC\", got %q", truncate(name, 80))
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Invalid("time_zone", "unknown time zone %q (IANA names such as \"Europe/Paris\")", name)
	}
	zones.Store(name, loc)
	return loc, nil
}

// zones caches the zones loaded (about 100 µs each: time.LoadLocation reads and parses the zone
// file every time; a list answer computes the next runs of 50 schedules). Only names that load
// are kept, so it holds at most the IANA database's few hundred zones.
var zones sync.Map

// ParseScheduleTime reads the "at" of a scheduled change: an RFC 3339 time with its offset
// ("2026-12-24T09:00:00+01:00", "...Z"), taken as the instant it names whatever timeZone says,
// or a local date and time without offset ("2026-12-24T09:00" or "2026-12-24T09:00:00") in the
// zone named by timeZone, resolved by ResolveLocal's rule. An empty at is the zero time. The
// result is in UTC.
//
// Errors: EInvalid at "at" for a time without offset and without time zone, or for text that is
// no time; at "time_zone" for an unknown zone.
func ParseScheduleTime(at, timeZone string) (time.Time, error) {
	var loc *time.Location
	if timeZone != "" {
		l, err := LoadTimeZone(timeZone)
		if err != nil {
			return time.Time{}, err
		}
		loc = l
	}
	if at == "" {
		return time.Time{}, nil
	}
	if len(at) > 64 {
		return time.Time{}, Invalid("at", "at is not a time: %q", truncate(at, 64))
	}
	if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
		return t.UTC(), nil
	}
	local, ok := parseLocal(at)
	switch {
	case !ok:
		return time.Time{}, Invalid("at", "at %q is not a time: give RFC 3339 with an offset (2026-12-24T09:00:00+01:00), or a local time (2026-12-24T09:00) with time_zone", at)
	case loc == nil:
		return time.Time{}, Invalid("at", "at %q has no UTC offset: add one (%sZ or %s+01:00) or name its time zone in time_zone (\"Europe/Paris\")", at, at, at)
	}
	t, _ := ResolveLocal(local.Year(), local.Month(), local.Day(), local.Hour(), local.Minute(), local.Second(), loc)
	return t.UTC(), nil
}

// parseLocal reads a date and time without offset, to the minute or second.
func parseLocal(s string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Recurrence repeats a scheduled change on some days of the week at one local time, in the
// schedule's time zone (UTC when none): {"weekdays": ["mon","tue","wed","thu","fri"], "time":
// "18:00"}. Local times that do not exist or happen twice on a day the clocks change are resolved
// by ResolveLocal's rule, so each chosen day has exactly one occurrence.
type Recurrence struct {
	Weekdays []string `json:"weekdays"`
	Time     string   `json:"time"` // HH:MM, 24-hour
}

// weekdayNames are the accepted day names, Sunday first as time.Weekday counts.
var weekdayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// normalize validates r and returns it with its days lower case, in week order (Monday first)
// and without duplicates.
func (r Recurrence) normalize() (Recurrence, *Error) {
	if len(r.Weekdays) == 0 {
		return r, Invalid("recurrence.weekdays", "name at least one day (mon, tue, wed, thu, fri, sat, sun)")
	}
	if len(r.Weekdays) > 7 {
		return r, Invalid("recurrence.weekdays", "at most 7 days, got %d", len(r.Weekdays))
	}
	var days [7]bool
	for i, d := range r.Weekdays {
		n := slices.Index(weekdayNames, strings.ToLower(d))
		if n < 0 {
			return r, Invalid(fmt.Sprintf("recurrence.weekdays[%d]", i), "unknown day %q: use mon, tue, wed, thu, fri, sat or sun", truncate(d, 20))
		}
		days[n] = true
	}
	if _, _, ok := r.clock(); !ok {
		return r, Invalid("recurrence.time", "time must be a 24-hour local time HH:MM such as \"18:00\", got %q", truncate(r.Time, 20))
	}
	out := Recurrence{Time: r.Time}
	for i := 1; i <= 7; i++ { // Monday first
		if days[i%7] {
			out.Weekdays = append(out.Weekdays, weekdayNames[i%7])
		}
	}
	return out, nil
}

// clock reads Time.
func (r Recurrence) clock() (hour, minute int, ok bool) {
	t, err := time.Parse("15:04", r.Time)
	if err != nil || len(r.Time) != 5 {
		return 0, 0, false
	}
	return t.Hour(), t.Minute(), true
}

// Next is the first occurrence strictly after t, in loc; the zero time for an invalid r.
func (r Recurrence) Next(t time.Time, loc *time.Location) time.Time {
	hour, minute, ok := r.clock()
	if !ok || len(r.Weekdays) == 0 {
		return time.Time{}
	}
	var days [7]bool
	for _, d := range r.Weekdays {
		if n := slices.Index(weekdayNames, strings.ToLower(d)); n >= 0 {
			days[n] = true
		}
	}
	local := t.In(loc)
	y, m, d := local.Date()
	// Today may still have its occurrence; a chosen day comes within the next 7.
	for i := 0; i <= 8; i++ {
		day := time.Date(y, m, d+i, 12, 0, 0, 0, time.UTC)
		if !days[day.Weekday()] {
			continue
		}
		at, _ := ResolveLocal(day.Year(), day.Month(), day.Day(), hour, minute, 0, loc)
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// Occurrences are the first n occurrences at or after from (from itself when it is one), in loc.
func (r Recurrence) Occurrences(from time.Time, loc *time.Location, n int) []time.Time {
	var out []time.Time
	t := from.Add(-time.Nanosecond)
	for len(out) < n {
		t = r.Next(t, loc)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}
