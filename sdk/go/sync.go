package vexil

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
)

// errRefused is a download refused for good: the key is unknown, rotated or not a server key.
var errRefused = errors.New("vexil: the server refused the SDK key")

// errNoStream: the server has no SSE stream (or a proxy in between does not pass it).
var errNoStream = errors.New("vexil: the server offers no SSE stream")

// fetch downloads the ruleset unless it is the one held (If-None-Match), and installs it.
func (p *Provider) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.opts.BaseURL+"/sdk/v1/ruleset", nil)
	if err != nil {
		return fmt.Errorf("vexil: ruleset request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.opts.ServerKey)
	req.Header.Set("Accept", "application/json")
	if cur := p.current.Load(); cur != nil && cur.etag != "" {
		req.Header.Set("If-None-Match", cur.etag)
	}
	res, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("vexil: download ruleset: %w", err)
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusNotModified:
		_, _ = io.Copy(io.Discard, res.Body)
		p.fresh()
		return nil
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		_, _ = io.Copy(io.Discard, res.Body)
		return fmt.Errorf("%w: GET /sdk/v1/ruleset answered %d", errRefused, res.StatusCode)
	case res.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, res.Body)
		return fmt.Errorf("vexil: download ruleset: status %d", res.StatusCode)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("vexil: download ruleset: %w", err)
	}
	next, err := newSnapshot(body, res.Header.Get("ETag"))
	if err != nil {
		return err
	}
	p.install(next, true)
	return nil
}

// install makes next the served ruleset and tells OpenFeature what changed. fromServer marks
// the provider fresh (a bootstrap file does not).
func (p *Provider) install(next *snapshot, fromServer bool) {
	prev := p.current.Swap(next)
	if fromServer {
		p.fresh()
		if p.opts.SaveBootstrap {
			if err := writeFileAtomic(p.opts.BootstrapFile, next.body); err != nil {
				p.opts.Logger.Warn("vexil: bootstrap file not saved", "file", p.opts.BootstrapFile, "err", err)
			}
		}
	}
	if prev != nil && prev.etag == next.etag {
		return
	}
	if changed := changedFlags(prev, next); prev != nil && len(changed) > 0 {
		p.emit(openfeature.ProviderConfigChange, openfeature.ProviderEventDetails{
			Message: fmt.Sprintf("ruleset version %d", next.version), FlagChanges: changed,
			EventMetadata: map[string]any{"version": next.version}})
	}
}

// fresh notes a successful exchange with the server: a stale or failed provider is ready again.
func (p *Provider) fresh() {
	p.mu.Lock()
	was := p.status
	p.status = openfeature.ReadyState
	p.mu.Unlock()
	if was != openfeature.ReadyState && was != openfeature.NotReadyState {
		p.emit(openfeature.ProviderReady, openfeature.ProviderEventDetails{Message: "the server answers again"})
	}
}

// failed notes a failed exchange: the provider turns stale (serving the last ruleset), or error
// when the key is refused or there is no ruleset to serve.
func (p *Provider) failed(err error) {
	status, event := openfeature.StaleState, openfeature.ProviderStale
	if errors.Is(err, errRefused) || p.current.Load() == nil {
		status, event = openfeature.ErrorState, openfeature.ProviderError
	}
	p.mu.Lock()
	was := p.status
	if was != openfeature.NotReadyState {
		p.status = status
	}
	p.mu.Unlock()
	if was == status || was == openfeature.NotReadyState {
		return
	}
	p.opts.Logger.Warn("vexil: serving the last ruleset", "err", err)
	d := openfeature.ProviderEventDetails{Message: "serving the last ruleset: " + err.Error()}
	if event == openfeature.ProviderError {
		d.ErrorCode = openfeature.GeneralCode
	}
	p.emit(event, d)
}

// emit hands an event to OpenFeature without ever blocking (an application that does not use
// the OpenFeature API may never read them).
func (p *Provider) emit(t openfeature.EventType, d openfeature.ProviderEventDetails) {
	select {
	case p.eventCh <- openfeature.Event{ProviderName: providerName, EventType: t, ProviderEventDetails: d}:
	default:
	}
}

// loadBootstrap installs BootstrapFile.
func (p *Provider) loadBootstrap() error {
	body, err := os.ReadFile(p.opts.BootstrapFile)
	if err != nil {
		return fmt.Errorf("vexil: bootstrap file: %w", err)
	}
	s, err := newSnapshot(body, "")
	if err != nil {
		return fmt.Errorf("vexil: bootstrap file %s: %w", p.opts.BootstrapFile, err)
	}
	s.etag = "" // never sent as If-None-Match: the server's copy may differ
	p.install(s, false)
	return nil
}

