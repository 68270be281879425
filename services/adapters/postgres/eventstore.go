package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
)

// OutboxTopic is the watermill-sql topic of the outbox. With watermill-sql's default PostgreSQL
// schema its rows live in the table "watermill_outbox" and the relay's offsets in
// "watermill_offsets_outbox" (both created by migration 0002).
const OutboxTopic = "outbox"

// Metadata keys of every outbox message (and so of every message on the domain stream), so a
// consumer can route or skip a message without decoding its payload.
const (
	MetaStreamID = "stream_id"
	MetaVersion  = "version" // the last version of the append, decimal
)

// AppendedEvents is the payload of every outbox message, and so of every message on the domain
// stream: the events one Append recorded on one stream, in version order. Consumers should
// treat it as a notification and read the event store for the truth (messages may be redelivered
// or arrive out of order across streams).
type AppendedEvents struct {
	StreamID string                 `json:"stream_id"`
	Events   []domain.RecordedEvent `json:"events"`
}

// LastVersion returns the version of the last event, 0 when there is none.
func (a AppendedEvents) LastVersion() int64 {
	if len(a.Events) == 0 {
		return 0
	}
	return a.Events[len(a.Events)-1].Version
}

// Querier is what reads need: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// InlineProjection is a read model updated inside the append's transaction, so it is consistent
// the moment Append returns (credentials: a revoked token must stop working at once). An error
// rolls back the whole append. If the projection also has a `Name() string` method, Append
// advances its projection_checkpoints row in the same transaction (when the row was at the
// expected version), so the projector runner skips what was applied inline and WaitFor sees it.
type InlineProjection interface {
	ApplyInline(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error
}

// Option configures an EventStore.
type Option func(*EventStore)

// WithInlineProjections runs projections inside every append's transaction, in order.
func WithInlineProjections(p ...InlineProjection) Option {
	return func(s *EventStore) { s.inline = append(s.inline, p...) }
}

// WithClock stamps appends with clock() instead of the database's clock (tests, time travel).
func WithClock(clock func() time.Time) Option { return func(s *EventStore) { s.clock = clock } }

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *EventStore) { s.log = l } }

// EventStore is the Postgres event store of record, with its transactional outbox.
//
// Streams are append-only sequences of events with contiguous versions 1..N, made safe by
// optimistic concurrency: Append checks the stream is at the expected version and the unique
// (stream_id, version) constraint settles races. Every append also writes one outbox message in
// the same transaction, which the relay forwards to the domain stream: no event is committed
// without its notification, and no notification exists for an event that was rolled back.
type EventStore struct {
	pool   *pgxpool.Pool
	inline []InlineProjection
	clock  func() time.Time
	log    *slog.Logger
	schema wsql.DefaultPostgreSQLSchema
	types  map[string]bool // registered event types: nothing else may enter the store of record
}

