package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Backoff is the wait before attempt n+1 after n failed attempts (n >= 1).
type Backoff func(failed int) time.Duration

// ExponentialBackoff doubles from base up to limit, with "equal jitter": half the step is fixed,
// the other half random, so receivers that failed together are not retried in lock step.
func ExponentialBackoff(base, limit time.Duration) Backoff {
	return func(failed int) time.Duration {
		d := base
		for i := 1; i < failed && d < limit; i++ {
			d *= 2
		}
		d = min(d, limit)
		return d/2 + rand.N(d/2+1)
	}
}

// Defaults of the worker.
const (
	DefaultRetryWindow  = 24 * time.Hour
	DefaultPollInterval = time.Second
	DefaultTimeout      = 10 * time.Second
	DefaultBatch        = 20
)

// DefaultBackoff: 10 s, 20 s, 40 s, ... up to an hour between attempts: about 30 attempts in the
// 24 hours of the retry window.
var DefaultBackoff = ExponentialBackoff(10*time.Second, time.Hour)

// WorkerConfig configures a Worker. Only Pool is required.
type WorkerConfig struct {
	Pool *pgxpool.Pool
	// Client sends the requests; nil is a client with Timeout that never follows redirects.
	Client *http.Client
	// Backoff between attempts (DefaultBackoff); tests inject a short one.
	Backoff Backoff
	// RetryWindow: a delivery still failing this long after it was queued is given up (failed).
	RetryWindow  time.Duration
	PollInterval time.Duration
	Timeout      time.Duration
	Batch        int
	Registerer   prometheus.Registerer // nil: metrics are not registered
	Logger       *slog.Logger
}

// Worker delivers the outbox at least once. Any number of workers may run (on every replica of
// the role): each claims due deliveries with FOR UPDATE SKIP LOCKED and leases them by moving
// their next attempt past the request's timeout, so two workers never send one delivery at once,
// and a worker that dies leaves its deliveries to be retried when the lease ends.
type Worker struct {
	cfg      WorkerConfig
	attempts *prometheus.CounterVec
	finished *prometheus.CounterVec
	wake     chan struct{}
}

// NewWorker builds a worker.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if cfg.Pool == nil {
		return nil, errors.New("webhooks: NewWorker needs a pool")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout,
			// A redirect is an answer, not a delivery: following it would send the signed body
			// somewhere the subscription does not name.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.RetryWindow <= 0 {
		cfg.RetryWindow = DefaultRetryWindow
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Worker{cfg: cfg, wake: make(chan struct{}, 1),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_webhook_attempts_total",
			Help: "Webhook delivery attempts, by outcome (success: a 2xx answer; error: anything else)."}, []string{"outcome"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_webhook_deliveries_total",
			Help: "Webhook deliveries finished, by outcome (delivered; failed: still failing at the end of the retry window)."}, []string{"outcome"})}
	for _, o := range []string{"success", "error"} {
		w.attempts.WithLabelValues(o)
	}
	for _, o := range []string{"delivered", "failed"} {
		w.finished.WithLabelValues(o)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(w.attempts); err != nil {
			return nil, fmt.Errorf("webhooks: register metrics: %w", err)
		}
		if err := cfg.Registerer.Register(w.finished); err != nil {
			return nil, fmt.Errorf("webhooks: register metrics: %w", err)
		}
	}
	return w, nil
}

// Wake makes Run look for due deliveries now (after a test delivery was queued).
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers due deliveries until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.PollInterval)
	defer t.Stop()
	for {
		n, err := w.DeliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			w.cfg.Logger.Warn("webhook deliveries", "err", err)
		}
		if n == w.cfg.Batch {
			continue // more are due
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.wake:
		}
	}
}

type claimed struct {
	id, kind, url, secret, format string
	payload                       []byte
	attempts                      int
	createdAt                     time.Time
}

