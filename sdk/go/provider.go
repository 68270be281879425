package vexil

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

const providerName = "vexil"

// Provider is an OpenFeature provider that evaluates Vexil flags locally. It implements
// openfeature.FeatureProvider, StateHandler (Init, Shutdown), EventHandler and Tracker. Create
// it with NewProvider and hand it to openfeature.SetProviderAndWait, which calls Init.
type Provider struct {
	opts      Options
	http      *http.Client
	transport *http.Transport // ours, when the application gave no client: closed on Shutdown

	current atomic.Pointer[snapshot]
	eventCh chan openfeature.Event
	queue   *eventQueue

	mu     sync.Mutex
	status openfeature.State
	lastID string // the last SSE event id seen, for Last-Event-ID

	closing   atomic.Bool // Shutdown began: new events are dropped
	lifecycle sync.Mutex
	started   bool
	stopped   bool
	cancel    context.CancelFunc
	stopSend  chan struct{}
	drainCtx  context.Context
	wg        sync.WaitGroup
}

var (
	_ openfeature.FeatureProvider = (*Provider)(nil)
	_ openfeature.StateHandler    = (*Provider)(nil)
	_ openfeature.EventHandler    = (*Provider)(nil)
	_ openfeature.Tracker         = (*Provider)(nil)
)

// NewProvider checks opts and returns a provider that does nothing until Init.
func NewProvider(opts Options) (*Provider, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	p := &Provider{opts: opts, eventCh: make(chan openfeature.Event, 64),
		status: openfeature.NotReadyState}
	p.queue = newEventQueue(&p.opts)
	if opts.HTTPClient != nil {
		p.http = opts.HTTPClient
	} else {
		p.transport = http.DefaultTransport.(*http.Transport).Clone()
		p.transport.MaxIdleConnsPerHost = 4
		p.http = &http.Client{Transport: p.transport}
	}
	return p, nil
}

// Metadata names the provider.
func (p *Provider) Metadata() openfeature.Metadata { return openfeature.Metadata{Name: providerName} }

// Hooks: none.
func (p *Provider) Hooks() []openfeature.Hook { return nil }

// EventChannel is where the provider's events go (OpenFeature reads it).
func (p *Provider) EventChannel() <-chan openfeature.Event { return p.eventCh }

// Status is the provider's state: NOT_READY before the first ruleset, READY, STALE while the
// server cannot be reached, ERROR while the key is refused.
func (p *Provider) Status() openfeature.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Init starts following the environment's ruleset and returns once one is loaded: from the
// server, or, when the server cannot be reached within InitTimeout, from BootstrapFile (the
// provider is then ready and reports STALE until the server answers). Without either it returns
// an error, and keeps trying in the background: the provider turns READY when the server answers.
func (p *Provider) Init(openfeature.EvaluationContext) error {
	p.lifecycle.Lock()
	if p.started || p.stopped {
		p.lifecycle.Unlock()
		return errors.New("vexil: Init called twice, or after Shutdown")
	}
	p.started = true
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.stopSend = cancel, make(chan struct{})
	p.lifecycle.Unlock()

	// The first download, retried with backoff until InitTimeout.
	deadline := time.Now().Add(p.opts.InitTimeout)
	var err error
	for attempt := 1; ; attempt++ {
		fctx, fcancel := context.WithDeadline(ctx, deadline)
		err = p.fetch(fctx)
		fcancel()
		if err == nil || errors.Is(err, errRefused) || time.Now().After(deadline) {
			break
		}
		sleep(ctx, min(backoff(p.opts.ReconnectMin, p.opts.ReconnectMax, attempt), time.Until(deadline)))
	}
	p.startBackground(ctx)
	if err == nil {
		p.setStatus(openfeature.ReadyState)
		return nil
	}
	if p.opts.BootstrapFile != "" && !errors.Is(err, errRefused) {
		if berr := p.loadBootstrap(); berr == nil {
			p.setStatus(openfeature.StaleState)
			p.opts.Logger.Warn("vexil: serving the bootstrap file until the server answers", "file", p.opts.BootstrapFile, "err", err)
			p.emit(openfeature.ProviderStale, openfeature.ProviderEventDetails{
				Message: "serving the bootstrap file until the server answers: " + err.Error()})
			return nil
		} else {
			err = errors.Join(err, berr)
		}
	}
	p.setStatus(openfeature.ErrorState)
	return err
}