// NewEventStore returns an event store on pool. The schema (migrations 0001 and 0002) must exist.
func NewEventStore(pool *pgxpool.Pool, opts ...Option) (*EventStore, error) {
	if pool == nil {
		return nil, errors.New("event store: nil pool")
	}
	s := &EventStore{pool: pool, log: slog.Default(), types: map[string]bool{}}
	for _, t := range domain.EventTypes() {
		s.types[t] = true
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Append appends events to streamID, which must be at expectedVersion (0: the stream must not
// exist), and returns them as recorded. In the same transaction it records meta.CommandID (when
// set), runs the inline projections and writes one outbox message carrying the recorded events.
//
// Errors: EInvalid for an empty stream id, no events, an event type not registered in domain, or
// a negative expected version; EConflict
// with Details{"current_version": N} when the stream is not at expectedVersion (including a
// concurrent append winning the race); EConflict with Details{"duplicate_command": true,
// "version": V} when the command id was already recorded on this stream (nothing is appended);
// EUnavailable when the database is unreachable. Nothing is written unless everything is.
func (s *EventStore) Append(ctx context.Context, streamID string, expectedVersion int64, meta domain.Metadata, events ...domain.Event) ([]domain.RecordedEvent, error) {
	switch {
	case streamID == "":
		return nil, domain.Invalid("stream_id", "must not be empty")
	case len(events) == 0:
		return nil, domain.Invalid("events", "at least one event is required")
	case expectedVersion < 0:
		return nil, domain.Invalid("expected_version", "must not be negative, got %d", expectedVersion)
	}
	types := make([]string, len(events))
	datas := make([]string, len(events))
	versions := make([]int64, len(events))
	for i, e := range events {
		if e == nil {
			return nil, domain.Invalid(fmt.Sprintf("events[%d]", i), "must not be nil")
		}
		if !s.types[e.EventType()] {
			return nil, domain.Invalid(fmt.Sprintf("events[%d]", i), "unregistered event type %q", e.EventType())
		}
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("append %s: marshal %s: %w", streamID, e.EventType(), err)
		}
		types[i], datas[i], versions[i] = e.EventType(), string(b), expectedVersion+int64(i)+1
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("append %s: marshal metadata: %w", streamID, err)
	}
	last := versions[len(versions)-1]

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, TranslateError(fmt.Errorf("append %s: begin: %w", streamID, err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	// One round trip: the current version, the recorded command, and the append's timestamp.
	// clock_timestamp() is read after the previous version was seen committed, so timestamps
	// never go backwards within a stream (LoadUntil relies on it).
	var current int64
	var at time.Time
	var commandVersion *int64
	err = tx.QueryRow(ctx, `
		SELECT coalesce((SELECT max(version) FROM events WHERE stream_id = $1), 0),
		       clock_timestamp(),
		       (SELECT version FROM stream_commands WHERE stream_id = $1 AND command_id = $2)`,
		streamID, meta.CommandID).Scan(&current, &at, &commandVersion)
	if err != nil {
		return nil, TranslateError(fmt.Errorf("append %s: read version: %w", streamID, err))
	}
	if meta.CommandID != "" && commandVersion != nil {
		return nil, duplicateCommand(streamID, meta.CommandID, *commandVersion, current)
	}
	if current != expectedVersion {
		return nil, conflict(streamID, expectedVersion, current)
	}
	at = at.UTC()
	if s.clock != nil {
		at = s.clock().UTC().Truncate(time.Microsecond)
	}

	if meta.CommandID != "" {
		// Inserted before the events, so a concurrent repeat of the command waits on this row
		// and then reports a duplicate rather than a version conflict.
		_, err := tx.Exec(ctx, `INSERT INTO stream_commands (stream_id, command_id, version, recorded_at)
			VALUES ($1, $2, $3, $4)`, streamID, meta.CommandID, last, at)
		if IsUniqueViolation(err, "") {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, s.duplicateAfterRace(ctx, streamID, meta.CommandID)
		}
		if err != nil {
			return nil, TranslateError(fmt.Errorf("append %s: record command: %w", streamID, err))
		}
	}

	rows, err := tx.Query(ctx, `
		INSERT INTO events (stream_id, version, event_type, data, metadata, occurred_at)
		SELECT $1, u.version, u.event_type, u.data::jsonb, $5, $6
		FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(version, event_type, data)
		ORDER BY u.version
		RETURNING position, version, data`,
		streamID, versions, types, datas, metaJSON, at)
	if err != nil {
		if IsUniqueViolation(err, "events_stream_version") {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, s.conflictAfterRace(ctx, streamID, expectedVersion)
		}
		return nil, TranslateError(fmt.Errorf("append %s: insert events: %w", streamID, err))
	}
	recorded := make([]domain.RecordedEvent, len(events))
	n := 0
	for rows.Next() {
		var pos, v int64
		var data []byte
		if err := rows.Scan(&pos, &v, &data); err != nil {
			rows.Close()
			return nil, TranslateError(fmt.Errorf("append %s: scan: %w", streamID, err))
		}
		i := v - expectedVersion - 1
		recorded[i] = domain.RecordedEvent{StreamID: streamID, Version: v, Position: pos, Type: types[i],
			Data: json.RawMessage(data), Metadata: meta, OccurredAt: at}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		if IsUniqueViolation(err, "events_stream_version") {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, s.conflictAfterRace(ctx, streamID, expectedVersion)
		}
		return nil, TranslateError(fmt.Errorf("append %s: insert events: %w", streamID, err))
	}
	if n != len(events) {
		return nil, fmt.Errorf("append %s: inserted %d events, want %d", streamID, n, len(events))
	}

	for _, p := range s.inline {
		// The checkpoint row is locked before the read model's rows, the same order the
		// projector runner uses, so the two never deadlock.
		if named, ok := p.(interface{ Name() string }); ok {
			if err := advanceInlineCheckpoint(ctx, tx, named.Name(), streamID, expectedVersion, last); err != nil {
				return nil, TranslateError(fmt.Errorf("append %s: checkpoint %s: %w", streamID, named.Name(), err))
			}
		}
		if err := p.ApplyInline(ctx, tx, recorded); err != nil {
			return nil, fmt.Errorf("append %s: inline projection %T: %w", streamID, p, err)
		}
	}

	if err := s.publishOutbox(ctx, tx, streamID, recorded); err != nil {
		return nil, TranslateError(fmt.Errorf("append %s: outbox: %w", streamID, err))
	}
	// Wakes the relay at commit instead of at its next poll (a hint: the row above is what counts).
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, NotifyOutbox); err != nil {
		return nil, TranslateError(fmt.Errorf("append %s: notify the relay: %w", streamID, err))
	}
	if err := tx.Commit(ctx); err != nil {
		if IsUniqueViolation(err, "events_stream_version") {
			return nil, s.conflictAfterRace(ctx, streamID, expectedVersion)
		}
		return nil, TranslateError(fmt.Errorf("append %s: commit: %w", streamID, err))
	}
	return recorded, nil
}

// publishOutbox writes the outbox message through a watermill-sql publisher bound to tx.
func (s *EventStore) publishOutbox(ctx context.Context, tx pgx.Tx, streamID string, recorded []domain.RecordedEvent) error {
	payload, err := json.Marshal(AppendedEvents{StreamID: streamID, Events: recorded})
	if err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	msg := message.NewMessage(id.String(), payload)
	msg.Metadata.Set(MetaStreamID, streamID)
	msg.Metadata.Set(MetaVersion, strconv.FormatInt(recorded[len(recorded)-1].Version, 10))
	msg.SetContext(ctx)
	pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: s.schema}, nil)
	if err != nil {
		return err
	}
	return pub.Publish(OutboxTopic, msg)
}

func advanceInlineCheckpoint(ctx context.Context, tx pgx.Tx, projection, streamID string, expected, last int64) error {
	if expected == 0 {
		_, err := tx.Exec(ctx, `
			INSERT INTO projection_checkpoints (projection, stream_id, version, updated_at)
			VALUES ($1, $2, $3, now())
			ON CONFLICT (projection, stream_id) DO UPDATE SET version = excluded.version, updated_at = now()
			WHERE projection_checkpoints.version = 0`, projection, streamID, last)
		return err
	}
	// Only when the projection had applied exactly the events before this append; otherwise the
	// runner still has a gap to fill and will (idempotently) apply these events again.
	_, err := tx.Exec(ctx, `
		UPDATE projection_checkpoints SET version = $4, updated_at = now()
		WHERE projection = $1 AND stream_id = $2 AND version = $3`, projection, streamID, expected, last)
	return err
}

func conflict(streamID string, expected, current int64) error {
	msg := fmt.Sprintf("stream %s is at version %d, not %d; reload and retry", streamID, current, expected)
	if expected == 0 {
		msg = fmt.Sprintf("%s already exists (version %d)", streamID, current)
	}
	return &domain.Error{Code: domain.EConflict, Message: msg,
		Details: map[string]any{"current_version": current}}
}

func duplicateCommand(streamID, commandID string, version, current int64) error {
	return &domain.Error{Code: domain.EConflict,
		Message: fmt.Sprintf("command %s was already applied to %s (version %d)", commandID, streamID, version),
		Details: map[string]any{"duplicate_command": true, "version": version, "current_version": current}}
}

// conflictAfterRace reports a lost race on (stream_id, version) with the version that won.
func (s *EventStore) conflictAfterRace(ctx context.Context, streamID string, expected int64) error {
	current, err := s.StreamVersion(ctx, streamID)
	if err != nil {
		return err
	}
	return conflict(streamID, expected, current)
}

func (s *EventStore) duplicateAfterRace(ctx context.Context, streamID, commandID string) error {
	var version *int64
	var current int64
	err := s.pool.QueryRow(ctx, `
		SELECT (SELECT version FROM stream_commands WHERE stream_id = $1 AND command_id = $2),
		       coalesce((SELECT max(version) FROM events WHERE stream_id = $1), 0)`,
		streamID, commandID).Scan(&version, &current)
	if err != nil {
		return TranslateError(fmt.Errorf("append %s: read duplicate command: %w", streamID, err))
	}
	if version == nil { // the other attempt rolled back after all: report the state as it is
		return &domain.Error{Code: domain.EConflict, Message: fmt.Sprintf("command %s raced with itself on %s; retry", commandID, streamID),
			Details: map[string]any{"current_version": current}}
	}
	return duplicateCommand(streamID, commandID, *version, current)
}

const selectEvents = `SELECT position, stream_id, version, event_type, data, metadata, occurred_at FROM events `

// Load returns every event of streamID in version order (none for a stream that does not exist).
func (s *EventStore) Load(ctx context.Context, streamID string) ([]domain.RecordedEvent, error) {
	return s.LoadAfter(ctx, s.pool, streamID, 0)
}

// LoadAfter returns the events of streamID with a version above afterVersion, in version order,
// read through q (the pool, or a transaction to read in its snapshot).
func (s *EventStore) LoadAfter(ctx context.Context, q Querier, streamID string, afterVersion int64) ([]domain.RecordedEvent, error) {
	return queryEvents(ctx, q, selectEvents+`WHERE stream_id = $1 AND version > $2 ORDER BY version`, streamID, afterVersion)
}

// LoadUntil returns the stream as it was at until: its events up to the last one that occurred
// at or before until, in version order (time travel, audit).
func (s *EventStore) LoadUntil(ctx context.Context, streamID string, until time.Time) ([]domain.RecordedEvent, error) {
	return queryEvents(ctx, s.pool, selectEvents+`
		WHERE stream_id = $1
		  AND version <= (SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1 AND occurred_at <= $2)
		ORDER BY version`, streamID, until)
}

// ReadAll returns up to limit events (1000 when limit <= 0) of every stream with a position above
// afterPosition, in position order (replay). Positions are taken at insert and become visible at
// commit, so a reader tailing the live store could see position N+1 before N; replay reads a
// store whose writers it has stopped, or accepts that and re-reads.
func (s *EventStore) ReadAll(ctx context.Context, afterPosition int64, limit int) ([]domain.RecordedEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	return queryEvents(ctx, s.pool, selectEvents+`WHERE position > $1 ORDER BY position LIMIT $2`, afterPosition, limit)
}

// StreamVersion returns the version of streamID's last event, 0 when the stream does not exist.
func (s *EventStore) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1`, streamID).Scan(&v)
	if err != nil {
		return 0, TranslateError(fmt.Errorf("stream version %s: %w", streamID, err))
	}
	return v, nil
}

// ListStreams returns the ids of every stream starting with prefix ("" for all), sorted; e.g.
// ListStreams(ctx, "flag/web/") lists the flags of project web.
func (s *EventStore) ListStreams(ctx context.Context, prefix string) ([]string, error) {
	query := `SELECT DISTINCT stream_id FROM events WHERE starts_with(stream_id, $1) ORDER BY stream_id`
	args := []any{prefix}
	if n := len(prefix); n > 0 && prefix[n-1] < 0x7f {
		// A range in "C" collation, which the events_stream_c index (migration 0004) serves.
		query = `SELECT DISTINCT stream_id FROM events
			WHERE stream_id COLLATE "C" >= $1 AND stream_id COLLATE "C" < $2 AND starts_with(stream_id, $1)
			ORDER BY stream_id`
		args = append(args, prefix[:n-1]+string(prefix[n-1]+1))
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, TranslateError(fmt.Errorf("list streams %q: %w", prefix, err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, TranslateError(fmt.Errorf("list streams %q: %w", prefix, err))
	}
	return ids, nil
}

func queryEvents(ctx context.Context, q Querier, sql string, args ...any) ([]domain.RecordedEvent, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, TranslateError(fmt.Errorf("load events: %w", err))
	}
	defer rows.Close()
	var out []domain.RecordedEvent
	for rows.Next() {
		var r domain.RecordedEvent
		var data, meta []byte
		if err := rows.Scan(&r.Position, &r.StreamID, &r.Version, &r.Type, &data, &meta, &r.OccurredAt); err != nil {
			return nil, TranslateError(fmt.Errorf("load events: scan: %w", err))
		}
		r.Data = json.RawMessage(data)
		if err := json.Unmarshal(meta, &r.Metadata); err != nil {
			return nil, fmt.Errorf("load events: metadata of %s@%d: %w", r.StreamID, r.Version, err)
		}
		r.OccurredAt = r.OccurredAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, TranslateError(fmt.Errorf("load events: %w", err))
	}
	return out, nil
}
