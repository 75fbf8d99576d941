package endpoint

import (
	"context"
	"log/slog"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Replies shared by every handler: sending a frame, answering a request the
// satellite waits on (or refusing a malformed one), and ignoring a reply
// that found its connection gone.

func (s *Service) reply(ctx context.Context, c Conn, frame any) error {
	err := s.Sender.Send(ctx, c.ManagementURL, c.ID, frame)
	if satellite.ErrorCode(err) == satellite.EGONE {
		s.bindingCache().forget(c.ID)
	}
	return err
}

// requestOf returns the id a request frame is answered under: the frames a
// satellite waits on (secrets of every kind).
func requestOf(msg protocol.Message) (string, bool) {
	switch m := msg.(type) {
	case *protocol.RunSecretsRequest:
		return m.RequestID, true
	case *protocol.ConfigSecretsRequest:
		return m.RequestID, true
	case *protocol.CapabilitySecretRequest:
		return m.RequestID, true
	}
	return "", false
}

// requestAttrs names a refused request in the log (ids only, never values).
func requestAttrs(msg protocol.Message) []slog.Attr {
	switch m := msg.(type) {
	case *protocol.RunSecretsRequest:
		return []slog.Attr{slog.String("configId", m.ConfigID), slog.String("collectorId", m.CollectorID)}
	case *protocol.ConfigSecretsRequest:
		return []slog.Attr{slog.String("configId", m.ConfigID)}
	case *protocol.CapabilitySecretRequest:
		return []slog.Attr{slog.String("kind", m.Kind)}
	}
	return nil
}

// replyRequestError answers a request of type typ with an error.
func (s *Service) replyRequestError(ctx context.Context, c Conn, typ, requestID, message string) error {
	var frame any
	switch typ {
	case protocol.TypeRunSecretsRequest:
		frame = protocol.RunSecrets{Type: protocol.TypeRunSecrets, RequestID: requestID, Error: message}
	case protocol.TypeConfigSecretsRequest:
		frame = protocol.ConfigSecrets{Type: protocol.TypeConfigSecrets, RequestID: requestID, Error: message}
	case protocol.TypeCapabilitySecretRequest:
		frame = protocol.CapabilitySecretResponse{Type: protocol.TypeCapabilitySecretResponse, RequestID: requestID, Error: message}
	default:
		return nil
	}
	return ignoreGone(s.reply(ctx, c, frame))
}

// refuseRequest answers a malformed request frame the satellite waits on,
// when it carries what the satellite matches the answer on (see
// protocol.AnswerRefused) and the connection is authenticated; anything
// else is dropped like any invalid frame.
func (s *Service) refuseRequest(ctx context.Context, c Conn, typ string, frame []byte, parseErr error) error {
	conn, err := s.connection(ctx, c.ID)
	if err != nil || !conn.Authenticated() {
		return s.settle(ctx, c, conn, nil, parseErr)
	}
	s.Log.LogAttrs(ctx, slog.LevelWarn, "frame refused", slog.String("connectionId", c.ID), slog.String("satelliteId", conn.SatelliteID),
		slog.String("type", typ), slog.String("reason", satellite.ErrorMessage(parseErr)))
	if typ == protocol.TypeTelemetryBatch {
		if id, ok := protocol.BatchIDOf(frame); ok {
			return ignoreGone(s.reply(ctx, c, protocol.NewTelemetryAck(id, 0, 1, false)))
		}
		return nil
	}
	answer, ok := protocol.AnswerRefused(typ, frame, satellite.ErrorMessage(parseErr))
	if !ok {
		return nil
	}
	err = ignoreGone(s.reply(ctx, c, answer))
	if satellite.ErrorCode(err) == satellite.ETOOLARGE {
		// The field echoed back grows past the message limit once encoded
		// (escaping): nothing the satellite could match fits.
		s.Log.LogAttrs(ctx, slog.LevelWarn, "refused request not answered: the answer is over the message limit",
			slog.String("connectionId", c.ID), slog.String("satelliteId", conn.SatelliteID), slog.String("type", typ))
		return nil
	}
	return err
}

func ignoreGone(err error) error {
	if satellite.ErrorCode(err) == satellite.EGONE {
		return nil
	}
	return err
}
