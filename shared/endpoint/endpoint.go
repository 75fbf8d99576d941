// Package endpoint is the satellite endpoint itself: what happens when a
// satellite connects, sends a frame or disconnects. It speaks PROTOCOL.md
// through the protocol package and keeps all state in the ports of the
// satellite package, so the same code runs on Lambda, in the local stack and
// in tests.
package endpoint

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/push"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Service handles connection events and satellite frames.
type Service struct {
	Registry satellite.Registry
	Sender   *push.Sender
	// Packages is nil when no script-package store is configured.
	Packages satellite.PackageStore
	// Secrets is nil when secret delivery is not configured.
	Secrets satellite.SecretSource
	// Telemetry stores telemetry batches of the kinds in TelemetryKinds;
	// nil when telemetry is not configured (every batch is then of an
	// unknown kind). TelemetryLedger dedupes batches and meters each
	// connection's TelemetryBudget bytes per minute.
	Telemetry       satellite.TelemetrySink
	TelemetryLedger satellite.TelemetryLedger
	TelemetryKinds  map[string]bool
	TelemetryBudget int
	Tokens          satellite.TokenVerifier
	Now             func() time.Time
	Log             *slog.Logger
	// Metrics records frames, authentications and stored results; nil
	// records nothing.
	Metrics *metrics.Recorder

	// ResultRetention is how long stored results are kept.
	ResultRetention time.Duration
	// BlobURLTTL is how long a presigned blob or manifest URL stays valid.
	BlobURLTTL time.Duration
	// KeepaliveEvery is how often a connection's heartbeats are answered
	// with a keepalive frame (see keepaliveDue); 0 sends none.
	KeepaliveEvery time.Duration
	// BindingCacheTTL is how long this instance trusts an authenticated
	// connection it has seen without reading its record again; 0 reads the
	// record for every frame.
	BindingCacheTTL time.Duration
	// SlowFrame is the time after which a frame's phases are logged at
	// WARN rather than DEBUG (the SlowFrame constant when zero).
	SlowFrame time.Duration
	// DefaultSandboxPolicy is the sandbox policy authenticated carries
	// while no policy is set (a JSON object; nil: none).
	DefaultSandboxPolicy json.RawMessage

	once     sync.Once
	bindings *bindings
	attempts *attempts
	reported *reported
}

// maxCachedBindings bounds the binding cache of one instance.
const maxCachedBindings = 10000

// bindingCache is this instance's cache of authenticated connections.
func (s *Service) bindingCache() *bindings {
	s.init()
	return s.bindings
}

// attemptCache is this instance's memory of authentication attempts.
func (s *Service) attemptCache() *attempts {
	s.init()
	return s.attempts
}

// attemptMemory is how long an instance drops repeated authenticate frames
// of a connection it claimed the attempt of; long enough for a pipelined
// burst, short beside a connection's life.
const attemptMemory = 2 * time.Minute

func (s *Service) init() {
	s.once.Do(func() {
		s.bindings = newBindings(s.BindingCacheTTL, maxCachedBindings)
		s.attempts = newAttempts(attemptMemory, maxCachedBindings)
		s.reported = newReported(maxCachedBindings)
	})
}

// capabilities is this instance's memory of the capabilities each
// connection last reported, so a heartbeat writes them only when they
// changed.
func (s *Service) capabilities() *reported {
	s.init()
	return s.reported
}

// connection returns the connection's record, from this instance's cache
// when it has seen the connection authenticated. ENOTFOUND when there is no
// live record.
func (s *Service) connection(ctx context.Context, id string) (satellite.Connection, error) {
	now := s.Now()
	if c, ok := s.bindingCache().get(id, now); ok {
		return c, nil
	}
	c, err := s.Registry.Connection(ctx, id, now)
	if err == nil {
		s.bindingCache().put(c, now)
	}
	return c, err
}

// Conn identifies the connection an event concerns.
type Conn struct {
	ID string
	// ManagementURL is the Management API base URL (https://host/stage) through
	// which this connection is reached.
	ManagementURL string
	// RequestID is unique per event; it names stored results.
	RequestID string
	// ReceivedAt is when API Gateway received the frame. Frames of one
	// connection are received in order but may be handled out of order, so
	// state a satellite reports is ordered by it. Zero: the handling time.
	ReceivedAt time.Time
	// ConnectedAt is when API Gateway accepted the connection (zero when
	// the event does not say).
	ConnectedAt time.Time
	// Client is where the connection comes from; set on connect only.
	Client Client
	// Close is how the connection closed; set on disconnect only.
	Close satellite.CloseStatus
}

