// Package sweep is the scheduled heartbeat sweep: it moves satellites whose
// heartbeat stopped to heartbeat_lost (exactly one event per edge, however
// many sweeps run at once), republishes edges whose publication a crashed
// sweep never confirmed, closes connections that never authenticated, and
// removes connection records past their expiry.
package sweep

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/push"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Defaults.
const (
	DefaultUnauthenticatedDeadline = 30 * time.Second
	// DefaultRepublishAfter must exceed the sweep's own run time, so that a
	// sweep never republishes an edge another running sweep is publishing.
	DefaultRepublishAfter = 2 * time.Minute
	// DefaultConcurrency bounds the satellites and connections one sweep
	// works on at once.
	DefaultConcurrency = 16
	// DeadlineMargin is how long before its invocation's deadline a sweep
	// stops starting work: what it has not reached stays where it is (a
	// stale satellite in the live index, an edge in the outbox, a
	// connection record) for the next scheduled sweep.
	DeadlineMargin = 10 * time.Second
	// OnlineEvery is how often the gauge of satellites online is taken: by
	// the sweeps of the first minute of each such period, one datapoint per
	// period of the alarm that watches it. Counting reads the whole live
	// index, the only sweep read that grows with the fleet rather than with
	// the stale satellites.
	OnlineEvery = 5 * time.Minute
	// BackfillSteps bounds the steps of the fleet index backfill one sweep
	// takes (each scans at most 1,000 items of the Satellites table), so
	// that the backfill of a large table spreads over several sweeps.
	BackfillSteps = 20
)

// Sweeper runs one sweep per call.
type Sweeper struct {
	Store  satellite.SweepStore
	Sender *push.Sender
	// ManagementURL is the Management API URL of the WebSocket stage.
	ManagementURL string
	Now           func() time.Time
	Log           *slog.Logger
	// UnauthenticatedDeadline is how long a connection may stay without
	// authenticating.
	UnauthenticatedDeadline time.Duration
	// RepublishAfter is how old an unconfirmed edge must be before a sweep
	// publishes it again.
	RepublishAfter time.Duration
	// Concurrency bounds parallel work; 0 means DefaultConcurrency.
	Concurrency int
	// Metrics receives the sweep's duration, the stale satellites it found
	// and the satellites online; nil records nothing.
	Metrics *metrics.Recorder

	// indexed is set once a step of the fleet index backfill found it
	// done: a warm instance then skips even the read that says so.
	indexed atomic.Bool
}

// Report says what one sweep did.
type Report struct {
	Stale                 int // satellites read as stale
	HeartbeatLost         int // edges this sweep won and published
	Republished           int // pending edges published again
	ClosedUnauthenticated int
	RemovedExpired        int
	// Deferred counts the satellites, edges and connections left for the
	// next sweep because the invocation's deadline was near.
	Deferred int
	Online   int // satellites online (-1 when not counted)
	// Indexed counts satellites stored before the fleet index that this
	// sweep added to it.
	Indexed int
}

