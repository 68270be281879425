package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
)

// Payload formats of a subscription.
const (
	FormatJSON  = "json"  // Vexil's envelope (Payload)
	FormatSlack = "slack" // {"text": "..."}, what Slack's (and Mattermost's, Discord's /slack) incoming webhooks take
)

// Subscription sends a project's news of some kinds to a URL.
type Subscription struct {
	ID          string    `json:"id"`
	Project     string    `json:"project"`
	URL         string    `json:"url"`
	Kinds       []string  `json:"kinds"`
	Format      string    `json:"format"`
	Description string    `json:"description"`
	Enabled     bool      `json:"enabled"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
}

// SubscriptionWithSecret is a subscription as created: the only answer that shows its secret.
type SubscriptionWithSecret struct {
	Subscription
	Secret string `json:"secret"`
}

// NewSubscription is what Create needs. An empty Secret is generated.
type NewSubscription struct {
	URL         string   `json:"url"`
	Secret      string   `json:"secret,omitempty"`
	Kinds       []string `json:"kinds"`
	Format      string   `json:"format,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Store reads and writes subscriptions and the delivery log.
type Store struct{ pool *pgxpool.Pool }

// NewStore builds the store over pool.
func NewStore(pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, errors.New("webhooks: NewStore needs a pool")
	}
	return &Store{pool: pool}, nil
}

// MinSecretLength is the shortest secret a person may choose (16 bytes of a random source).
const MinSecretLength = 16

func (n *NewSubscription) validate() error {
	u, err := url.Parse(n.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(n.URL) > 2000 {
		return domain.Invalid("url", "url must be an absolute http or https URL")
	}
	if u.User != nil {
		return domain.Invalid("url", "url must not carry a user or password (use the signature to authenticate Vexil)")
	}
	if n.Secret != "" && (len(n.Secret) < MinSecretLength || len(n.Secret) > 200 || !utf8.ValidString(n.Secret)) {
		return domain.Invalid("secret", "secret must be %d to 200 characters (or left out to have one generated)", MinSecretLength)
	}
	if len(n.Kinds) == 0 {
		return domain.Invalid("kinds", "kinds must name at least one of %s", strings.Join(Kinds(), ", "))
	}
	known := Kinds()
	for i, k := range n.Kinds {
		if !slices.Contains(known, k) {
			return domain.Invalid(fmt.Sprintf("kinds[%d]", i), "unknown kind %q: one of %s", k, strings.Join(known, ", "))
		}
	}
	slices.Sort(n.Kinds)
	n.Kinds = slices.Compact(n.Kinds)
	if n.Format == "" {
		n.Format = FormatJSON
	}
	if n.Format != FormatJSON && n.Format != FormatSlack {
		return domain.Invalid("format", "format must be json or slack")
	}
	if utf8.RuneCountInString(n.Description) > 500 || !utf8.ValidString(n.Description) || strings.ContainsRune(n.Description, 0) {
		return domain.Invalid("description", "description must be at most 500 characters")
	}
	return nil
}

// Create adds a subscription; it receives the events recorded from now on.
func (s *Store) Create(ctx context.Context, project string, n NewSubscription, by string) (SubscriptionWithSecret, error) {
	if err := n.validate(); err != nil {
		return SubscriptionWithSecret{}, err
	}
	if n.Secret == "" {
		n.Secret = "whsec_" + randomToken()
	}
	out := SubscriptionWithSecret{Subscription: Subscription{ID: "wh_" + randomHex(8), Project: project, URL: n.URL,
		Kinds: n.Kinds, Format: n.Format, Description: n.Description, Enabled: true, CreatedBy: by}, Secret: n.Secret}
	// clock_timestamp, not now(): the outbox compares it with events' times, which are taken
	// with clock_timestamp() too (services/adapters/postgres: Append).
	err := s.pool.QueryRow(ctx, `INSERT INTO webhook_subscriptions (id, project, url, secret, kinds, format, description, created_at, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp(), $8) RETURNING created_at`,
		out.ID, project, n.URL, n.Secret, n.Kinds, n.Format, n.Description, by).Scan(&out.CreatedAt)
	if err != nil {
		return SubscriptionWithSecret{}, fmt.Errorf("webhooks: create subscription in %s: %w", project, err)
	}
	return out, nil
}

const subscriptionColumns = `id, project, url, kinds, format, description, enabled, created_at, created_by`

func scanSubscription(row pgx.Row) (Subscription, error) {
	var w Subscription
	err := row.Scan(&w.ID, &w.Project, &w.URL, &w.Kinds, &w.Format, &w.Description, &w.Enabled, &w.CreatedAt, &w.CreatedBy)
	return w, err
}

// List is a project's subscriptions, oldest first (never their secrets).
func (s *Store) List(ctx context.Context, project string) ([]Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions WHERE project = $1 ORDER BY created_at, id`, project)
	if err != nil {
		return nil, fmt.Errorf("webhooks: list subscriptions of %s: %w", project, err)
	}
	defer rows.Close()
	out := []Subscription{}
	for rows.Next() {
		w, err := scanSubscription(rows)
		if err != nil {
			return nil, fmt.Errorf("webhooks: list subscriptions of %s: %w", project, err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// Get is one subscription of a project; ENotFound when there is none.
func (s *Store) Get(ctx context.Context, project, id string) (Subscription, error) {
	w, err := scanSubscription(s.pool.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions WHERE project = $1 AND id = $2`, project, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Subscription{}, domain.Errorf(domain.ENotFound, "no webhook subscription %q in project %q", id, project)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("webhooks: get subscription %s: %w", id, err)
	}
	return w, nil
}

