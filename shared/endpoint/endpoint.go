// Package endpoint is the satellite endpoint itself: what happens when a
// satellite connects, sends a frame or disconnects. It speaks PROTOCOL.md
// through the protocol package and keeps all state in the ports of the
// satellite package, so the same code runs on Lambda, in the local stack and
// in tests.
package endpoint

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/phases"
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

func (s *Service) cache() *bindings {
	s.init()
	return s.bindings
}

// claimed is this instance's memory of authentication attempts.
func (s *Service) claimed() *attempts {
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
	if c, ok := s.cache().get(id, now); ok {
		return c, nil
	}
	c, err := s.Registry.Connection(ctx, id, now)
	if err == nil {
		s.cache().put(c, now)
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
	s.cache().forget(c.ID)
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
		reported := c.ReceivedAt
		if reported.IsZero() {
			reported = s.Now()
		}
		err = s.Registry.SaveSyncState(ctx, conn.SatelliteID, satellite.SyncState{
			LockfileHash: m.LockfileHash, Status: m.Status, ErrorMessage: m.ErrorMessage, ReportedAt: reported,
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
		reported := c.ReceivedAt
		if reported.IsZero() {
			reported = s.Now()
		}
		err = s.Registry.SaveCapabilityStatus(ctx, conn.SatelliteID, satellite.CapabilityStatus{Kind: m.Kind, Payload: m.Payload, ReportedAt: reported})
	case *protocol.CapabilitySecretRequest:
		err = s.capabilitySecret(ctx, c, conn, m)
	}
	return s.settle(ctx, c, conn, msg, err)
}

// authenticateFrame handles an authenticate frame; m is nil when the frame
// was malformed (parseErr says why). A connection gets one attempt, claimed
// before any token is checked: pipelining wrong tokens on one socket costs
// one bcrypt, and the frames after the first are dropped.
func (s *Service) authenticateFrame(ctx context.Context, c Conn, m *protocol.Authenticate, parseErr error) error {
	var msg protocol.Message = &protocol.Authenticate{}
	if m != nil {
		msg = m
	}
	// On an authenticated connection a second authenticate is ignored, and
	// a malformed one is just an invalid frame.
	ignored := func(conn satellite.Connection) error {
		if m == nil {
			return s.settle(ctx, c, conn, nil, parseErr)
		}
		return s.settle(ctx, c, conn, msg, errAlreadyAuthenticated)
	}
	// An instance that bound this connection knows it without a request.
	if conn, ok := s.cache().get(c.ID, s.Now()); ok {
		return ignored(conn)
	}
	errOneAttempt := satellite.Errorf(satellite.ECONFLICT, "a connection gets one authentication attempt; later authenticate frames are dropped")
	if !s.claimed().take(c.ID, s.Now()) {
		return s.settle(ctx, c, satellite.Connection{ID: c.ID}, msg, errOneAttempt)
	}
	conn, err := s.Registry.ClaimAuthentication(ctx, c.ID, s.Now())
	switch {
	case err == nil:
	case satellite.Is(err, satellite.ECONFLICT):
		if conn.Authenticated() {
			return ignored(conn)
		}
		return s.settle(ctx, c, conn, msg, errOneAttempt)
	case satellite.Is(err, satellite.ENOTFOUND):
		// The connection was closed or cleaned up meanwhile.
		return s.settle(ctx, c, conn, msg, err)
	default:
		s.claimed().forget(c.ID)
		return s.settle(ctx, c, conn, msg, err)
	}
	if m == nil {
		s.Log.LogAttrs(ctx, slog.LevelWarn, "malformed authenticate", slog.String("connectionId", c.ID), slog.String("reason", satellite.ErrorMessage(parseErr)))
		err = errBadCredentials
	} else {
		err = s.authenticate(ctx, c, conn, m)
	}
	switch {
	case err == nil:
		s.Metrics.Count(metrics.Authentications, metrics.OK)
	case satellite.Is(err, satellite.EUNAUTHENTICATED):
		s.Metrics.Count(metrics.Authentications, metrics.Failed)
	case satellite.Is(err, satellite.EGONE):
	default:
		// The backend failed, not the satellite: give the attempt back so
		// that its retry on this connection is not dropped.
		s.claimed().forget(c.ID)
		if rerr := s.Registry.ReleaseAuthentication(ctx, c.ID); rerr != nil {
			s.Log.LogAttrs(ctx, slog.LevelError, "authentication attempt not released", slog.String("connectionId", c.ID), slog.String("error", rerr.Error()))
		}
	}
	return s.settle(ctx, c, conn, msg, err)
}

var errAlreadyAuthenticated = satellite.Errorf(satellite.ECONFLICT, "connection is already authenticated; second authenticate ignored")

// authFailure marks an error that ends in auth_failed and a closed connection.
type authFailure struct{ reason string }

func (a *authFailure) Error() string { return a.reason }

var (
	errMustAuthenticate = &satellite.Error{Code: satellite.EUNAUTHENTICATED, Message: "frame before authenticate", Err: &authFailure{protocol.ReasonMustAuthenticate}}
	errBadCredentials   = &satellite.Error{Code: satellite.EUNAUTHENTICATED, Message: "invalid client id or token", Err: &authFailure{protocol.ReasonInvalidCredentials}}
)

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

// refuse answers auth_failed and closes the connection.
func (s *Service) refuse(ctx context.Context, c Conn, reason string) error {
	s.cache().forget(c.ID)
	err := s.Sender.Send(ctx, c.ManagementURL, c.ID, protocol.NewAuthFailed(reason))
	if satellite.ErrorCode(err) == satellite.EGONE {
		return nil
	}
	if err != nil {
		return err
	}
	return s.Sender.Close(ctx, c.ManagementURL, c.ID)
}

func (s *Service) reply(ctx context.Context, c Conn, frame any) error {
	err := s.Sender.Send(ctx, c.ManagementURL, c.ID, frame)
	if satellite.ErrorCode(err) == satellite.EGONE {
		s.cache().forget(c.ID)
	}
	return err
}

func (s *Service) authenticate(ctx context.Context, c Conn, record satellite.Connection, m *protocol.Authenticate) error {
	// A token that is not shaped like one is wrong without a bcrypt. Every
	// well-formed token costs one, real or decoy, so timing does not tell
	// which satellite ids exist.
	if !s.Tokens.WellFormed(m.Token) {
		return errBadCredentials
	}
	if !satellite.ValidSatelliteID(m.ClientID) {
		s.Tokens.Refuse(m.Token)
		return errBadCredentials
	}
	// The fleet settings (published lockfile, sandbox policy) are read
	// while the satellite is.
	type settings struct {
		satellite.Settings
		err error
	}
	pending := make(chan settings, 1)
	go func() {
		st, err := s.Registry.Settings(ctx)
		pending <- settings{st, err}
	}()
	sat, assignments, err := s.Registry.Satellite(ctx, m.ClientID)
	switch {
	case err == nil:
	case satellite.Is(err, satellite.ENOTFOUND):
		s.Tokens.Refuse(m.Token)
		return errBadCredentials
	default:
		return err
	}
	if until := sat.AuthBackoffUntil(); s.Now().Before(until) {
		// Refused whatever the token, and at the price of any refusal: a
		// refusal without a bcrypt would tell which ids exist. The decoy,
		// not the stored hash, so that a guess sent inside the back-off is
		// never checked at all.
		s.Tokens.Refuse(m.Token)
		s.Log.LogAttrs(ctx, slog.LevelWarn, "authentication backed off after repeated failures",
			slog.String("connectionId", c.ID), slog.String("satelliteId", sat.ID),
			slog.Int("failures", sat.AuthFailures), slog.Time("until", until))
		return errBadCredentials
	}
	if !s.Tokens.Verify(sat.TokenHash, m.Token) {
		if err := s.Registry.RecordAuthFailure(ctx, sat.ID, s.Now()); err != nil {
			s.Log.LogAttrs(ctx, slog.LevelError, "authentication failure not counted",
				slog.String("satelliteId", sat.ID), slog.String("error", err.Error()))
		}
		return errBadCredentials
	}
	// A failed read fails the authentication (the satellite retries): it is
	// never answered without the policy it should carry.
	st := <-pending
	if st.err != nil {
		return st.err
	}
	hash := protocol.LockfileHash{Configured: s.Packages != nil}
	if s.Packages != nil {
		hash.Hash = st.LockfileHash
	}
	policy := s.sandboxPolicy(ctx, st.Settings)
	now := s.Now()
	edge, err := s.Registry.BindConnection(ctx, c.ID, sat, sat.TokenHash, m.Capabilities, now)
	switch {
	case err == nil:
	case satellite.Is(err, satellite.EUNAUTHENTICATED):
		return errBadCredentials
	default:
		return err
	}
	bound := satellite.Connection{
		ID: c.ID, SatelliteID: sat.ID, SatelliteName: sat.Name, SatelliteRegion: sat.Region,
		ConnectedAt: record.ConnectedAt, AuthenticatedAt: now, ExpiresAt: record.ExpiresAt,
		TokenGeneration: sat.TokenGeneration, OfflineThreshold: sat.OfflineThreshold,
	}
	if bound.ExpiresAt.IsZero() {
		bound.ExpiresAt = now.Add(satellite.ConnectionRecordTTL)
	}
	s.cache().put(bound, now)
	if m.Capabilities != nil {
		// Without the field nothing is known of what the connection
		// reports: its first heartbeat that carries a list writes it, even
		// an empty one.
		s.capabilities().remember(c.ID, m.Capabilities)
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "satellite authenticated",
		slog.String("connectionId", c.ID), slog.String("satelliteId", sat.ID), slog.Int("assignments", len(assignments)),
		slog.Bool("sandboxPolicy", policy != nil), slog.Any("capabilities", m.Capabilities))
	s.Sender.Publish(ctx, edge)
	err = s.reply(ctx, c, protocol.NewAuthenticated(sat.ID, assignments, hash, policy))
	var after []any // frames that follow authenticated
	if satellite.ErrorCode(err) == satellite.ETOOLARGE && policy != nil {
		// The assignments leave no room for the policy: authenticated
		// without it (the satellite stays fail-closed until the next frame),
		// then the policy on its own.
		err = s.reply(ctx, c, protocol.NewAuthenticated(sat.ID, assignments, hash, nil))
		after = append(after, protocol.NewSandboxPolicy(policy))
	}
	if err == nil {
		// Right after authenticated: the operator's config of each
		// capability kind (never its secrets).
		for _, cfg := range sat.CapabilityConfigs {
			after = append(after, protocol.NewCapabilityConfig(cfg.Kind, cfg.Payload))
		}
		for _, frame := range after {
			if ferr := s.reply(ctx, c, frame); ferr != nil {
				// Authenticated stands; the satellite gets these again when
				// they change or on its next authentication.
				s.Log.LogAttrs(ctx, slog.LevelError, "frame after authenticated not sent",
					slog.String("connectionId", c.ID), slog.String("satelliteId", sat.ID), slog.String("error", ferr.Error()))
				return nil
			}
		}
	}
	if err != nil && !satellite.Is(err, satellite.EGONE) {
		// The satellite never saw "authenticated": unmark the connection so
		// that its retry authenticates instead of being ignored as a second
		// authenticate.
		s.cache().forget(c.ID)
		s.claimed().forget(c.ID)
		if uerr := s.Registry.UnbindConnection(ctx, c.ID, sat.ID); uerr != nil {
			s.Log.LogAttrs(ctx, slog.LevelError, "connection left bound after a failed reply",
				slog.String("connectionId", c.ID), slog.String("satelliteId", sat.ID), slog.String("error", uerr.Error()))
		}
	}
	return err
}

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
	received := c.ReceivedAt
	if received.IsZero() {
		received = now
	}
	if keepaliveDue(c.ConnectedAt, received, s.KeepaliveEvery) {
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

func (s *Service) manifest(ctx context.Context, c Conn, m *protocol.ManifestRequest) error {
	var entries []satellite.ManifestEntry
	if s.Packages != nil {
		var err error
		entries, err = s.Packages.Manifest(ctx, m.LockfileHash)
		switch {
		case err == nil || satellite.Is(err, satellite.ENOTFOUND, satellite.EINVALID):
			// Unknown or malformed: the protocol's answer is empty entries.
		default:
			return err
		}
	}
	reply := protocol.NewScriptPackageManifest(m.LockfileHash, entries)
	err := s.reply(ctx, c, reply)
	if satellite.ErrorCode(err) != satellite.ETOOLARGE {
		return err
	}
	url, err := s.Packages.ManifestURL(ctx, m.LockfileHash, s.BlobURLTTL)
	if err != nil {
		return err
	}
	reply.Entries, reply.ManifestURL = []satellite.ManifestEntry{}, url
	return s.reply(ctx, c, reply)
}

// blob answers a blob request: inline when the blob fits one frame, else
// by presigned URL. Its size decides which, and is learnt without reading
// the blob (a HEAD, or this instance's cache).
func (s *Service) blob(ctx context.Context, c Conn, m *protocol.BlobRequest) error {
	missing := protocol.ScriptPackageBlob{Type: protocol.TypeScriptPackageBlob, Integrity: m.Integrity}
	if s.Packages == nil {
		return s.reply(ctx, c, missing)
	}
	size, err := s.Packages.BlobSize(ctx, m.Integrity)
	switch {
	case err == nil:
	case satellite.Is(err, satellite.ENOTFOUND, satellite.EINVALID):
		return s.reply(ctx, c, missing)
	default:
		return err
	}
	if !protocol.InlineBlobFits(m.Integrity, size) {
		url, err := s.Packages.BlobURL(ctx, m.Integrity, s.BlobURLTTL)
		if err != nil {
			return err
		}
		return s.reply(ctx, c, protocol.ScriptPackageBlob{Type: protocol.TypeScriptPackageBlob, Integrity: m.Integrity, URL: url, Size: size})
	}
	data, err := s.Packages.ReadBlob(ctx, m.Integrity, size)
	switch {
	case err == nil:
	case satellite.Is(err, satellite.ENOTFOUND):
		return s.reply(ctx, c, missing)
	default:
		return err
	}
	encoded := base64.StdEncoding.EncodeToString(data)
	return s.reply(ctx, c, protocol.ScriptPackageBlob{Type: protocol.TypeScriptPackageBlob, Integrity: m.Integrity, Data: &encoded})
}

// sandboxPolicy returns the policy to send: the one set, else
// DefaultSandboxPolicy; nil when there is neither. A stored policy that is
// not a JSON object is never sent, nor replaced by the default (the
// satellite stays fail-closed), and is logged.
func (s *Service) sandboxPolicy(ctx context.Context, st satellite.Settings) json.RawMessage {
	policy, _, err := st.SandboxPolicyInForce(s.DefaultSandboxPolicy)
	if err != nil {
		s.Log.LogAttrs(ctx, slog.LevelError, "stored sandbox policy is not a JSON object; omitted")
		return nil
	}
	return policy
}

// capabilitiesDropped logs what of a frame's capabilities was left out.
func (s *Service) capabilitiesDropped(ctx context.Context, c Conn, dropped string) {
	if dropped != "" {
		s.Log.LogAttrs(ctx, slog.LevelWarn, "capabilities cleaned", slog.String("connectionId", c.ID), slog.String("reason", dropped))
	}
}