func (p *Provider) setStatus(s openfeature.State) {
	p.mu.Lock()
	p.status = s
	p.mu.Unlock()
}

func (p *Provider) startBackground(ctx context.Context) {
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.syncLoop(ctx)
	}()
	go func() {
		defer p.wg.Done()
		p.sendLoop(p.stopSend, func() context.Context { return p.drainCtx })
	}()
}

// Shutdown stops following the ruleset, delivers every queued event (retrying within
// ShutdownTimeout) and closes the provider's connections. Evaluation keeps answering from the
// last ruleset; new events are dropped.
func (p *Provider) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.ShutdownTimeout)
	defer cancel()
	_ = p.ShutdownContext(ctx)
}

// ShutdownContext is Shutdown bounded by ctx instead of ShutdownTimeout. It returns ctx's error
// when events were left undelivered.
func (p *Provider) ShutdownContext(ctx context.Context) error {
	p.lifecycle.Lock()
	if p.stopped {
		p.lifecycle.Unlock()
		return nil
	}
	p.stopped = true
	p.closing.Store(true)
	started := p.started
	p.lifecycle.Unlock()
	if !started {
		return nil
	}
	p.cancel()
	p.drainCtx = ctx
	close(p.stopSend)
	p.wg.Wait()
	if p.transport != nil {
		p.transport.CloseIdleConnections()
	}
	if n := p.queue.length(); n > 0 {
		return fmt.Errorf("vexil: %d events not delivered: %w", n, ctx.Err())
	}
	return nil
}

// Stats are the provider's counters.
type Stats struct {
	RulesetVersion int64
	// Events: queued for sending, sent (kept by the server), dropped (queue full, or left at the
	// end of Shutdown) and rejected (refused by the server), and waiting now.
	EventsQueued, EventsSent, EventsDropped, EventsRejected int64
	EventsWaiting                                           int
	// Evaluations counts local evaluations by flag and variation key ("" when no variation
	// was served: an error, or an empty off variation), for the current ruleset version.
	Evaluations map[string]map[string]int64
}

// Stats reports the provider's counters.
func (p *Provider) Stats() Stats {
	q := p.queue
	st := Stats{EventsQueued: q.queued.Load(), EventsSent: q.sent.Load(), EventsDropped: q.dropped.Load(),
		EventsRejected: q.rejected.Load(), EventsWaiting: q.length(), Evaluations: map[string]map[string]int64{}}
	if s := p.current.Load(); s != nil {
		st.RulesetVersion = s.version
		for _, fi := range s.flags {
			m := map[string]int64{}
			for i := range fi.counts {
				if n := fi.counts[i].Load(); n > 0 {
					v := ""
					if i < len(fi.variations) {
						v = fi.variations[i]
					}
					m[v] += n
				}
			}
			if len(m) > 0 {
				st.Evaluations[fi.key] = m
			}
		}
	}
	return st
}

// Evaluate evaluates a flag for a flattened OpenFeature context (what OFREP's "context" holds)
// with the server's evaluator, and records it (counters, exposure). It is what the typed
// OpenFeature methods call; use it directly for the raw result.
func (p *Provider) Evaluate(flag string, flatCtx openfeature.FlattenedContext) evaluation.Result {
	r, _ := p.evaluate(flag, flatCtx)
	return r
}