// Sweep runs once. Every step is attempted; the first error is returned after
// all ran, so a scheduler retries the sweep (which is idempotent). Work is
// spread over Concurrency workers and stops DeadlineMargin before ctx's
// deadline; what is left is the next sweep's.
func (s *Sweeper) Sweep(ctx context.Context) (Report, error) {
	now := s.Now()
	r := Report{Online: -1}
	var errs []error
	defer func() {
		s.Metrics.Add(metrics.SweepDuration, "", float64(s.Now().Sub(now).Milliseconds()))
	}()

	// Edges recorded but not confirmed published: their writer failed to
	// publish them, or died first.
	cutoff := now.Add(-s.RepublishAfter)
	pending, err := s.Store.PendingEdges(ctx, cutoff)
	errs = append(errs, err)
	var republish []satellite.LifecycleEvent
	for _, sat := range pending {
		for _, e := range sat.PendingEvents() {
			if e.At.Before(cutoff) { // else its writer may still be publishing it
				republish = append(republish, e)
			}
		}
	}
	published, perrs, deferred := s.publish(ctx, republish)
	r.Republished, r.Deferred, errs = published, r.Deferred+deferred, append(errs, perrs...)

	stale, err := s.Store.StaleSatellites(ctx, now)
	errs = append(errs, err)
	r.Stale = len(stale)
	won := make([]*satellite.LifecycleEvent, len(stale))
	werrs, deferred := s.each(ctx, len(stale), func(i int) error {
		ok, e, err := s.Store.MarkHeartbeatLost(ctx, stale[i], now)
		if err == nil && ok {
			won[i] = &e
		}
		return err // not won: another sweep, or a heartbeat, got there first
	})
	r.Deferred, errs = r.Deferred+deferred, append(errs, werrs...)
	var lost []satellite.LifecycleEvent
	for _, e := range won {
		if e != nil {
			s.Log.LogAttrs(ctx, slog.LevelInfo, "heartbeat lost", slog.String("satelliteId", e.SatelliteID), slog.String("edgeId", e.ID))
			lost = append(lost, *e)
		}
	}
	// An edge not published here (an error, or the deadline) stays in the
	// outbox: a later sweep republishes it.
	published, perrs, deferred = s.publish(ctx, lost)
	r.HeartbeatLost, r.Deferred, errs = published, r.Deferred+deferred, append(errs, perrs...)

	unauth, err := s.Store.UnauthenticatedConnections(ctx, now.Add(-s.UnauthenticatedDeadline))
	errs = append(errs, err)
	var closed atomic.Int64
	cerrs, deferred := s.each(ctx, len(unauth), func(i int) error {
		c := unauth[i]
		// The index lags its table: a connection that authenticated a moment
		// ago may still be listed. Only the record says.
		record, err := s.Store.Connection(ctx, c.ID, now)
		if err == nil && record.Authenticated() {
			return nil
		}
		if err != nil && satellite.ErrorCode(err) != satellite.ENOTFOUND {
			return err
		}
		// Close it; its record goes too, in case the socket was already gone
		// and no $disconnect will come.
		if err := s.Sender.Close(ctx, s.ManagementURL, c.ID); err != nil {
			return err
		}
		if err := s.Sender.ConnectionClosed(ctx, c.ID); err != nil {
			return err
		}
		s.Log.LogAttrs(ctx, slog.LevelInfo, "closed connection that never authenticated", slog.String("connectionId", c.ID))
		closed.Add(1)
		return nil
	})
	r.ClosedUnauthenticated, r.Deferred, errs = int(closed.Load()), r.Deferred+deferred, append(errs, cerrs...)

	// The gauge of satellites online: connected and not past their deadline.
	// A failed count leaves a gap in the gauge; it does not fail the sweep,
	// whose work is done.
	if now.Sub(now.Truncate(OnlineEvery)) < time.Minute && s.inTime(ctx) {
		if r.Online, err = s.Store.CountOnline(ctx, now); err != nil {
			r.Online = -1
			s.Log.LogAttrs(ctx, slog.LevelError, "satellites online not counted", slog.String("error", err.Error()))
		} else {
			s.Metrics.Add(metrics.SatellitesOnline, "", float64(r.Online))
		}
	}
	s.Metrics.Add(metrics.StaleSatellites, "", float64(r.Stale))

	expired, err := s.Store.ExpiredConnections(ctx, now)
	errs = append(errs, err)
	var removed atomic.Int64
	eerrs, deferred := s.each(ctx, len(expired), func(i int) error {
		if err := s.Sender.ConnectionClosed(ctx, expired[i].ID); err != nil {
			return err
		}
		removed.Add(1)
		return nil
	})
	r.RemovedExpired, r.Deferred, errs = int(removed.Load()), r.Deferred+deferred, append(errs, eerrs...)

	r.Indexed = s.backfillFleetIndex(ctx, now)
	level := slog.LevelInfo
	if r.Deferred > 0 {
		level = slog.LevelWarn
	}
	s.Log.LogAttrs(ctx, level, "sweep done",
		slog.Int("stale", r.Stale), slog.Int("heartbeatLost", r.HeartbeatLost), slog.Int("republished", r.Republished),
		slog.Int("closedUnauthenticated", r.ClosedUnauthenticated), slog.Int("removedExpired", r.RemovedExpired),
		slog.Int("deferred", r.Deferred), slog.Int("online", r.Online), slog.Int("indexed", r.Indexed))
	return r, errors.Join(errs...)
}

