package endpoint

import (
	"context"
	"log/slog"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Replies shared by every handler: sending a frame, answering a request the
// satellite waits on (or refusing a malformed one: protocol.Request says
// how), and ignoring a reply that found its connection gone.

func (s *Service) reply(ctx context.Context, c Conn, frame any) error {
	err := s.Sender.Send(ctx, c.ManagementURL, c.ID, frame)
	if satellite.ErrorCode(err) == satellite.EGONE {
		s.bindingCache().forget(c.ID)
	}
	return err
}

// answer sends the answer to a request the satellite waits on; one that
// finds the connection gone is nothing more to do.
func (s *Service) answer(ctx context.Context, c Conn, answer any) error {
	return ignoreGone(s.reply(ctx, c, answer))
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
	answer, ok := protocol.AnswerRefused(typ, frame, satellite.ErrorMessage(parseErr))
	if !ok {
		return nil
	}
	err = s.answer(ctx, c, answer)
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