// evaluate returns the result and the prepared flag (nil when the flag or the ruleset is missing).
func (p *Provider) evaluate(flag string, flatCtx openfeature.FlattenedContext) (evaluation.Result, *flagInfo) {
	s := p.current.Load()
	if s == nil {
		return evaluation.Result{FlagKey: flag, VariationIndex: -1, RuleIndex: -1, Bucket: -1, Reason: evaluation.ReasonError,
			ErrorCode: errorProviderNotReady, ErrorMessage: "no ruleset loaded yet"}, nil
	}
	var ctx evaluation.Context
	tk, hasKey := flatCtx[openfeature.TargetingKey]
	if hasKey {
		key, ok := tk.(string)
		if !ok {
			return evaluation.Result{FlagKey: flag, VariationIndex: -1, RuleIndex: -1, Bucket: -1, Reason: evaluation.ReasonError,
				ErrorCode: errorInvalidContext, ErrorMessage: "targetingKey must be a string"}, s.flag(flag)
		}
		ctx.Key = key
	}
	ctx.Attributes = flatCtx
	if hasKey && s.keyAttribute {
		// An attribute named "targetingKey" is read by the ruleset: the context must not hold
		// the targeting key under that name (the server removes it too).
		ctx.Attributes = make(map[string]any, len(flatCtx))
		for k, v := range flatCtx {
			if k != openfeature.TargetingKey {
				ctx.Attributes[k] = v
			}
		}
	}
	fi := s.flag(flag)
	if fi == nil {
		return s.compiled.Evaluate(flag, &ctx), nil // FLAG_NOT_FOUND
	}
	r := s.compiled.EvaluateIndex(fi.index, &ctx) // one lookup by key, not two
	p.record(fi, &r, ctx.Key)
	return r, fi
}

// record counts an evaluation and queues its exposure (and evaluation event, when asked).
func (p *Provider) record(fi *flagInfo, r *evaluation.Result, user string) {
	i := r.VariationIndex
	if i < 0 || i >= len(fi.variations) {
		i = len(fi.variations)
	}
	fi.counts[i].Add(1)
	if user == "" || r.IsError() {
		return
	}
	exposure := r.Experiment != "" && !p.opts.DisableExposures
	if !exposure && !p.opts.SendEvaluations {
		return
	}
	if p.closing.Load() {
		return
	}
	k := sentKey{user: user, flag: r.FlagKey, variation: r.Variation}
	if exposure {
		k.experiment = r.Experiment
	}
	if !p.queue.firstSight(k) {
		return
	}
	now := time.Now()
	p.queue.add(&event{kind: "evaluation", id: newEventID(now), at: now,
		userKey: user, flagKey: r.FlagKey, variationKey: r.Variation, reason: r.Reason, experimentKey: k.experiment})
}

// Track sends a goal event (OpenFeature's track): the goal is the event name, the user the
// context's targeting key, the value the details' value (sent when it is not 0, or when the
// details carry a "value" attribute, so a tracked 0 can be sent on purpose). A context without a
// targeting key cannot be attributed to a user and is dropped (and counted as rejected).
func (p *Provider) Track(_ context.Context, name string, ec openfeature.EvaluationContext, details openfeature.TrackingEventDetails) {
	user := ec.TargetingKey()
	if user == "" || name == "" {
		p.queue.rejected.Add(1)
		p.opts.Logger.Warn("vexil: Track needs an event name and a context with a targeting key; event dropped", "event", name)
		return
	}
	if p.closing.Load() {
		p.queue.dropped.Add(1)
		return
	}
	now := time.Now()
	e := event{kind: "goal", id: newEventID(now), at: now, userKey: user, goalKey: name}
	if v := details.Value(); v != 0 || details.Attribute("value") != nil {
		e.value, e.hasValue = v, !math.IsNaN(v) && !math.IsInf(v, 0)
	}
	p.queue.add(&e)
}

// Error codes beyond evaluation's: OpenFeature's names.
const (
	errorProviderNotReady = "PROVIDER_NOT_READY"
	errorInvalidContext   = "INVALID_CONTEXT"
)

// resolution turns a result into OpenFeature's resolution detail (without the value).
func resolution(r *evaluation.Result, fi *flagInfo) openfeature.ProviderResolutionDetail {
	d := openfeature.ProviderResolutionDetail{Reason: openfeature.Reason(r.Reason), Variant: r.Variation}
	if fi != nil {
		d.FlagMetadata = fi.metadata(r)
	}
	if r.IsError() {
		d.ResolutionError = resolutionError(r.ErrorCode, r.ErrorMessage)
	}
	return d
}

