package endpoint

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// telemetry handles one telemetry_batch. Every batch gets a telemetry_ack
// (the agent holds it in its credit window until then), except a resend
// racing the original still being handled (the agent settles on the
// original's ack), and a batch of a connection whose token was rotated
// since it authenticated: that one is answered auth_failed and closed, as
// a result is, and nothing is stored.
//
//   - a kind nothing stores: terminal, nothing counted (0, 0, false);
//   - handled before: the remembered counts again, terminal, whatever the
//     budget says;
//   - over the connection's bytes of the minute: retryable (0, 0, true);
//   - a payload its kind cannot hold: rejected, terminal;
//   - stored, or found stored by an earlier attempt at it: accepted;
//   - a storage failure: retryable, and the batch is forgotten so that its
//     resend is handled again.
func (s *Service) telemetry(ctx context.Context, c Conn, conn satellite.Connection, m *protocol.TelemetryBatch) error {
	attrs := []slog.Attr{slog.String("connectionId", c.ID), slog.String("satelliteId", conn.SatelliteID),
		slog.String("kind", m.Kind), slog.String("batchId", string(m.BatchID))}
	ack := func(outcome string, accepted, rejected int, retryable bool) error {
		s.Metrics.Count(metrics.TelemetryBatches, outcome)
		return ignoreGone(s.reply(ctx, c, protocol.NewTelemetryAck(m.BatchID, accepted, rejected, retryable)))
	}
	if s.Telemetry == nil || s.TelemetryLedger == nil || !s.TelemetryKinds[m.Kind] {
		s.Log.LogAttrs(ctx, slog.LevelWarn, "telemetry batch of a kind nothing stores", attrs...)
		return ack(metrics.TelemetryUnknownKind, 0, 0, false)
	}
	now := s.Now()
	claim, err := s.TelemetryLedger.ClaimBatch(ctx, conn, m.BatchKey, m.Size, s.TelemetryBudget, now)
	if satellite.ErrorCode(err) == satellite.EUNAUTHENTICATED {
		// The connection no longer speaks for its satellite (its token was
		// rotated, or the satellite deleted): settle refuses it.
		return err
	}
	if err != nil {
		// Contention on the connection's budget item is expected now and
		// then (an agent sends several batches at once); the resend goes
		// through.
		level := slog.LevelError
		if satellite.ErrorCode(err) == satellite.ECONFLICT {
			level = slog.LevelWarn
		}
		s.Log.LogAttrs(ctx, level, "telemetry batch not claimed; the agent resends it", append(attrs, slog.String("error", err.Error()))...)
		return ack(metrics.TelemetryFailed, 0, 0, true)
	}
	switch claim.Outcome {
	case satellite.OverBudget:
		s.Log.LogAttrs(ctx, slog.LevelWarn, "telemetry over the connection's budget; the agent resends later",
			append(attrs, slog.Int("bytes", m.Size), slog.Int("budgetPerMinute", s.TelemetryBudget))...)
		return ack(metrics.TelemetryOverBudget, 0, 0, true)
	case satellite.InFlight:
		s.Log.LogAttrs(ctx, slog.LevelInfo, "telemetry batch already being handled; no ack", attrs...)
		s.Metrics.Count(metrics.TelemetryBatches, metrics.TelemetryDuplicate)
		return nil
	case satellite.Finished:
		return ack(metrics.TelemetryDuplicate, claim.Accepted, claim.Rejected, false)
	}
	accepted, ok := itemCount(m.Payload)
	if !ok {
		s.Log.LogAttrs(ctx, slog.LevelWarn, "telemetry payload refused: not an array or an object", attrs...)
		if err := s.TelemetryLedger.FinishBatch(ctx, c.ID, m.BatchKey, claim, 0, 1); err != nil {
			s.Log.LogAttrs(ctx, slog.LevelError, "telemetry batch outcome not remembered", append(attrs, slog.String("error", err.Error()))...)
		}
		return ack(metrics.TelemetryRejected, 0, 1, false)
	}
	key, err := s.Telemetry.Store(ctx, satellite.TelemetryBatch{
		SatelliteID: conn.SatelliteID, ConnectionID: c.ID, Kind: m.Kind, BatchID: m.BatchID,
		Payload: m.Payload, DroppedByGroup: m.DroppedByGroup, Accepted: accepted, ReceivedAt: claim.ReceivedAt,
	})
	if err != nil {
		s.Log.LogAttrs(ctx, slog.LevelError, "telemetry batch not stored; the agent resends it", append(attrs, slog.String("error", err.Error()))...)
		if ferr := s.TelemetryLedger.ForgetBatch(ctx, c.ID, m.BatchKey, claim); ferr != nil {
			s.Log.LogAttrs(ctx, slog.LevelError, "telemetry batch not forgotten", append(attrs, slog.String("error", ferr.Error()))...)
		}
		return ack(metrics.TelemetryFailed, 0, 0, true)
	}
	if err := s.TelemetryLedger.FinishBatch(ctx, c.ID, m.BatchKey, claim, accepted, 0); err != nil {
		// Stored: a resend after the in-flight timeout takes the claim
		// over and finds the object under the same key.
		s.Log.LogAttrs(ctx, slog.LevelError, "telemetry batch outcome not remembered", append(attrs, slog.String("error", err.Error()))...)
	}
	s.Log.LogAttrs(ctx, slog.LevelDebug, "telemetry batch stored", append(attrs, slog.String("key", key), slog.Int("accepted", accepted))...)
	return ack(metrics.TelemetryAccepted, accepted, 0, false)
}

// itemCount counts a payload's items: an array's length, the length of an
// object's "items" array, otherwise 1 for an object. Anything else is not a
// payload a kind can hold.
func itemCount(payload json.RawMessage) (int, bool) {
	switch payload[0] {
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(payload, &items) != nil {
			return 0, false
		}
		return len(items), true
	case '{':
		var o struct {
			Items []json.RawMessage `json:"items"`
		}
		if json.Unmarshal(payload, &o) == nil && o.Items != nil {
			return len(o.Items), true
		}
		return 1, true
	}
	return 0, false
}
