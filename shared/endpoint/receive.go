package endpoint

import (
	"context"
	"log/slog"
	"time"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/phases"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Receiving a frame: parsing, routing it to its handler by type, timing its
// phases, and settling its outcome into a reply or a log line.

// Receive handles one frame. Only failures of the backend itself are returned;
// anything a satellite did wrong is answered or logged and dropped, and the
// connection stays open unless the protocol says to close it.
func (s *Service) Receive(ctx context.Context, c Conn, frame []byte) error {
	ctx, timings := phases.Start(ctx)
	start := time.Now()
	err := s.receive(ctx, c, frame)
	s.logTimings(ctx, c, timings, time.Since(start), err)
	return err
}

// SlowFrame is how long a frame may take before its phases are logged at
// WARN rather than DEBUG, unless Service.SlowFrame says otherwise.
const SlowFrame = time.Second

// logTimings writes one line per frame with where its time went: at DEBUG,
// or at WARN when it took over SlowFrame, so that a slow answer can be
// explained without turning on debug logs.
func (s *Service) logTimings(ctx context.Context, c Conn, t *phases.Timings, took time.Duration, err error) {
	level, slow := slog.LevelDebug, s.SlowFrame
	if slow == 0 {
		slow = SlowFrame
	}
	if took > slow {
		level = slog.LevelWarn
	}
	if !s.Log.Enabled(ctx, level) {
		return
	}
	attrs := append([]slog.Attr{slog.String("connectionId", c.ID), slog.Float64("tookMs", phases.Milliseconds(took))}, t.Attrs()...)
	if c.RequestID != "" {
		attrs = append(attrs, slog.String("requestId", c.RequestID))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	msg := "frame handled"
	if level == slog.LevelWarn {
		msg = "slow frame"
	}
	s.Log.LogAttrs(ctx, level, msg, attrs...)
}

func (s *Service) receive(ctx context.Context, c Conn, frame []byte) error {
	parsed := time.Now()
	msg, err := protocol.Parse(frame)
	phases.Since(ctx, phases.Parse, parsed)
	if err != nil {
		s.Metrics.Count(metrics.Frames, metrics.FrameInvalid)
		switch typ, _ := protocol.InvalidType(err); typ {
		case protocol.TypeAuthenticate:
			// A malformed authenticate (a token that is not a string, an
			// over-long id) is answered as a wrong token is.
			return s.authenticateFrame(ctx, c, nil, err)
		case protocol.TypeTelemetryBatch, protocol.TypeRunSecretsRequest, protocol.TypeConfigSecretsRequest, protocol.TypeCapabilitySecretRequest:
			// The satellite waits for an answer to these: it gets one
			// whenever the frame says what to answer to.
			return s.refuseRequest(ctx, c, typ, frame, err)
		case protocol.TypeManifestRequest, protocol.TypeBlobRequest:
			// So do these, matched on the hash or the integrity they ask
			// for rather than on a requestId.
			return s.refuseRequest(ctx, c, typ, frame, err)
		}
		return s.settle(ctx, c, satellite.Connection{}, nil, err)
	}
	s.Metrics.Count(metrics.Frames, msg.Type())
	phases.Describe(ctx, msg.Type(), "")
	switch m := msg.(type) {
	case *protocol.Authenticate:
		s.capabilitiesDropped(ctx, c, m.CapabilitiesDropped)
		return s.authenticateFrame(ctx, c, m, nil)
	case *protocol.Heartbeat:
		s.capabilitiesDropped(ctx, c, m.CapabilitiesDropped)
	}
	conn, err := s.connection(ctx, c.ID)
	phases.Describe(ctx, "", conn.SatelliteID)
	switch {
	case err == nil || satellite.Is(err, satellite.ENOTFOUND):
		// No record (expired or cleaned up) reads as unauthenticated.
	default:
		return s.settle(ctx, c, conn, msg, err)
	}
	if !conn.Authenticated() {
		return s.settle(ctx, c, conn, msg, errMustAuthenticate)
	}
	switch m := msg.(type) {
	case *protocol.Heartbeat:
		err = s.heartbeat(ctx, c, conn, m)
	case *protocol.Result:
		err = s.result(ctx, c, conn, m)
	case *protocol.StrategyError:
		err = s.strategyError(ctx, c, conn, m)
	case *protocol.SyncState:
		err = s.Registry.SaveSyncState(ctx, conn.SatelliteID, satellite.SyncState{
			LockfileHash: m.LockfileHash, Status: m.Status, ErrorMessage: m.ErrorMessage, ReportedAt: c.receivedAt(s.Now()),
		})
	case *protocol.ManifestRequest:
		err = s.manifest(ctx, c, m)
	case *protocol.BlobRequest:
		err = s.blob(ctx, c, m)
	case *protocol.RunSecretsRequest:
		err = s.runSecrets(ctx, c, conn, m)
	case *protocol.ConfigSecretsRequest:
		err = s.configSecrets(ctx, c, conn, m)
	case *protocol.TelemetryBatch:
		err = s.telemetry(ctx, c, conn, m)
	case *protocol.CapabilityStatus:
		err = s.Registry.SaveCapabilityStatus(ctx, conn.SatelliteID, satellite.CapabilityStatus{Kind: m.Kind, Payload: m.Payload, ReportedAt: c.receivedAt(s.Now())})
	case *protocol.CapabilitySecretRequest:
		err = s.capabilitySecret(ctx, c, conn, m)
	}
	return s.settle(ctx, c, conn, msg, err)
}

// settle maps the outcome of one frame to what the satellite sees and what is
// logged: the one place where errors become replies.
func (s *Service) settle(ctx context.Context, c Conn, conn satellite.Connection, msg protocol.Message, err error) error {
	if err == nil {
		return nil
	}
	attrs := []slog.Attr{slog.String("connectionId", c.ID)}
	if conn.SatelliteID != "" {
		attrs = append(attrs, slog.String("satelliteId", conn.SatelliteID))
	}
	if msg != nil {
		attrs = append(attrs, slog.String("type", msg.Type()))
	}
	code := satellite.ErrorCode(err)
	switch code {
	case satellite.EGONE:
		// The reply found the connection gone; Sender already cleaned up.
		return nil
	case satellite.EUNAUTHENTICATED:
		reason := protocol.ReasonInvalidCredentials
		if err == errMustAuthenticate {
			reason = protocol.ReasonMustAuthenticate
		}
		s.Log.LogAttrs(ctx, slog.LevelWarn, "authentication refused; closing connection", append(attrs, slog.String("reason", reason))...)
		return s.refuse(ctx, c, reason)
	case satellite.EINVALID, satellite.ETOOLARGE, satellite.ENOTFOUND, satellite.EFORBIDDEN, satellite.ECONFLICT:
		if requestID, ok := requestOf(msg); ok {
			s.Log.LogAttrs(ctx, slog.LevelWarn, "request refused", append(attrs, requestAttrs(msg)...)...)
			return s.replyRequestError(ctx, c, msg.Type(), requestID, satellite.ErrorMessage(err))
		}
		s.Log.LogAttrs(ctx, slog.LevelWarn, "frame dropped", append(attrs, slog.String("reason", satellite.ErrorMessage(err)))...)
		return nil
	case satellite.EUNAVAILABLE:
		if requestID, ok := requestOf(msg); ok {
			return s.replyRequestError(ctx, c, msg.Type(), requestID, satellite.ErrorMessage(err))
		}
		s.Log.LogAttrs(ctx, slog.LevelWarn, "frame dropped", append(attrs, slog.String("reason", satellite.ErrorMessage(err)))...)
		return nil
	}
	s.Log.LogAttrs(ctx, slog.LevelError, "frame failed", append(attrs, slog.String("error", err.Error()))...)
	if batch, ok := msg.(*protocol.TelemetryBatch); ok {
		// Every batch is acked: the backend failed, so the agent resends.
		s.Metrics.Count(metrics.TelemetryBatches, metrics.TelemetryFailed)
		return ignoreGone(s.reply(ctx, c, protocol.NewTelemetryAck(batch.BatchID, 0, 0, true)))
	}
	if requestID, ok := requestOf(msg); ok {
		// The satellite waits on requestId: answer even when the backend
		// failed. Answered, the frame is handled.
		return s.replyRequestError(ctx, c, msg.Type(), requestID, "Secrets could not be resolved right now; try again.")
	}
	return err
}

// capabilitiesDropped logs what of a frame's capabilities was left out.
func (s *Service) capabilitiesDropped(ctx context.Context, c Conn, dropped string) {
	if dropped != "" {
		s.Log.LogAttrs(ctx, slog.LevelWarn, "capabilities cleaned", slog.String("connectionId", c.ID), slog.String("reason", dropped))
	}
}