// backfillFleetIndex takes up to BackfillSteps steps of the backfill that
// adds satellites stored before the fleet listing index to it, while there
// is time, and returns how many it added. Once done (on a new stack, at the
// first sweep), a cold instance reads that with one request and a warm one
// not at all. A failed step is logged, not a failed sweep: the listings
// lack only the satellites not yet indexed, and the next sweep resumes.
func (s *Sweeper) backfillFleetIndex(ctx context.Context, now time.Time) int {
	indexed := 0
	for range BackfillSteps {
		if s.indexed.Load() || !s.inTime(ctx) {
			break
		}
		step, err := s.Store.IndexLegacySatellites(ctx, now)
		indexed += step.Indexed
		if err != nil {
			s.Log.LogAttrs(ctx, slog.LevelError, "fleet index backfill step failed; the next sweep resumes it", slog.String("error", err.Error()))
			break
		}
		if step.Done {
			s.indexed.Store(true)
			if indexed > 0 {
				s.Log.LogAttrs(ctx, slog.LevelInfo, "fleet index backfill done")
			}
		}
	}
	if indexed > 0 {
		s.Log.LogAttrs(ctx, slog.LevelInfo, "satellites added to the fleet index", slog.Int("indexed", indexed))
	}
	return indexed
}

// inTime reports whether there is time to start work: more than
// DeadlineMargin before ctx's deadline (always, without one).
func (s *Sweeper) inTime(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > DeadlineMargin
}

// each calls fn(i) for every i in [0, n), on at most Concurrency at once,
// and starts none once the deadline is near. It returns the errors and how
// many it did not start.
func (s *Sweeper) each(ctx context.Context, n int, fn func(i int) error) (errs []error, deferred int) {
	workers := s.Concurrency
	if workers <= 0 {
		workers = DefaultConcurrency
	}
	var (
		mu      sync.Mutex
		next    int
		skipped int
		wg      sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next == n {
					mu.Unlock()
					return
				}
				if !s.inTime(ctx) {
					skipped += n - next
					next = n
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs, skipped
}

// publish emits stored edges, satellite.MaxLifecycleBatch per request, and
// confirms each one published. An edge whose publication fails, or that
// the deadline leaves unpublished, stays pending for a later sweep. It
// returns how many were published and confirmed.
func (s *Sweeper) publish(ctx context.Context, es []satellite.LifecycleEvent) (published int, errs []error, deferred int) {
	var done atomic.Int64
	batches := (len(es) + satellite.MaxLifecycleBatch - 1) / satellite.MaxLifecycleBatch
	errs, skipped := s.each(ctx, batches, func(b int) error {
		batch := es[b*satellite.MaxLifecycleBatch : min(len(es), (b+1)*satellite.MaxLifecycleBatch)]
		var failed []error
		for i, err := range satellite.EmitAll(ctx, s.Sender.Lifecycle, batch) {
			e := batch[i]
			if err == nil {
				err = s.Store.ConfirmEdge(ctx, e.SatelliteID, e.ID)
			} else {
				s.Log.LogAttrs(ctx, slog.LevelError, "lifecycle event not published; a later sweep retries",
					slog.String("satelliteId", e.SatelliteID), slog.String("edgeId", e.ID), slog.String("error", err.Error()))
			}
			if err != nil {
				failed = append(failed, err)
				continue
			}
			done.Add(1)
		}
		return errors.Join(failed...)
	})
	for b := batches - skipped; b < batches; b++ {
		deferred += len(es[b*satellite.MaxLifecycleBatch : min(len(es), (b+1)*satellite.MaxLifecycleBatch)])
	}
	return int(done.Load()), errs, deferred
}

// Handle is the Lambda handler for the EventBridge schedule. A failed sweep
// returns an error: the invocation counts as failed (SweepFailuresAlarm) and
// its event goes to the failure queue. Lambda does not retry it (the
// template sets no async retries): the next scheduled sweep is the retry.
func (s *Sweeper) Handle(ctx context.Context, _ events.CloudWatchEvent) error {
	_, err := s.Sweep(ctx)
	s.Metrics.FlushAll()
	return err
}
