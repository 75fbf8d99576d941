// Package sweep is the scheduled heartbeat sweep: it moves satellites whose
// heartbeat stopped to heartbeat_lost (exactly one event per edge, however
// many sweeps run at once), republishes edges whose publication a crashed
// sweep never confirmed, closes connections that never authenticated, and
// removes connection records past their expiry. One scheduled invocation a
// minute runs Passes passes PassEvery apart: the first does all of it, the
// others look only for satellites past their deadline, so heartbeat_lost
// comes at most about PassEvery after the deadline.
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
	// DefaultRepublishAfter must exceed a pass's run time (at most
	// PassEvery plus DeadlineMargin), so that a sweep never republishes an
	// edge another running pass is publishing.
	DefaultRepublishAfter = 2 * time.Minute
	// DefaultConcurrency bounds the satellites and connections one sweep
	// works on at once.
	DefaultConcurrency = 16
	// DeadlineMargin is how long before its invocation's deadline a sweep
	// stops starting work: what it has not reached stays where it is (a
	// stale satellite in the live index, an edge in the outbox, a
	// connection record) for the next pass.
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
	// PassEvery is how often the sweep looks for satellites past their
	// deadline, as upstream Checkstack checks liveness (every
	// HEARTBEAT_INTERVAL_MS). A schedule runs at most once a minute, so
	// one invocation runs Passes passes this far apart.
	PassEvery = 15 * time.Second
	// Passes is how many passes one scheduled invocation runs: Passes x
	// PassEvery is the schedule's rate (a minute).
	Passes = 4
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
	// PassEvery and Passes schedule an invocation's passes (Run); zero
	// means the package's. The local stack, whose schedules may run faster
	// than the template's rate, shortens PassEvery with them.
	PassEvery time.Duration
	Passes    int
	// Sleep waits d or until ctx is done, between passes (a timer when
	// nil). Tests move their clock instead.
	Sleep func(ctx context.Context, d time.Duration) error

	// indexed is set once a step of the fleet index backfill found it
	// done: a warm instance then skips even the read that says so.
	indexed atomic.Bool
}

// Report says what one sweep pass did.
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

// Sweep runs one full pass, the first of an invocation: everything the
// sweep does. Every step is attempted; the first error is returned after
// all ran, so a scheduler retries the sweep (which is idempotent). Work is
// spread over Concurrency workers and stops DeadlineMargin before ctx's
// deadline; what is left is the next pass's.
func (s *Sweeper) Sweep(ctx context.Context) (Report, error) {
	return s.pass(ctx, true)
}

// StalePass runs one of an invocation's later passes: satellites past their
// deadline and the publication of their edges, nothing else. Like Sweep it
// is idempotent and stops DeadlineMargin before ctx's deadline.
func (s *Sweeper) StalePass(ctx context.Context) (Report, error) {
	return s.pass(ctx, false)
}

func (s *Sweeper) pass(ctx context.Context, full bool) (Report, error) {
	now := s.Now()
	r := Report{Online: -1}
	var errs []error
	defer func() {
		s.Metrics.Add(metrics.SweepDuration, "", float64(s.Now().Sub(now).Milliseconds()))
	}()

	if full {
		// Edges recorded but not confirmed published: their writer failed
		// to publish them, or died first.
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
	}

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
	published, perrs, deferred := s.publish(ctx, lost)
	r.HeartbeatLost, r.Deferred, errs = published, r.Deferred+deferred, append(errs, perrs...)
	s.Metrics.Add(metrics.StaleSatellites, "", float64(r.Stale))

	if full {
		errs = append(errs, s.connections(ctx, now, &r)...)
		r.Indexed = s.backfillFleetIndex(ctx, now)
	}
	level := slog.LevelInfo
	if r.Deferred > 0 {
		level = slog.LevelWarn
	}
	s.Log.LogAttrs(ctx, level, "sweep done", slog.Bool("full", full),
		slog.Int("stale", r.Stale), slog.Int("heartbeatLost", r.HeartbeatLost), slog.Int("republished", r.Republished),
		slog.Int("closedUnauthenticated", r.ClosedUnauthenticated), slog.Int("removedExpired", r.RemovedExpired),
		slog.Int("deferred", r.Deferred), slog.Int("online", r.Online), slog.Int("indexed", r.Indexed))
	return r, errors.Join(errs...)
}

