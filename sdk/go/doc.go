// Package vexil is Vexil's Go server SDK: an OpenFeature provider that evaluates flags locally.
//
//	provider, err := vexil.NewProvider(vexil.Options{BaseURL: "https://flags.example.com", ServerKey: key})
//	if err != nil { ... }
//	if err := openfeature.SetProviderAndWait(provider); err != nil { ... } // the first ruleset is here
//	defer openfeature.Shutdown()                                            // flushes queued events
//	client := openfeature.NewClient("checkout")
//	on, _ := client.BooleanValue(ctx, "new-checkout", false, openfeature.NewEvaluationContext("user-42", attrs))
//	client.Track(ctx, "purchase", openfeature.NewEvaluationContext("user-42", nil), openfeature.NewTrackingEventDetails(42.5))
//
// # What it does
//
// The provider downloads the environment's ruleset (GET /sdk/v1/ruleset, with the server-side
// key, If-None-Match/304) and evaluates every flag in process with domain/evaluation, the very
// package the server's OFREP endpoints run: for the same ruleset and context, the value, variant,
// reason and error code are the server's. An evaluation does no I/O and takes no lock.
//
// It follows changes on the SSE stream (GET /sdk/v1/stream): each rulesetChanged event makes it
// download the ruleset again. A lost stream is reconnected with jittered exponential backoff and
// Last-Event-ID; a server without the stream (404, 405, 501, or not text/event-stream) is polled
// every PollInterval instead. When the server cannot be reached at start, the ruleset comes from
// BootstrapFile (a saved /sdk/v1/ruleset body). On any failure the last ruleset keeps serving.
//
// Provider events: READY once a ruleset is loaded (and again after a failure has passed),
// STALE when the server cannot be reached (the last ruleset is served), ERROR when the key is
// refused (401/403) or no ruleset could be loaded at all, and CONFIGURATION_CHANGED with the keys
// of the flags whose configuration changed (including flags using a segment that changed).
//
// # Events
//
// Exposures (an evaluation that a running experiment served to a context with a targeting key)
// and OpenFeature Track calls (goal events) go to POST /sdk/v1/events in batches, each event with
// its own event_id (a UUIDv7) and occurred_at, so a retried batch is stored once. The queue is
// bounded: when full, new events are dropped and counted (Stats), and evaluation never waits.
// Failed batches are retried with jittered backoff, honouring Retry-After on 429 and 503; 400s
// are not retried (the server kept the valid events and said why it refused the others).
// Shutdown flushes every queued event (within ShutdownTimeout) before it returns, and leaves no
// goroutine or connection behind.
package vexil
