// Package datetime reads the instants of the before and after clause operators: one parser for
// the validator of clause values (package domain) and for the evaluator of context attributes
// (package domain/evaluation), which parses on the hot path.
package datetime

import (
	"encoding/json"
	"math"
	"time"
)

// maxMillis bounds dates given as Unix milliseconds to the range of ECMAScript dates
// (±100,000,000 days), far inside what time.Time and int64 nanoseconds arithmetic can hold.
const maxMillis = 8.64e15

// maxLength is the longest string tried as an RFC 3339 date: far more than any date needs, and
// it bounds what time.Parse is given.
const maxLength = 64

// Parse interprets a clause value or context attribute as an instant: an RFC 3339 string
// ("2024-05-01T12:00:00Z", fractional seconds allowed) or a number of Unix milliseconds (float64
// as decoded from JSON; int, int64 and json.Number are accepted too). The result is in UTC.
// ok is false for anything else, including non-finite or out-of-range numbers.
func Parse(v any) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		return ParseString(x)
	case float64:
		return FromMillis(x)
	case int:
		return FromMillis(float64(x))
	case int64:
		return FromMillis(float64(x))
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return time.Time{}, false
		}
		return FromMillis(f)
	}
	return time.Time{}, false
}

// ParseString reads an RFC 3339 date (what time.Parse accepts with time.RFC3339Nano) in UTC.
// time.Parse costs about as much as evaluating ten clauses, so the common forms are parsed here
// first: a strict subset of what time.Parse accepts, to the same instant (a fuzz test checks
// both); strings that cannot be RFC 3339 at all are refused without the error allocation of
// time.Parse.
func ParseString(s string) (time.Time, bool) {
	if len(s) < 5 || !digits(s[0:4]) || s[4] != '-' { // time.Parse needs these too
		return time.Time{}, false
	}
	if t, ok := parseRFC3339(s); ok {
		return t, true
	}
	if len(s) > maxLength {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// FromMillis converts Unix milliseconds (fractions allowed) to an instant in UTC; ok is false
// for non-finite numbers and numbers beyond the range of ECMAScript dates.
func FromMillis(ms float64) (time.Time, bool) {
	if math.IsNaN(ms) || math.IsInf(ms, 0) || math.Abs(ms) > maxMillis {
		return time.Time{}, false
	}
	whole := math.Trunc(ms)
	frac := ms - whole
	return time.UnixMilli(int64(whole)).Add(time.Duration(frac * float64(time.Millisecond))).UTC(), true
}

// parseRFC3339 parses YYYY-MM-DDTHH:MM:SS, an optional fraction of 1 to 9 digits, and Z or an
// offset +HH:MM / -HH:MM with HH <= 23 and MM <= 59. It reads the fixed fields two digits at a
// time (d2): the evaluator parses a date attribute on every evaluation that reaches a date clause.
func parseRFC3339(s string) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	century, yy, month, day := d2(s, 0), d2(s, 2), d2(s, 5), d2(s, 8)
	hour, minute, sec := d2(s, 11), d2(s, 14), d2(s, 17)
	// d2 gives -1 for a non-digit: one test of the sign bits covers all seven fields.
	if century|yy|month|day|hour|minute|sec < 0 {
		return time.Time{}, false
	}
	year := century*100 + yy
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	i, nsec := 19, 0
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			nsec = nsec*10 + int(s[j]-'0')
			j++
		}
		n := j - i - 1
		if n < 1 || n > 9 {
			return time.Time{}, false
		}
		for k := n; k < 9; k++ {
			nsec *= 10
		}
		i = j
	}
	offset := 0
	switch {
	case i+1 == len(s) && s[i] == 'Z':
	case i+6 == len(s) && (s[i] == '+' || s[i] == '-') && s[i+3] == ':':
		oh, om := d2(s, i+1), d2(s, i+4)
		if oh < 0 || om < 0 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if s[i] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	unix := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec-offset)
	return time.Unix(unix, int64(nsec)).UTC(), true
}

// d2 reads the two digits at s[i:i+2] (the caller checked the length), or gives -1.
func d2(s string, i int) int {
	hi, lo := s[i]-'0', s[i+1]-'0' // bytes below '0' wrap around above 9
	if hi > 9 || lo > 9 {
		return -1
	}
	return int(hi)*10 + int(lo)
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// algorithm), for years 0 to 9999.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := m - 3
	if m <= 2 {
		mp = m + 9
	}
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097+doe) - 719468
}
