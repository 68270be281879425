package sdkapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/httpapi"
	"github.com/vexil-flags/vexil/services/roles/ingest"
)

// EventIngestor takes accepted event batches to the telemetry stream (telemetry.Ingestor).
type EventIngestor interface {
	// Limits of one request.
	Limits() ingest.Limits
	// Publish returns once the batch is durably on the stream, or a *domain.Error with
	// Details[telemetry.RetryAfterDetail] (ERateLimited: the projector lags; EUnavailable: Redis
	// is unreachable) when nothing was kept.
	Publish(ctx context.Context, b *telemetry.Batch) error
	// Refused and Rejected record refusals for /metrics.
	Refused(outcome string, rejected int)
	Rejected(n int)
}

// eventsAnswer is the body of 202 (some events accepted) and of 400 (none was).
type eventsAnswer struct {
	// Code and Message are set on 400 only, as in every error answer.
	Code     string             `json:"code,omitempty"`
	Message  string             `json:"message,omitempty"`
	BatchID  string             `json:"batch_id,omitempty"`
	Accepted int                `json:"accepted"`
	Rejected int                `json:"rejected"`
	Errors   []ingest.ItemError `json:"errors"`
}

// POST /sdk/v1/events: a batch of evaluation and goal events from an SDK (client or server key).
// The environment comes from the key. Valid events are kept and invalid ones reported one by one:
// 202 when at least one event was accepted (the batch is on the stream: it will be stored), 400
// when none was; 413 past the body or batch limit, 429 while the projector lags, 503 while the
// stream is unreachable (both with Retry-After, nothing kept).
func (s *Server) postEvents(c echo.Context) error {
	k, body, err := s.readEvents(c)
	if err != nil {
		return err
	}
	batch, itemErrs, err := ingest.Parse(body, k.Project, k.Environment, time.Now(), s.opts.Events.Limits())
	if err != nil {
		s.opts.Events.Refused(outcomeOf(err), 0)
		return err
	}
	return s.publishEvents(c, batch, itemErrs)
}

// readEvents authorizes an ingest request (client and server keys) and reads its JSON body
// within the ingest limits: the part /sdk/v1/events and /ofrep/v1/track share.
func (s *Server) readEvents(c echo.Context) (access.SDKKey, []byte, error) {
	if s.opts.Events == nil {
		return access.SDKKey{}, nil, domain.Errorf(domain.EUnavailable, "event ingestion is not configured on this server")
	}
	// ?key= and text/plain: for navigator.sendBeacon (beacon.go).
	if err := s.refuseServerKeyInURL(c); err != nil {
		return access.SDKKey{}, nil, err
	}
	k, _, err := s.authorize(c, false, true)
	if err != nil {
		return access.SDKKey{}, nil, err
	}
	ing := s.opts.Events
	limits := ing.Limits()
	if !beaconContentType(c.Request().Header.Get(echo.HeaderContentType)) {
		ing.Refused("invalid", 0)
		return access.SDKKey{}, nil, domain.Errorf(domain.EInvalid, "Content-Type must be application/json (or text/plain, as navigator.sendBeacon sends)")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limits.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			ing.Refused("too_large", 0)
			return access.SDKKey{}, nil, &domain.Error{Code: domain.ETooLarge,
				Message: fmt.Sprintf("request body is larger than the limit of %d bytes; send smaller batches", limits.MaxBodyBytes)}
		}
		return access.SDKKey{}, nil, domain.Errorf(domain.EInvalid, "could not read the request body")
	}
	return k, body, nil
}

// publishEvents answers a parsed batch: 400 with the item errors when no event is valid, else
// the batch goes to the telemetry stream and the answer is 202 (or 429/503 with Retry-After).
func (s *Server) publishEvents(c echo.Context, batch *telemetry.Batch, itemErrs []ingest.ItemError) error {
	ing := s.opts.Events
	answer := eventsAnswer{Accepted: batch.Len(), Rejected: len(itemErrs), Errors: itemErrs}
	if answer.Errors == nil {
		answer.Errors = []ingest.ItemError{}
	}
	if batch.Len() == 0 {
		ing.Refused("invalid", len(itemErrs))
		answer.Code, answer.Message = domain.EInvalid, "no event of the batch is valid; nothing was kept"
		return c.JSON(http.StatusBadRequest, answer)
	}
	if err := ing.Publish(c.Request().Context(), batch); err != nil {
		if secs, ok := ingest.RetryAfter(err); ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		}
		return err
	}
	ing.Rejected(len(itemErrs))
	answer.BatchID = batch.ID.String()
	return c.JSON(http.StatusAccepted, answer)
}

func outcomeOf(err error) string {
	if status, _ := httpapi.Body(err); status == http.StatusRequestEntityTooLarge {
		return "too_large"
	}
	return "invalid"
}

// TelemetryCountSink hands the api role's evaluation counts to the telemetry stream, the same
// path as SDK events (counts are stored as evaluation rows without a user).
func TelemetryCountSink(ing *ingest.Ingestor) CountSink { return countSink{ing} }

type countSink struct{ ing *ingest.Ingestor }

func (s countSink) RecordEvaluationCounts(ctx context.Context, batch []EvaluationCount) error {
	counts := make([]ingest.EvaluationCount, 0, len(batch))
	for _, c := range batch {
		counts = append(counts, ingest.EvaluationCount{Project: c.Project, Environment: c.Environment,
			Flag: c.Flag, Variation: c.Variation, Count: c.Count, From: c.From, To: c.To})
	}
	return s.ing.RecordCounts(ctx, counts)
}