// connections is the full pass's work on connections and the fleet gauge:
// it closes connections that never authenticated, takes the gauge of
// satellites online once per OnlineEvery, and removes expired connection
// records.
func (s *Sweeper) connections(ctx context.Context, now time.Time, r *Report) []error {
	var errs []error
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
	r.RemovedExpired, r.Deferred = int(removed.Load()), r.Deferred+deferred
	return append(errs, eerrs...)
}

// Run runs one scheduled invocation's passes: Passes of them, PassEvery
// apart from scheduled (the schedule's time, the event's; the start when
// zero or ahead), the first a full Sweep and the others StalePass. A pass
// starts no work after the next one's slot, and the last none after
// scheduled + Passes x PassEvery, when the next invocation's first pass is
// due: passes never overlap unless EventBridge delivers late or twice, and
// then only the idempotent writes meet. A delivery later than a slot skips
// that slot (its pass runs at once, covering it); one a whole schedule
// period late runs one full pass, so that sweeps still run when every
// delivery is late. No pass starts within DeadlineMargin of ctx's
// deadline. It returns every pass's errors, joined, after the last.
func (s *Sweeper) Run(ctx context.Context, scheduled time.Time) error {
	every, passes := s.PassEvery, s.Passes
	if every <= 0 {
		every = PassEvery
	}
	if passes <= 0 {
		passes = Passes
	}
	period := time.Duration(passes) * every
	start := s.Now()
	anchor := scheduled
	switch {
	case anchor.IsZero() || anchor.After(start):
		anchor = start
	case start.Sub(anchor) >= period:
		anchor = start.Add(every - period) // one pass, ending one PassEvery from now
	}
	// The last moment a pass may start, on the sweep's clock: DeadlineMargin
	// before the invocation's deadline.
	var latest time.Time
	if deadline, ok := ctx.Deadline(); ok {
		latest = start.Add(time.Until(deadline) - DeadlineMargin)
	}
	var errs []error
	for k, first := int(start.Sub(anchor)/every), true; k < passes; k++ {
		slot, end := anchor.Add(time.Duration(k)*every), anchor.Add(time.Duration(k+1)*every)
		if !first {
			if !latest.IsZero() && !slot.Before(latest) {
				s.Log.LogAttrs(ctx, slog.LevelWarn, "sweep passes cut short by the invocation's deadline", slog.Int("passesLeft", passes-k))
				break
			}
			if wait := slot.Sub(s.Now()); wait > 0 {
				if err := s.sleep(ctx, wait); err != nil {
					break
				}
			}
			if !s.Now().Before(end) {
				continue // the previous pass ran into this one's slot: the next covers it
			}
		}
		passCtx, cancel := context.WithDeadline(ctx, time.Now().Add(end.Sub(s.Now())+DeadlineMargin))
		var err error
		if first {
			_, err = s.Sweep(passCtx)
		} else {
			_, err = s.StalePass(passCtx)
		}
		cancel()
		errs = append(errs, err)
		first = false
	}
	return errors.Join(errs...)
}

func (s *Sweeper) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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

// Handle is the Lambda handler for the EventBridge schedule: it runs the
// invocation's passes (Run) from the event's time. A failed pass makes the
// invocation fail once the last pass ran: it counts as failed
// (SweepFailuresAlarm) and its event goes to the failure queue. Lambda does
// not retry it (the template sets no async retries): the next pass is the
// retry.
func (s *Sweeper) Handle(ctx context.Context, ev events.CloudWatchEvent) error {
	err := s.Run(ctx, ev.Time)
	s.Metrics.FlushAll()
	return err
}
