package endpoint

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Authentication: the one attempt a connection gets, the token check, the
// binding of the connection to its satellite, and auth_failed refusals.

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
	if conn, ok := s.bindingCache().get(c.ID, s.Now()); ok {
		return ignored(conn)
	}
	errOneAttempt := satellite.Errorf(satellite.ECONFLICT, "a connection gets one authentication attempt; later authenticate frames are dropped")
	if !s.attemptCache().take(c.ID, s.Now()) {
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
		s.attemptCache().forget(c.ID)
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
		s.attemptCache().forget(c.ID)
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

// refuse answers auth_failed and closes the connection.
func (s *Service) refuse(ctx context.Context, c Conn, reason string) error {
	s.bindingCache().forget(c.ID)
	err := s.Sender.Send(ctx, c.ManagementURL, c.ID, protocol.NewAuthFailed(reason))
	if satellite.ErrorCode(err) == satellite.EGONE {
		return nil
	}
	if err != nil {
		return err
	}
	return s.Sender.Close(ctx, c.ManagementURL, c.ID)
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
	s.bindingCache().put(bound, now)
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
		s.bindingCache().forget(c.ID)
		s.attemptCache().forget(c.ID)
		if uerr := s.Registry.UnbindConnection(ctx, c.ID, sat.ID); uerr != nil {
			s.Log.LogAttrs(ctx, slog.LevelError, "connection left bound after a failed reply",
				slog.String("connectionId", c.ID), slog.String("satelliteId", sat.ID), slog.String("error", uerr.Error()))
		}
	}
	return err
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