func writeFileAtomic(path string, body []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vexil-ruleset-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// syncLoop keeps the ruleset current until ctx ends: on the stream when the server has one,
// polling otherwise, with jittered backoff between failed attempts.
func (p *Provider) syncLoop(ctx context.Context) {
	streaming := !p.opts.DisableStreaming
	var noStreamSince time.Time
	failures := 0
	for ctx.Err() == nil {
		if !streaming {
			if !p.opts.DisableStreaming && time.Since(noStreamSince) >= p.opts.StreamRetryInterval {
				streaming = true
				continue
			}
			if err := p.fetch(ctx); err != nil && ctx.Err() == nil {
				p.failed(err)
			}
			sleep(ctx, p.opts.PollInterval)
			continue
		}
		connected, err := p.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNoStream) {
			p.opts.Logger.Warn("vexil: no SSE stream; polling", "interval", p.opts.PollInterval, "err", err)
			streaming, noStreamSince = false, time.Now()
			continue
		}
		if connected {
			failures = 0
		}
		// The stream is gone: is the server? A download tells (and catches up meanwhile).
		if ferr := p.fetch(ctx); ferr != nil && ctx.Err() == nil {
			p.failed(ferr)
		} else if err != nil && errors.Is(err, errRefused) {
			p.failed(err)
		}
		failures++
		sleep(ctx, backoff(p.opts.ReconnectMin, p.opts.ReconnectMax, failures))
	}
}

// backoff is the jittered exponential delay before attempt n (n >= 1): a random duration in
// [d/2, d], d doubling from min up to max, so that many SDKs that lost the same server do not
// reconnect in step.
func backoff(minD, maxD time.Duration, n int) time.Duration {
	d := minD
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// streamEvent is the data of a server-side key's SSE event.
type streamEvent struct {
	Type    string   `json:"type"`
	ETag    string   `json:"etag"`
	Version int64    `json:"version"`
	Flags   []string `json:"flags"`
}

// stream follows GET /sdk/v1/stream until it ends. connected reports whether it was opened.
// On opening, the ruleset is downloaded (a 304 when nothing changed while disconnected); each
// rulesetChanged event downloads it again.
func (p *Provider) stream(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.opts.BaseURL+"/sdk/v1/stream", nil)
	if err != nil {
		return false, fmt.Errorf("vexil: stream request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.opts.ServerKey)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if id := p.lastEventID(); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	// No answer (or no line) for StreamIdleTimeout ends the attempt.
	idle := time.AfterFunc(p.opts.StreamIdleTimeout, cancel)
	defer idle.Stop()
	res, err := p.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("vexil: open stream: %w", err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return false, fmt.Errorf("%w: GET /sdk/v1/stream answered %d", errNoStream, res.StatusCode)
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, fmt.Errorf("%w: GET /sdk/v1/stream answered %d", errRefused, res.StatusCode)
	default:
		return false, fmt.Errorf("vexil: open stream: status %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("%w: GET /sdk/v1/stream answered Content-Type %q", errNoStream, ct)
	}
	if err := p.fetch(ctx); err != nil {
		return true, err
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var id, data string
	for sc.Scan() {
		idle.Reset(p.opts.StreamIdleTimeout)
		line := sc.Text()
		if line == "" { // end of an event
			if data != "" {
				if err := p.onStreamEvent(ctx, id, data); err != nil {
					return true, err
				}
			}
			id, data = "", ""
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "data":
			if data != "" {
				data += "\n"
			}
			data += value
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return true, fmt.Errorf("vexil: stream: %w", err)
	}
	return true, errors.New("vexil: the stream ended")
}

func (p *Provider) onStreamEvent(ctx context.Context, id, data string) error {
	var ev streamEvent
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		p.opts.Logger.Warn("vexil: unreadable stream event ignored", "data", data, "err", err)
		return nil
	}
	if ev.Type != "rulesetChanged" {
		return nil
	}
	if cur := p.current.Load(); cur != nil && ev.ETag != "" && cur.etag == ev.ETag {
		p.setLastEventID(id)
		return nil
	}
	if err := p.fetch(ctx); err != nil {
		return err
	}
	p.setLastEventID(id)
	return nil
}

func (p *Provider) lastEventID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastID
}

func (p *Provider) setLastEventID(id string) {
	if id == "" {
		return
	}
	p.mu.Lock()
	p.lastID = id
	p.mu.Unlock()
}
