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
		switch typ, _ := protocol.InvalidType(err); {
		case typ == protocol.TypeAuthenticate:
			// A malformed authenticate (a token that is not a string, an
			// over-long id) is answered as a wrong token is.
			return s.authenticateFrame(ctx, c, nil, err)
		case protocol.IsRequest(typ):
			// The satellite waits for an answer to a request: it gets one
			// whenever the frame says what to answer to.
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
	if handle := handlerFor(msg.Type()); handle != nil {
		err = handle(s, ctx, c, conn, msg)
	}
	return s.settle(ctx, c, conn, msg, err)
}

// handler handles one frame of an authenticated connection.
type handler func(s *Service, ctx context.Context, c Conn, conn satellite.Connection, msg protocol.Message) error

// handlerFor is the handler table: the handler of each frame type an
// authenticated connection sends (authenticate, which makes a connection
// authenticated, is handled before); nil for none. A request's handler
// answers it; settle answers a request whose handler failed.
//
// It is a switch rather than a map a package variable holds: a map is
// built when the package starts, which would link every handler into
// every function that imports the package, not only into the message
// function that receives frames.
func handlerFor(typ string) handler {
	switch typ {
	case protocol.TypeHeartbeat:
		return on((*Service).heartbeat)
	case protocol.TypeResult:
		return on((*Service).result)
	case protocol.TypeStrategyError:
		return on((*Service).strategyError)
	case protocol.TypeScriptPackageSyncState:
		return on((*Service).syncState)
	case protocol.TypeCapabilityStatus:
		return on((*Service).capabilityStatus)
	case protocol.TypeManifestRequest:
		return on((*Service).manifest)
	case protocol.TypeBlobRequest:
		return on((*Service).blob)
	case protocol.TypeRunSecretsRequest:
		return on((*Service).runSecrets)
	case protocol.TypeConfigSecretsRequest:
		return on((*Service).configSecrets)
	case protocol.TypeCapabilitySecretRequest:
		return on((*Service).capabilitySecret)
	case protocol.TypeTelemetryBatch:
		return on((*Service).telemetry)
	}
	return nil
}

// on makes a handler of frames of type M a handler of the table.
func on[M protocol.Message](h func(*Service, context.Context, Conn, satellite.Connection, M) error) handler {
	return func(s *Service, ctx context.Context, c Conn, conn satellite.Connection, msg protocol.Message) error {
		return h(s, ctx, c, conn, msg.(M))
	}
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
		if req, ok := msg.(protocol.Request); ok {
			awaited := req.Awaited()
			s.Log.LogAttrs(ctx, slog.LevelWarn, "request refused", append(attrs, awaited.LogAttrs...)...)
			return s.answer(ctx, c, awaited.Refusal(satellite.ErrorMessage(err)))
		}
		s.Log.LogAttrs(ctx, slog.LevelWarn, "frame dropped", append(attrs, slog.String("reason", satellite.ErrorMessage(err)))...)
		return nil
	case satellite.EUNAVAILABLE:
		if req, ok := msg.(protocol.Request); ok {
			return s.answer(ctx, c, req.Awaited().Refusal(satellite.ErrorMessage(err)))
		}
		s.Log.LogAttrs(ctx, slog.LevelWarn, "frame dropped", append(attrs, slog.String("reason", satellite.ErrorMessage(err)))...)
		return nil
	}
	s.Log.LogAttrs(ctx, slog.LevelError, "frame failed", append(attrs, slog.String("error", err.Error()))...)
	if _, ok := msg.(*protocol.TelemetryBatch); ok {
		s.Metrics.Count(metrics.TelemetryBatches, metrics.TelemetryFailed)
	}
	if req, ok := msg.(protocol.Request); ok {
		if answer := req.Awaited().Failure(); answer != nil {
			// The satellite waits on the answer: it gets one even when the
			// backend failed (a batch is acked retryable, so the agent
			// resends it). Answered, the frame is handled.
			return s.answer(ctx, c, answer)
		}
	}
	return err
}

// capabilitiesDropped logs what of a frame's capabilities was left out.
func (s *Service) capabilitiesDropped(ctx context.Context, c Conn, dropped string) {
	if dropped != "" {
		s.Log.LogAttrs(ctx, slog.LevelWarn, "capabilities cleaned", slog.String("connectionId", c.ID), slog.String("reason", dropped))
	}
}
