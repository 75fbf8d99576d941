package endpoint

import (
	"context"
	"log/slog"
	"time"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// AgentHeartbeatInterval is how often the Checkstack satellite agent
// heartbeats (satellite.AgentHeartbeatInterval).
const AgentHeartbeatInterval = satellite.AgentHeartbeatInterval

// keepaliveDue reports whether a heartbeat API Gateway received at `at`,
// on a connection it accepted at `opened`, is answered with a keepalive:
// the heartbeat that falls in the first AgentHeartbeatInterval of each
// period `every` of the connection's age. An agent heartbeats exactly once
// in each such window, so it gets one keepalive per period without the
// backend remembering when it last sent one (any instance may handle any
// heartbeat). None in the first period, which began with `authenticated`.
func keepaliveDue(opened, at time.Time, every time.Duration) bool {
	if every <= 0 || opened.IsZero() || at.IsZero() {
		return false
	}
	age := at.Sub(opened)
	return age >= every && age%every < AgentHeartbeatInterval
}

// keepalive sends a keepalive frame. The heartbeat is already recorded, so
// a failure is logged, not returned: at worst the front closes an idle
// connection and the satellite reconnects.
func (s *Service) keepalive(ctx context.Context, c Conn, satelliteID string) {
	err := s.reply(ctx, c, protocol.NewKeepalive())
	if err != nil && satellite.ErrorCode(err) != satellite.EGONE {
		s.Log.LogAttrs(ctx, slog.LevelWarn, "keepalive not sent",
			slog.String("connectionId", c.ID), slog.String("satelliteId", satelliteID), slog.String("error", err.Error()))
	}
}