// SetEnabled pauses or resumes a subscription. While paused nothing is queued for it, and
// deliveries already queued wait.
func (s *Store) SetEnabled(ctx context.Context, project, id string, enabled bool) (Subscription, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_subscriptions SET enabled = $3 WHERE project = $1 AND id = $2`, project, id, enabled)
	if err != nil {
		return Subscription{}, fmt.Errorf("webhooks: enable subscription %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return Subscription{}, domain.Errorf(domain.ENotFound, "no webhook subscription %q in project %q", id, project)
	}
	return s.Get(ctx, project, id)
}

// Delete removes a subscription with its queue and delivery log.
func (s *Store) Delete(ctx context.Context, project, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_subscriptions WHERE project = $1 AND id = $2`, project, id)
	if err != nil {
		return fmt.Errorf("webhooks: delete subscription %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return domain.Errorf(domain.ENotFound, "no webhook subscription %q in project %q", id, project)
	}
	return nil
}

// Delivery is one message for a subscription, with the outcome of its latest attempt.
type Delivery struct {
	ID             string     `json:"id"`
	SubscriptionID string     `json:"subscription_id"`
	Kind           string     `json:"kind"`
	EventPosition  *int64     `json:"event_position,omitempty"`
	Status         string     `json:"status"` // pending, delivered, failed
	Attempts       int        `json:"attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"` // pending only
	CreatedAt      time.Time  `json:"created_at"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	ResponseCode   *int       `json:"response_code,omitempty"`
	LatencyMS      *int       `json:"latency_ms,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	Summary        string     `json:"summary"`
	AttemptLog     []Attempt  `json:"attempt_log"`
}

// Attempt is one try at a delivery.
type Attempt struct {
	Attempt      int       `json:"attempt"`
	AttemptedAt  time.Time `json:"attempted_at"`
	ResponseCode *int      `json:"response_code,omitempty"`
	LatencyMS    int       `json:"latency_ms"`
	Error        string    `json:"error,omitempty"`
}

// Deliveries is a subscription's delivery log, newest first, at most limit (1..200, default 50).
func (s *Store) Deliveries(ctx context.Context, project, id string, limit int) ([]Delivery, error) {
	if _, err := s.Get(ctx, project, id); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	rows, err := s.pool.Query(ctx, `SELECT d.id, d.subscription_id, d.kind, d.event_position, d.status, d.attempts,
			CASE WHEN d.status = 'pending' THEN d.next_attempt_at END, d.created_at, d.last_attempt_at, d.response_code,
			d.latency_ms, d.last_error, coalesce(d.payload->>'text', ''),
			coalesce((SELECT json_agg(json_build_object('attempt', a.attempt, 'attempted_at', a.attempted_at,
				'response_code', a.response_code, 'latency_ms', a.latency_ms, 'error', a.error) ORDER BY a.attempt)
				FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]')
		FROM webhook_deliveries d WHERE d.subscription_id = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("webhooks: deliveries of %s: %w", id, err)
	}
	defer rows.Close()
	out := []Delivery{}
	for rows.Next() {
		var d Delivery
		if err := rows.Scan(&d.ID, &d.SubscriptionID, &d.Kind, &d.EventPosition, &d.Status, &d.Attempts, &d.NextAttemptAt,
			&d.CreatedAt, &d.LastAttemptAt, &d.ResponseCode, &d.LatencyMS, &d.LastError, &d.Summary, &d.AttemptLog); err != nil {
			return nil, fmt.Errorf("webhooks: deliveries of %s: %w", id, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SendTest queues a test delivery for a subscription (the console's "send test" button); the
// worker sends it like any other, so its outcome shows in the delivery log.
func (s *Store) SendTest(ctx context.Context, project, id, by string) (Delivery, error) {
	if _, err := s.Get(ctx, project, id); err != nil {
		return Delivery{}, err
	}
	d := Delivery{ID: newDeliveryID(), SubscriptionID: id, Kind: KindTest, Status: "pending", AttemptLog: []Attempt{}}
	p := Payload{ID: d.ID, Kind: KindTest, Project: project, Actor: by, OccurredAt: time.Now().UTC(),
		Text: fmt.Sprintf("[%s] test delivery sent by %s: this webhook works", project, by)}
	d.Summary = p.Text
	err := s.pool.QueryRow(ctx, `INSERT INTO webhook_deliveries (id, subscription_id, project, kind, payload) VALUES ($1, $2, $3, $4, $5)
		RETURNING created_at, next_attempt_at`, d.ID, id, project, KindTest, p).Scan(&d.CreatedAt, &d.NextAttemptAt)
	if err != nil {
		return Delivery{}, fmt.Errorf("webhooks: queue a test delivery for %s: %w", id, err)
	}
	return d, nil
}

func newDeliveryID() string { return "whd_" + randomHex(12) }

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("webhooks: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("webhooks: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}