// DeliverDue claims up to Batch due deliveries and attempts each once; it returns how many.
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	lease := w.cfg.Timeout + 30*time.Second
	rows, err := w.cfg.Pool.Query(ctx, `UPDATE webhook_deliveries d SET next_attempt_at = clock_timestamp() + $2 * interval '1 millisecond'
		FROM webhook_subscriptions s
		WHERE s.id = d.subscription_id AND d.id IN (
			SELECT d2.id FROM webhook_deliveries d2 JOIN webhook_subscriptions s2 ON s2.id = d2.subscription_id
			WHERE d2.status = 'pending' AND d2.next_attempt_at <= clock_timestamp() AND s2.enabled
			ORDER BY d2.next_attempt_at LIMIT $1 FOR UPDATE OF d2 SKIP LOCKED)
		RETURNING d.id, d.kind, s.url, s.secret, s.format, d.payload::text, d.attempts, d.created_at`, w.cfg.Batch, lease.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("webhooks: claim due deliveries: %w", err)
	}
	var due []claimed
	for rows.Next() {
		var c claimed
		var payload string
		if err := rows.Scan(&c.id, &c.kind, &c.url, &c.secret, &c.format, &payload, &c.attempts, &c.createdAt); err != nil {
			rows.Close()
			return 0, fmt.Errorf("webhooks: claim due deliveries: %w", err)
		}
		c.payload = []byte(payload)
		due = append(due, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("webhooks: claim due deliveries: %w", err)
	}
	for _, c := range due {
		if err := w.attempt(ctx, c); err != nil {
			return len(due), err
		}
	}
	return len(due), nil
}

// bodyOf is what is sent: the envelope as stored, or Slack's {"text"}.
func bodyOf(format string, payload []byte) ([]byte, error) {
	if format != FormatSlack {
		return payload, nil
	}
	var p Payload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]string{"text": p.Text})
}

func (w *Worker) attempt(ctx context.Context, c claimed) error {
	attempt := c.attempts + 1
	start := time.Now()
	code, sendErr := w.send(ctx, c)
	latency := time.Since(start)
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the lease ends and another attempt follows
	}
	var codePtr *int
	if code != 0 {
		codePtr = &code
	}
	errText := ""
	if sendErr != nil {
		errText = sendErr.Error()
		if len(errText) > 500 {
			errText = errText[:500]
		}
	}
	status, next := "delivered", time.Duration(0)
	if sendErr != nil {
		w.attempts.WithLabelValues("error").Inc()
		next = w.cfg.Backoff(attempt)
		status = "pending"
		if time.Since(c.createdAt)+next > w.cfg.RetryWindow {
			status = "failed"
		}
	} else {
		w.attempts.WithLabelValues("success").Inc()
	}
	if status != "pending" {
		w.finished.WithLabelValues(status).Inc()
	}
	ms := int(latency.Milliseconds())
	tx, err := w.cfg.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("webhooks: record attempt of %s: %w", c.id, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = $2, attempts = $3, last_attempt_at = clock_timestamp(),
			response_code = $4, latency_ms = $5, last_error = $6, next_attempt_at = clock_timestamp() + $7 * interval '1 millisecond'
		WHERE id = $1`, c.id, status, attempt, codePtr, ms, errText, next.Milliseconds()); err != nil {
		return fmt.Errorf("webhooks: record attempt of %s: %w", c.id, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, response_code, latency_ms, error)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, c.id, attempt, codePtr, ms, errText); err != nil {
		return fmt.Errorf("webhooks: record attempt of %s: %w", c.id, err)
	}
	return tx.Commit(ctx)
}

// send posts one delivery; a non-2xx answer is an error with its status code.
func (w *Worker) send(ctx context.Context, c claimed) (int, error) {
	body, err := bodyOf(c.format, c.payload)
	if err != nil {
		return 0, fmt.Errorf("payload: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Vexil-Webhooks/1")
	req.Header.Set(SignatureHeader, Sign(c.secret, time.Now(), body))
	req.Header.Set(DeliveryIDHeader, c.id)
	req.Header.Set(KindHeader, c.kind)
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}
