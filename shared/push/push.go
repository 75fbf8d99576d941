// Package push delivers frames to satellites through the Management API and
// owns what happens when a connection turns out to be dead: the DEAD
// connection's record is removed and, if it was its satellite's current
// connection, the satellite takes the disconnected edge. The endpoint's
// replies, the backend-initiated pushes to one satellite (config_updated,
// capability_config, shutdown) and the fan-out jobs' posts
// (refresh_script_packages, sandbox_policy) all go through it.
package push

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Sender posts frames and closes connections.
type Sender struct {
	Registry    satellite.Registry
	Connections satellite.ConnectionAPI
	Lifecycle   satellite.LifecycleSink
	Log         *slog.Logger
	Now         func() time.Time
	// Metrics counts posts by outcome; nil records nothing.
	Metrics *metrics.Recorder
}

// Send encodes frame and posts it to connectionID at managementURL. When the
// connection is gone it is cleaned up as closed and Send returns EGONE, which
// callers treat as an outcome, not a failure of their own work. ETOOLARGE when
// the frame is over the message limit (nothing is posted).
func (s *Sender) Send(ctx context.Context, managementURL, connectionID string, frame any) error {
	data, err := protocol.Encode(frame)
	if err != nil {
		return err
	}
	err = s.Connections.Post(ctx, managementURL, connectionID, data)
	switch {
	case err == nil:
		s.Metrics.Count(metrics.Pushes, metrics.Sent)
	case satellite.Is(err, satellite.EGONE):
		s.Metrics.Count(metrics.Pushes, metrics.Gone)
	case satellite.Is(err, satellite.ETOOLARGE):
		// Refused before posting; the caller sends something smaller.
	default:
		s.Metrics.Count(metrics.Pushes, metrics.Failed)
	}
	if satellite.ErrorCode(err) == satellite.EGONE {
		s.Log.LogAttrs(ctx, slog.LevelInfo, "connection gone; removing its record",
			slog.String("connectionId", connectionID))
		if cerr := s.ConnectionClosed(ctx, connectionID); cerr != nil {
			return cerr
		}
	}
	return err
}

// Close asks the Management API to close connectionID. Its $disconnect does
// the bookkeeping.
func (s *Sender) Close(ctx context.Context, managementURL, connectionID string) error {
	return s.Connections.Close(ctx, managementURL, connectionID)
}

// ConnectionClosed records that connectionID is closed: its record goes away
// and, only if it was its satellite's current connection, the satellite moves
// to the disconnected edge and satellite.disconnected is emitted. Closing a
// connection twice, or a stale one, changes nothing the second time. It is
// for closes nobody reported a status of (a post found the connection gone,
// a record expired); $disconnect's go through Disconnected.
func (s *Sender) ConnectionClosed(ctx context.Context, connectionID string) error {
	_, err := s.Disconnected(ctx, connectionID, satellite.CloseStatus{})
	return err
}

// Disconnected is ConnectionClosed for a close whose status API Gateway
// reported: the disconnected edge carries its code, and a close for a
// message over the limit is recorded on the satellite. It returns what the
// close changed.
func (s *Sender) Disconnected(ctx context.Context, connectionID string, status satellite.CloseStatus) (satellite.Closed, error) {
	closed, err := s.Registry.CloseConnection(ctx, connectionID, status, s.Now())
	if err != nil {
		return closed, err
	}
	attrs := []slog.Attr{slog.String("connectionId", connectionID)}
	if closed.SatelliteID != "" {
		attrs = append(attrs, slog.String("satelliteId", closed.SatelliteID))
	}
	if status.Code != 0 {
		attrs = append(attrs, slog.Int("closeCode", status.Code), slog.String("closeReason", status.Reason))
	}
	if !closed.Disconnected {
		if closed.SatelliteID != "" {
			s.Log.LogAttrs(ctx, slog.LevelInfo, "stale connection closed; satellite state unchanged", attrs...)
		}
		return closed, nil
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "satellite disconnected", attrs...)
	s.Publish(ctx, closed.Edge)
	return closed, nil
}