// receivedAt is when API Gateway received the frame, or now for an event
// that does not say (tests, other invokers).
func (c Conn) receivedAt(now time.Time) time.Time {
	if c.ReceivedAt.IsZero() {
		return now
	}
	return c.ReceivedAt
}

// Client is where a connection comes from, as its handshake shows it.
type Client struct {
	// IP is the satellite's address: the viewer address CloudFront passes
	// when the connection came through the satellite endpoint's
	// distribution, else the TCP peer. Headers are the client's word on a
	// connection made to execute-api directly, so this is for logs, never
	// for decisions.
	IP string
	// PeerIP is the TCP peer API Gateway saw: a CloudFront edge for a
	// connection through the distribution.
	PeerIP    string
	UserAgent string
	// EdgeRequestID is CloudFront's id of the handshake (X-Amz-Cf-Id), the
	// key of the distribution's own logs; empty without CloudFront.
	EdgeRequestID string
}

// Connect records a new connection. It fails only when the record cannot be
// written, and then the handshake should be refused.
func (s *Service) Connect(ctx context.Context, c Conn) error {
	now := s.Now()
	err := s.Registry.OpenConnection(ctx, satellite.Connection{
		ID:          c.ID,
		ConnectedAt: now,
		ExpiresAt:   now.Add(satellite.ConnectionRecordTTL),
	})
	if err != nil {
		s.Log.LogAttrs(ctx, slog.LevelError, "connection not recorded",
			slog.String("connectionId", c.ID), slog.String("error", err.Error()))
		return err
	}
	attrs := []slog.Attr{slog.String("connectionId", c.ID)}
	for _, a := range []struct{ key, value string }{
		{"sourceIp", c.Client.IP}, {"peerIp", c.Client.PeerIP}, {"userAgent", c.Client.UserAgent}, {"edgeRequestId", c.Client.EdgeRequestID},
	} {
		if a.value != "" {
			attrs = append(attrs, slog.String(a.key, a.value))
		}
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "connection opened", attrs...)
	return nil
}

// Disconnect handles a closed connection. A stale disconnect, after the
// satellite reconnected, changes nothing but the record of oversized
// messages: a close with 1009 (a message over API Gateway's limit) is
// recorded on its satellite either way, counted when it repeats within an
// hour (OversizedMessageCloses), and logged at most once a clock hour per
// satellite, not once a reconnect.
func (s *Service) Disconnect(ctx context.Context, c Conn) error {
	s.bindingCache().forget(c.ID)
	s.capabilities().forget(c.ID)
	closed, err := s.Sender.Disconnected(ctx, c.ID, c.Close)
	if err != nil {
		s.Log.LogAttrs(ctx, slog.LevelError, "disconnect not recorded",
			slog.String("connectionId", c.ID), slog.Int("closeCode", c.Close.Code), slog.String("error", err.Error()))
		return err
	}
	if closed.SatelliteID == "" {
		s.Log.LogAttrs(ctx, slog.LevelDebug, "unauthenticated connection closed",
			slog.String("connectionId", c.ID), slog.Int("closeCode", c.Close.Code), slog.String("closeReason", c.Close.Reason))
	}
	if o := closed.Oversized; o != nil && o.After.Repeated() {
		s.Metrics.Count(metrics.OversizedMessageCloses, "")
		if satellite.FirstRepeatedInHour(o.Before, o.After) {
			s.Log.LogAttrs(ctx, slog.LevelWarn, "satellite sends messages over the limit",
				slog.String("satelliteId", closed.SatelliteID), slog.String("connectionId", c.ID),
				slog.String("warning", satellite.OversizedMessagesWarning),
				slog.Int64("oversizedCloses", o.After.Closes), slog.Time("previousAt", o.After.PreviousAt),
				slog.Int("limitBytes", protocol.MaxMessageBytes))
		}
	}
	return nil
}
