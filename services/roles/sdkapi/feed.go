package sdkapi

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/rulesets"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/roles/projector"
)

// FeedOptions configure how the snapshots follow changes.
type FeedOptions struct {
	// Subscriber reads the domain stream in fan-out (every replica sees every change) from Topic.
	// Nil: only reconciliation (and Notify) refresh the snapshots.
	Subscriber message.Subscriber
	Topic      string
	// Reconcile is the interval of the full comparison of versions with the database, which
	// repairs anything a missed notification left stale. Default 10s.
	Reconcile time.Duration
	// ProjectionWait bounds how long a notification waits for the rulesets read model to apply the
	// change it announces. Default 5s.
	ProjectionWait time.Duration
}

// notification is a stream that changed, to be reflected in the snapshots.
type notification struct {
	streamID string
	version  int64
	applied  bool // the read models are known to include it (in-process projector hook)
	// retries is how many times the notification came back because the read models were still
	// behind it when its refresh ran (see apply).
	retries int
}

// maxNotificationRetries bounds how often a notification whose read models were behind is
// looked at again (each after another ProjectionWait): long enough for a projector catching up
// after an incident on a busy machine, short of turning a projector that is down into a loop.
// Reconciliation repairs what is left.
const maxNotificationRetries = 6

// Notify tells the snapshots that the read models applied streamID up to version; the projector
// calls it in-process when both roles run together. It never blocks: if the queue is full the
// reconciliation catches up.
func (s *Server) Notify(streamID string, version int64) {
	select {
	case s.notes <- notification{streamID: streamID, version: version, applied: true}:
	default:
	}
}

// Resync asks Run to reconcile every snapshot with the database now, e.g. when the domain stream
// comes back after a Redis incident that may have lost notifications (wire it as the fan-out
// subscriber's redisstream.OnRecovered hook). It never blocks.
func (s *Server) Resync() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// Run follows changes until ctx ends: it consumes the domain stream, applies in-process
// notifications, reconciles on a timer, and flushes evaluation counts. The snapshots must have
// been loaded (Snapshots.Load) before serving.
func (s *Server) Run(ctx context.Context, opts FeedOptions) error {
	if opts.Reconcile <= 0 {
		opts.Reconcile = 10 * time.Second
	}
	if opts.ProjectionWait <= 0 {
		opts.ProjectionWait = 5 * time.Second
	}
	if s.exposures != nil {
		done := make(chan struct{})
		go func() { s.exposures.run(ctx); close(done) }()
		defer func() { <-done }() // the last exposures are flushed before the platform closes the stream
	}
	if opts.Subscriber != nil {
		msgs, err := opts.Subscriber.Subscribe(ctx, opts.Topic)
		if err != nil {
			return err
		}
		defer opts.Subscriber.Close()
		go func() {
			for msg := range msgs {
				var a postgres.AppendedEvents
				if err := json.Unmarshal(msg.Payload, &a); err == nil && a.StreamID != "" {
					select {
					case s.notes <- notification{streamID: a.StreamID, version: a.LastVersion()}:
					case <-ctx.Done():
					}
				}
				msg.Ack() // fan-out: nothing to redeliver; reconciliation repairs misses
			}
		}()
	}
	reconcile := time.NewTicker(opts.Reconcile)
	defer reconcile.Stop()
	flush := time.NewTicker(s.opts.FlushInterval)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.FlushCounts(fctx)
			cancel()
			return nil
		case n := <-s.notes:
			s.apply(ctx, s.coalesce(n), opts.ProjectionWait)
		case <-s.resync:
			if err := s.snaps.Load(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("snapshot reconciliation after a stream incident failed; serving the last snapshot", "err", err)
			}
		case <-reconcile.C:
			if err := s.snaps.Load(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("snapshot reconciliation failed; serving the last snapshot", "err", err)
			}
		case <-flush.C:
			s.FlushCounts(ctx)
		}
	}
}

// maxCoalesced bounds how many queued notifications one refresh answers.
const maxCoalesced = 256

// coalesce takes n and the notifications queued behind it. A refresh reloads a whole environment,
// so answering a burst of changes (a script writing flags one by one, a bulk import) with one
// refresh per project instead of one per change saves a full reload each, without delaying any
// of them: the refresh that follows sees them all.
func (s *Server) coalesce(n notification) []notification {
	batch := []notification{n}
	for len(batch) < maxCoalesced {
		select {
		case m := <-s.notes:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// apply refreshes each project the changed streams belong to, once, after waiting (bounded) until
// the read models include each change that the in-process projector has not vouched for.
func (s *Server) apply(ctx context.Context, batch []notification, wait time.Duration) {
	type pending struct {
		keysToo bool
		streams map[string]int64 // stream -> highest version to wait for (0: applied already)
	}
	var order []string
	projects := map[string]*pending{}
	retries := map[string]int{}
	for _, n := range batch {
		retries[n.streamID] = max(retries[n.streamID], n.retries)
		kind := domain.StreamKind(n.streamID)
		if kind != "project" && kind != "flag" && kind != "segment" {
			continue
		}
		parts := strings.SplitN(n.streamID, "/", 3)
		if len(parts) < 2 {
			continue
		}
		p := projects[parts[1]]
		if p == nil {
			p = &pending{streams: map[string]int64{}}
			projects[parts[1]] = p
			order = append(order, parts[1])
		}
		p.keysToo = p.keysToo || kind == "project"
		if !n.applied && s.snaps.pool != nil { // an edge has no read models to wait for
			p.streams[n.streamID] = max(p.streams[n.streamID], n.version)
		}
	}
	if len(order) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, wait) // one bound for the whole batch
	defer cancel()
	for _, project := range order {
		p := projects[project]
		for streamID, version := range p.streams {
			if err := projector.WaitFor(wctx, s.snaps.pool, streamID, version, []string{rulesets.Name, access.Name}); err != nil {
				s.log.Debug("read models behind a notification; refreshing anyway and looking again later", "stream", streamID, "err", err)
				// The refresh below reads the read models as they are, without this change: a
				// projector slower than the wait (catching up after a Redis incident on a busy
				// machine) would leave the snapshot stale until the next reconciliation.
				s.retryLater(ctx, notification{streamID: streamID, version: version, retries: retries[streamID] + 1}, wait)
			}
		}
		if err := s.snaps.RefreshProject(ctx, project, p.keysToo); err != nil && ctx.Err() == nil {
			s.log.Warn("snapshot refresh failed; serving the last snapshot", "project", project, "err", err)
		}
	}
}

// retryLater queues n again after delay, unless it came back too often already or ctx ends. It
// never blocks Run: a full queue drops it (reconciliation repairs).
func (s *Server) retryLater(ctx context.Context, n notification, delay time.Duration) {
	if n.retries > maxNotificationRetries || ctx.Err() != nil {
		return
	}
	time.AfterFunc(delay, func() {
		if ctx.Err() != nil {
			return
		}
		select {
		case s.notes <- n:
		default:
		}
	})
}
