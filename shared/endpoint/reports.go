package endpoint

import (
	"context"
	"log/slog"
	"time"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// What an authenticated satellite reports: heartbeats, results and
// strategy errors.

func (s *Service) heartbeat(ctx context.Context, c Conn, conn satellite.Connection, m *protocol.Heartbeat) error {
	now := s.Now()
	// Capabilities ride the heartbeat's one write, and only when this
	// instance has not seen them from the connection already.
	var capabilities []string
	if m.Capabilities != nil && s.capabilities().changed(c.ID, m.Capabilities) {
		capabilities = m.Capabilities
	}
	out, err := s.Registry.RecordHeartbeat(ctx, conn.SatelliteID, c.ID, m.Version, capabilities, conn.OfflineThreshold, now)
	if err != nil {
		return err
	}
	if capabilities != nil {
		s.capabilities().remember(c.ID, capabilities)
	}
	if out.Restored {
		s.Log.LogAttrs(ctx, slog.LevelInfo, "heartbeat restored connected edge",
			slog.String("connectionId", c.ID), slog.String("satelliteId", conn.SatelliteID), slog.String("edgeId", out.Edge.ID))
		s.Sender.Publish(ctx, out.Edge)
	}
	if keepaliveDue(c.ConnectedAt, c.receivedAt(now), s.KeepaliveEvery) {
		s.keepalive(ctx, c, conn.SatelliteID)
	}
	return nil
}

// MaxClockSkew is how far ahead of the backend's clock a result's
// executedAt may be and still order the result among its check's results.
// A result dated further ahead is stored all the same (as upstream stores
// it), ordered by when it was received and marked with how far ahead it
// was: otherwise a satellite whose clock runs fast would make each of its
// results read as the check's latest for as long as its clock is ahead.
const MaxClockSkew = 5 * time.Minute

func (s *Service) result(ctx context.Context, c Conn, conn satellite.Connection, m *protocol.Result) error {
	now := s.Now()
	if m.ExecutedAt.Before(now.Add(-s.ResultRetention)) {
		return satellite.Errorf(satellite.EINVALID, "invalid result frame: field \"executedAt\" %s is older than the result retention (%s): "+
			"nothing that old is kept (is the satellite's clock behind?)", m.ExecutedAt.Format(time.RFC3339), s.ResultRetention)
	}
	var skewMs int64
	if ahead := m.ExecutedAt.Sub(now); ahead > MaxClockSkew {
		skewMs = ahead.Milliseconds() // over 300,000: the mark orders it by its receipt
	}
	err := s.Registry.RecordResult(ctx, satellite.Result{
		ID:          c.RequestID,
		ConfigID:    m.ConfigID,
		SystemID:    m.SystemID,
		SatelliteID: conn.SatelliteID,
		Source:      satellite.SourceLabel(conn.SatelliteName, conn.SatelliteRegion),
		Status:      m.Status,
		LatencyMs:   m.LatencyMs,
		Detail:      m.Detail,
		ExecutedAt:  m.ExecutedAt,

		EnvironmentID: m.EnvironmentID,
		ReceivedAt:    now,
		ExpiresAt:     now.Add(s.ResultRetention),
		ClockSkewMs:   skewMs,

		TokenGeneration: conn.TokenGeneration,
	})
	if err != nil {
		return err
	}
	s.Metrics.Count(metrics.ResultsStored, "")
	if skewMs > 0 {
		s.Metrics.Count(metrics.ResultsClockSkewed, "")
		s.Log.LogAttrs(ctx, slog.LevelWarn, "result dated ahead of the backend's clock; ordered by its receipt",
			slog.String("connectionId", c.ID), slog.String("satelliteId", conn.SatelliteID),
			slog.String("configId", m.ConfigID), slog.String("systemId", m.SystemID),
			slog.String("executedAt", m.ExecutedAt.Format(time.RFC3339Nano)), slog.Int64("clockSkewMs", skewMs))
	}
	return nil
}

// maxLoggedMessage bounds how much of a satellite-supplied message is logged.
const maxLoggedMessage = 2048

func (s *Service) strategyError(ctx context.Context, c Conn, conn satellite.Connection, m *protocol.StrategyError) error {
	msg := m.Message
	if len(msg) > maxLoggedMessage {
		msg = msg[:maxLoggedMessage] + "…"
	}
	s.Log.LogAttrs(ctx, slog.LevelWarn, "satellite cannot run strategy",
		slog.String("connectionId", c.ID), slog.String("satelliteId", conn.SatelliteID),
		slog.String("strategyId", m.StrategyID), slog.String("message", msg))
	return nil
}

// syncState stores a satellite's script-package sync state.
func (s *Service) syncState(ctx context.Context, c Conn, conn satellite.Connection, m *protocol.SyncState) error {
	return s.Registry.SaveSyncState(ctx, conn.SatelliteID, satellite.SyncState{
		LockfileHash: m.LockfileHash, Status: m.Status, ErrorMessage: m.ErrorMessage, ReportedAt: c.receivedAt(s.Now()),
	})
}

// capabilityStatus stores the status of one of a satellite's capabilities.
func (s *Service) capabilityStatus(ctx context.Context, c Conn, conn satellite.Connection, m *protocol.CapabilityStatus) error {
	return s.Registry.SaveCapabilityStatus(ctx, conn.SatelliteID, satellite.CapabilityStatus{Kind: m.Kind, Payload: m.Payload, ReportedAt: c.receivedAt(s.Now())})
}
