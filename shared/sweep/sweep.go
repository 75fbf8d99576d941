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
	// Metrics receives the sweep's duration, the stale satellites it found
	// and the satellites online; nil records nothing.
	Metrics *metrics.Recorder
}

// Report says what one sweep did.
type Report struct {
	Stale                 int // satellites read as stale
	HeartbeatLost         int // edges this sweep won and published
	Republished           int // pending edges published again
	ClosedUnauthenticated int
	RemovedExpired        int
	Online                int // satellites online (-1 when it could not be counted)
}

// Sweep runs once. Every step is attempted; the first error is returned after
// all ran, so a scheduler retries the sweep (which is idempotent).
func (s *Sweeper) Sweep(ctx context.Context) (Report, error) {
	now := s.Now()
	var r Report
	var errs []error
	defer func() {
		s.Metrics.Add(metrics.SweepDuration, "", float64(s.Now().Sub(now).Milliseconds()))
	}()

	// Edges recorded but not confirmed published: their writer failed to
	// publish them, or died first.
	cutoff := now.Add(-s.RepublishAfter)
	pending, err := s.Store.PendingEdges(ctx, cutoff)
	errs = append(errs, err)
	for _, sat := range pending {
		for _, e := range sat.PendingEvents() {
			if !e.At.Before(cutoff) {
				continue // its writer may still be publishing it
			}
			if err := s.publish(ctx, e); err != nil {
				errs = append(errs, err)
				continue
			}
			r.Republished++
		}
	}

	stale, err := s.Store.StaleSatellites(ctx, now)
	errs = append(errs, err)
	r.Stale = len(stale)
	for _, st := range stale {
		won, e, err := s.Store.MarkHeartbeatLost(ctx, st, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !won {
			continue // another sweep, or a heartbeat, got there first
		}
		s.Log.LogAttrs(ctx, slog.LevelInfo, "heartbeat lost", slog.String("satelliteId", e.SatelliteID), slog.String("edgeId", e.ID))
		if err := s.publish(ctx, e); err != nil {
			errs = append(errs, err)
			continue
		}
		r.HeartbeatLost++
	}

	unauth, err := s.Store.UnauthenticatedConnections(ctx, now.Add(-s.UnauthenticatedDeadline))
	errs = append(errs, err)
	for _, c := range unauth {
		// The index lags its table: a connection that authenticated a moment
		// ago may still be listed. Only the record says.
		record, err := s.Store.Connection(ctx, c.ID, now)
		if satellite.ErrorCode(err) == "" && record.Authenticated() {
			continue
		}
		if err != nil && satellite.ErrorCode(err) != satellite.ENOTFOUND {
			errs = append(errs, err)
			continue
		}
		// Close it; its record goes too, in case the socket was already gone
		// and no $disconnect will come.
		if err := s.Sender.Close(ctx, s.ManagementURL, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.Sender.ConnectionClosed(ctx, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		s.Log.LogAttrs(ctx, slog.LevelInfo, "closed connection that never authenticated", slog.String("connectionId", c.ID))
		r.ClosedUnauthenticated++
	}

	// The gauge of satellites online: connected and not past their deadline.
	// A failed count leaves a gap in the gauge; it does not fail the sweep,
	// whose work is done.
	r.Online, err = s.Store.CountOnline(ctx, now)
	if err != nil {
		r.Online = -1
		s.Log.LogAttrs(ctx, slog.LevelError, "satellites online not counted", slog.String("error", err.Error()))
	} else {
		s.Metrics.Add(metrics.SatellitesOnline, "", float64(r.Online))
	}
	s.Metrics.Add(metrics.StaleSatellites, "", float64(r.Stale))

	expired, err := s.Store.ExpiredConnections(ctx, now)
	errs = append(errs, err)
	for _, c := range expired {
		if err := s.Sender.ConnectionClosed(ctx, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		r.RemovedExpired++
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "sweep done",
		slog.Int("stale", r.Stale), slog.Int("heartbeatLost", r.HeartbeatLost), slog.Int("republished", r.Republished),
		slog.Int("closedUnauthenticated", r.ClosedUnauthenticated), slog.Int("removedExpired", r.RemovedExpired),
		slog.Int("online", r.Online))
	return r, errors.Join(errs...)
}

// publish emits a stored edge and then confirms it; an edge whose
// publication fails stays pending for a later sweep.
func (s *Sweeper) publish(ctx context.Context, e satellite.LifecycleEvent) error {
	if err := s.Sender.Lifecycle.Emit(ctx, e); err != nil {
		s.Log.LogAttrs(ctx, slog.LevelError, "lifecycle event not published; a later sweep retries",
			slog.String("satelliteId", e.SatelliteID), slog.String("edgeId", e.ID), slog.String("error", err.Error()))
		return err
	}
	return s.Store.ConfirmEdge(ctx, e.SatelliteID, e.ID)
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
