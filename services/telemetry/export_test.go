package telemetry

// ParseSlow is the event-by-event path of Parse, which tests compare with the fast path.
var ParseSlow = parseSlow

// ValidKey is the key check of events.
var ValidKey = validKey