func resolutionError(code, msg string) openfeature.ResolutionError {
	switch code {
	case evaluation.ErrorFlagNotFound:
		return openfeature.NewFlagNotFoundResolutionError(msg)
	case evaluation.ErrorTargetingKeyMissing:
		return openfeature.NewTargetingKeyMissingResolutionError(msg)
	case evaluation.ErrorParse:
		return openfeature.NewParseErrorResolutionError(msg)
	case evaluation.ErrorTypeMismatch:
		return openfeature.NewTypeMismatchResolutionError(msg)
	case errorProviderNotReady:
		return openfeature.NewProviderNotReadyResolutionError(msg)
	case errorInvalidContext:
		return openfeature.NewInvalidContextResolutionError(msg)
	}
	return openfeature.NewGeneralResolutionError(msg)
}

// typed leaves r as it is when its value is of the wanted type, else makes it TYPE_MISMATCH.
// (WithType is called only for a value of another type: it takes and returns the Result by
// value, and two copies of it cost more than the check.)
func typed(r *evaluation.Result, want domain.FlagType) {
	if !r.IsError() && r.Value != nil && !domain.ValidateValueType(want, r.Value) {
		*r = r.WithType(want)
	}
}

// BooleanEvaluation evaluates a boolean flag.
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, def bool, flatCtx openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	r, fi := p.evaluate(flag, flatCtx)
	typed(&r, domain.FlagBoolean)
	out := openfeature.BoolResolutionDetail{Value: def, ProviderResolutionDetail: resolution(&r, fi)}
	if v, ok := r.Value.(bool); ok {
		out.Value = v
	}
	return out
}

// StringEvaluation evaluates a string flag.
func (p *Provider) StringEvaluation(_ context.Context, flag string, def string, flatCtx openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	r, fi := p.evaluate(flag, flatCtx)
	typed(&r, domain.FlagString)
	out := openfeature.StringResolutionDetail{Value: def, ProviderResolutionDetail: resolution(&r, fi)}
	if v, ok := r.Value.(string); ok {
		out.Value = v
	}
	return out
}

// FloatEvaluation evaluates a number flag.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, def float64, flatCtx openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	r, fi := p.evaluate(flag, flatCtx)
	typed(&r, domain.FlagNumber)
	out := openfeature.FloatResolutionDetail{Value: def, ProviderResolutionDetail: resolution(&r, fi)}
	if v, ok := number(r.Value); ok {
		out.Value = v
	}
	return out
}

// IntEvaluation evaluates a number flag whose value must be an integer (else TYPE_MISMATCH).
func (p *Provider) IntEvaluation(_ context.Context, flag string, def int64, flatCtx openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	r, fi := p.evaluate(flag, flatCtx)
	typed(&r, domain.FlagNumber)
	if v, ok := number(r.Value); ok && (v != math.Trunc(v) || math.Abs(v) > 1<<53) {
		r.Reason, r.ErrorCode = evaluation.ReasonError, evaluation.ErrorTypeMismatch
		r.ErrorMessage = "flag " + flag + " does not hold an integer value"
		r.Value, r.Variation, r.VariationIndex = nil, "", -1
	}
	out := openfeature.IntResolutionDetail{Value: def, ProviderResolutionDetail: resolution(&r, fi)}
	if v, ok := number(r.Value); ok {
		out.Value = int64(v)
	}
	return out
}

// ObjectEvaluation evaluates a flag of any type: JSON flags give objects and arrays (decoded
// JSON), the others their value. The value is shared with the ruleset: do not modify it.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, def any, flatCtx openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	r, fi := p.evaluate(flag, flatCtx)
	out := openfeature.InterfaceResolutionDetail{Value: def, ProviderResolutionDetail: resolution(&r, fi)}
	if r.Value != nil {
		out.Value = r.Value
	}
	return out
}

func number(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}
