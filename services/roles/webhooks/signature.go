package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery.
const (
	// SignatureHeader is "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>". The
	// timestamp is inside the signed text, so a receiver that refuses old timestamps refuses
	// replays of a captured delivery (Verify does, with a tolerance).
	SignatureHeader = "Vexil-Signature"
	// DeliveryIDHeader is the delivery's id: the same on every retry of one delivery, so a
	// receiver de-duplicates by it (delivery is at least once).
	DeliveryIDHeader = "Vexil-Delivery-Id"
	// KindHeader is the delivery's kind (flag.changed, ..., test).
	KindHeader = "Vexil-Event-Kind"
)

// DefaultTolerance is how old a signed timestamp Verify accepts by default: long enough for
// clock skew and a slow network, short enough that a captured request cannot be replayed later.
const DefaultTolerance = 5 * time.Minute

// Sign computes the Vexil-Signature header value of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrSignatureMalformed = errors.New("webhooks: malformed Vexil-Signature header")
	ErrSignatureMismatch  = errors.New("webhooks: signature does not match the body")
	ErrSignatureTooOld    = errors.New("webhooks: signature timestamp outside the tolerance (replay?)")
)

// Verify checks a delivery as its receiver should: the header's HMAC over "<t>.<body>" with the
// subscription's secret (compared in constant time), and t within tolerance of now (either way,
// for clock skew); tolerance <= 0 means DefaultTolerance. Receivers may copy this function: it
// needs only the standard library. Also de-duplicate by Vexil-Delivery-Id: a delivery whose
// answer was lost is sent again with the same id and a new timestamp.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMalformed
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v) // several v1 while a secret is being rotated
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMalformed
	}
	want := mac(secret, ts, body)
	match := false
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			match = true
		}
	}
	if !match {
		return ErrSignatureMismatch
	}
	if age := now.Sub(time.Unix(unix, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: signed %s ago", ErrSignatureTooOld, age.Round(time.Second))
	}
	return nil
}