// Publish publishes a lifecycle edge recorded in its satellite's outbox and
// then confirms it. The state change it reports is already stored, so a
// failure is not the caller's: the edge stays in the outbox and the sweep
// publishes it again (under the same edgeId, which consumers use to drop the
// rare duplicate). It reports whether the edge was confirmed.
func (s *Sender) Publish(ctx context.Context, e satellite.LifecycleEvent) bool {
	attrs := []slog.Attr{slog.String("detailType", e.Edge.EventType()), slog.String("satelliteId", e.SatelliteID), slog.String("edgeId", e.ID)}
	if err := s.Lifecycle.Emit(ctx, e); err != nil {
		s.Log.LogAttrs(ctx, slog.LevelError, "lifecycle event not published; the sweep publishes it again",
			append(attrs, slog.String("error", err.Error()))...)
		return false
	}
	if err := s.Registry.ConfirmEdge(ctx, e.SatelliteID, e.ID); err != nil {
		s.Log.LogAttrs(ctx, slog.LevelError, "lifecycle event published but not confirmed; the sweep publishes it again",
			append(attrs, slog.String("error", err.Error()))...)
		return false
	}
	return true
}

// Service pushes backend-initiated frames to one satellite through one
// Management API URL (the deployed stage's). Pushes to every connection
// (refresh_script_packages, sandbox_policy) are fan-out jobs (package
// fanout).
type Service struct {
	Sender        *Sender
	ManagementURL string
	// PackagesConfigured says whether a script-package store exists, which
	// decides how scriptPackagesLockfileHash is rendered.
	PackagesConfigured bool
}

// ConfigUpdated pushes config_updated with the satellite's current
// assignments to its current connection. Not being connected is not an error.
func (p *Service) ConfigUpdated(ctx context.Context, satelliteID string) error {
	sat, assignments, err := p.Sender.Registry.Satellite(ctx, satelliteID)
	if err != nil {
		return err
	}
	if sat.ConnectionID == "" {
		return nil
	}
	hash := protocol.LockfileHash{Configured: p.PackagesConfigured}
	if p.PackagesConfigured {
		if hash.Hash, err = p.Sender.Registry.DesiredLockfileHash(ctx); err != nil {
			return err
		}
	}
	return ignoreGone(p.Sender.Send(ctx, p.ManagementURL, sat.ConnectionID, protocol.NewConfigUpdated(assignments, hash)))
}

// CapabilityConfig pushes capability_config of one kind to a satellite's
// current connection. Not being connected is not an error.
func (p *Service) CapabilityConfig(ctx context.Context, satelliteID, kind string, payload json.RawMessage) error {
	sat, _, err := p.Sender.Registry.Satellite(ctx, satelliteID)
	if err != nil || sat.ConnectionID == "" {
		return err
	}
	return ignoreGone(p.Sender.Send(ctx, p.ManagementURL, sat.ConnectionID, protocol.NewCapabilityConfig(kind, payload)))
}

// Shutdown sends shutdown with reason to every live connection of a satellite
// and closes each. Connections already gone are skipped.
func (p *Service) Shutdown(ctx context.Context, satelliteID, reason string) error {
	ids, err := p.Sender.Registry.SatelliteConnections(ctx, satelliteID, p.Sender.Now())
	if err != nil {
		return err
	}
	// The index is eventually consistent: a connection bound a moment ago
	// may be missing from it, but the satellite's current connection (a
	// consistent read) is not.
	sat, _, err := p.Sender.Registry.Satellite(ctx, satelliteID)
	switch {
	case err == nil:
		if sat.ConnectionID != "" && !slices.Contains(ids, sat.ConnectionID) {
			ids = append(ids, sat.ConnectionID)
		}
	case satellite.Is(err, satellite.ENOTFOUND):
	default:
		return err
	}
	for _, id := range ids {
		err := p.Sender.Send(ctx, p.ManagementURL, id, protocol.NewShutdown(reason))
		if satellite.ErrorCode(err) == satellite.EGONE {
			continue
		}
		if err != nil {
			return err
		}
		if err := p.Sender.Close(ctx, p.ManagementURL, id); err != nil {
			return err
		}
	}
	return nil
}

func ignoreGone(err error) error {
	if satellite.ErrorCode(err) == satellite.EGONE {
		return nil
	}
	return err
}
