package vexil

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Options configure a Provider. BaseURL and ServerKey are required; every other field has a
// default that suits a service.
type Options struct {
	// BaseURL is where Vexil's api role answers, without a path: "https://flags.example.com".
	BaseURL string
	// ServerKey is the environment's server-side SDK key (a secret; it is sent in the
	// Authorization header only, never in a URL).
	ServerKey string
	// HTTPClient sends every request. Default: a client of its own (its idle connections are
	// closed on Shutdown). Its Timeout must be 0 or longer than the stream lives: the SDK bounds
	// each request itself (RequestTimeout) except the stream, which StreamIdleTimeout bounds.
	HTTPClient *http.Client
	// RequestTimeout bounds one ruleset download or event batch. Default 10s.
	RequestTimeout time.Duration

	// BootstrapFile is a ruleset (the body of GET /sdk/v1/ruleset) to start from when the server
	// cannot be reached at start. "" starts from nothing: Init fails until the server answers.
	BootstrapFile string
	// SaveBootstrap rewrites BootstrapFile (atomically) after every download that changed the
	// ruleset, so the next start can begin where this one stopped.
	SaveBootstrap bool
	// InitTimeout is how long Init waits for the server before it falls back on BootstrapFile
	// (or fails, without one). Default 10s.
	InitTimeout time.Duration

	// DisableStreaming polls every PollInterval instead of following the SSE stream.
	DisableStreaming bool
	// PollInterval is the polling period when streaming is off or unavailable. Default 30s.
	PollInterval time.Duration
	// StreamRetryInterval is how often a provider that fell back to polling because the server
	// has no stream tries the stream again. Default 5m.
	StreamRetryInterval time.Duration
	// StreamIdleTimeout ends a stream that sent nothing (not even a heartbeat, every 15 s by
	// default on the server) for this long, and reconnects. Default 60s.
	StreamIdleTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the jittered exponential backoff between reconnects
	// and between retries of event batches. Defaults 500ms and 30s.
	ReconnectMin, ReconnectMax time.Duration

	// DisableExposures stops sending exposure events (evaluations served by a running
	// experiment). The api role does not see local evaluations: without these, an experiment
	// served only by this SDK has no exposures.
	DisableExposures bool
	// SendEvaluations also sends an evaluation event for every (user, flag, variation) the
	// provider serves for the first time in a while (see Remember): the flag's usage stats.
	// Off by default; Stats counts every evaluation in memory either way.
	SendEvaluations bool
	// EventBatchSize is the most events one POST /sdk/v1/events carries (the server's limit is
	// 1,000 by default). Default 500.
	EventBatchSize int
	// FlushInterval bounds how long an event waits before it is sent. Default 2s.
	FlushInterval time.Duration
	// MaxQueuedEvents bounds the events held in memory (queued, or in a batch being retried);
	// past it new events are dropped and counted. Default 10,000.
	MaxQueuedEvents int
	// Remember is how many recent exposures (and evaluations, with SendEvaluations) are
	// remembered so that a user evaluated again is not sent again: the analysis counts a user's
	// first exposure only. Two generations of this size are kept. Default 100,000.
	Remember int
	// ShutdownTimeout bounds how long Shutdown tries to deliver the queued events. Default 10s.
	ShutdownTimeout time.Duration

	// Logger receives warnings (a lost stream, a refused batch). Default: slog.Default().
	Logger *slog.Logger
}

func (o *Options) validate() error {
	if o.BaseURL == "" {
		return errors.New("vexil: Options.BaseURL is required")
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("vexil: Options.BaseURL must be an http(s) URL such as https://flags.example.com")
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.ServerKey == "" {
		return errors.New("vexil: Options.ServerKey is required (the environment's server-side SDK key)")
	}
	if o.SaveBootstrap && o.BootstrapFile == "" {
		return errors.New("vexil: Options.SaveBootstrap needs Options.BootstrapFile")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RequestTimeout, 10*time.Second)
	def(&o.InitTimeout, 10*time.Second)
	def(&o.PollInterval, 30*time.Second)
	def(&o.StreamRetryInterval, 5*time.Minute)
	def(&o.StreamIdleTimeout, 60*time.Second)
	def(&o.ReconnectMin, 500*time.Millisecond)
	def(&o.ReconnectMax, 30*time.Second)
	def(&o.FlushInterval, 2*time.Second)
	def(&o.ShutdownTimeout, 10*time.Second)
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.EventBatchSize <= 0 {
		o.EventBatchSize = 500
	}
	if o.MaxQueuedEvents <= 0 {
		o.MaxQueuedEvents = 10_000
	}
	if o.Remember <= 0 {
		o.Remember = 100_000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}
