package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/checkstack/satellite-backend/shared/fanout"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// CapabilityConfigView is an operator's config of one capability kind as
// the API shows it. Secrets holds secret references, never values.
type CapabilityConfigView struct {
	Kind      string                       `json:"kind"`
	Payload   rawJSON                      `json:"payload"`
	Secrets   map[string]map[string]string `json:"secrets"`
	UpdatedAt time.Time                    `json:"updatedAt"`
}

// CapabilityStatusView is the latest status a satellite reported for a kind.
type CapabilityStatusView struct {
	Kind       string    `json:"kind"`
	Payload    rawJSON   `json:"payload"`
	ReportedAt time.Time `json:"reportedAt"`
}

func configView(c satellite.CapabilityConfig) CapabilityConfigView {
	secrets := c.Secrets
	if secrets == nil {
		secrets = map[string]map[string]string{}
	}
	return CapabilityConfigView{Kind: c.Kind, Payload: rawJSON(c.Payload), Secrets: secrets, UpdatedAt: c.UpdatedAt}
}

// lateAuthentication is how long before a change an authentication may
// have read what was stored before it and answer after the change's push:
// longer than authenticating takes.
const lateAuthentication = 10 * time.Second

// SetCapabilityConfig stores a satellite's config of one capability kind and
// pushes capability_config to it when it is connected. Its secrets are never
// pushed: the satellite asks for a bound resource's secrets when it needs
// them. A connection that authenticated just before the change may send the
// config it read earlier after this push: it gets the config again once
// that answer is out (PushSettle).
func (s *Service) SetCapabilityConfig(ctx context.Context, id string, cfg satellite.CapabilityConfig) (CapabilityConfigView, error) {
	cfg.UpdatedAt = s.Now().UTC()
	if err := s.Registry.SetCapabilityConfig(ctx, id, cfg); err != nil {
		return CapabilityConfigView{}, err
	}
	push := func() {
		if err := s.Push.CapabilityConfig(ctx, id, cfg.Kind, cfg.Payload); err != nil {
			// Stored: the satellite gets it on its next authenticate anyway.
			s.Log.LogAttrs(ctx, slog.LevelError, "capability_config not pushed", slog.String("satelliteId", id),
				slog.String("kind", cfg.Kind), slog.String("error", err.Error()))
		}
	}
	push()
	if s.recentlyAuthenticated(ctx, id, cfg.UpdatedAt) && s.settle(ctx) {
		push()
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "capability config stored", slog.String("satelliteId", id), slog.String("kind", cfg.Kind),
		slog.Int("boundResources", len(cfg.Secrets)))
	return configView(cfg), nil
}

// DeleteCapabilityConfig removes one. The satellite keeps the config it was
// sent until its next authentication (the protocol has no removal).
func (s *Service) DeleteCapabilityConfig(ctx context.Context, id, kind string) error {
	return s.Registry.DeleteCapabilityConfig(ctx, id, kind)
}

// SandboxPolicyView is the fleet-wide sandbox policy in force.
type SandboxPolicyView struct {
	// Policy is what satellites are sent: the policy set, else the
	// deployment's default; null when there is neither (satellites then
	// run scripts fail-closed), or when the policy set cannot be read.
	Policy rawJSON `json:"policy"`
	// UpdatedAt is when the policy was set; null while none was.
	UpdatedAt *time.Time `json:"updatedAt"`
	// Source says where Policy comes from: "set", "default" or "none".
	Source satellite.PolicySource `json:"source"`
	// Warning says why a policy that was set is not in force.
	Warning string `json:"warning,omitempty"`
	// Push is the fan-out job pushing the policy set by this request, as
	// started (its late pass is the second push to connections that
	// authenticated around the change).
	Push *FanoutView `json:"push,omitempty"`
}

func (v SandboxPolicyView) location() string {
	if v.Push == nil {
		return ""
	}
	return v.Push.location()
}

// SandboxPolicy returns the fleet-wide sandbox policy in force, as
// authenticated carries it, and where it comes from.
func (s *Service) SandboxPolicy(ctx context.Context) (SandboxPolicyView, error) {
	st, err := s.Registry.Settings(ctx)
	if err != nil {
		return SandboxPolicyView{}, err
	}
	policy, source, err := st.SandboxPolicyInForce(s.DefaultSandboxPolicy)
	v := SandboxPolicyView{Policy: rawJSON("null"), Source: source}
	if policy != nil {
		v.Policy = rawJSON(policy)
	}
	if st.SandboxPolicySet {
		at := st.SandboxPolicyUpdatedAt
		v.UpdatedAt = &at
	}
	if err != nil {
		v.Warning = satellite.ErrorMessage(err) + ": satellites are sent none (they run scripts fail-closed), never the default; set it again"
	}
	return v, nil
}

// SetSandboxPolicy stores the fleet-wide sandbox policy, then starts the
// fan-out job that pushes sandbox_policy to every connected satellite. Every
// later authenticated carries it. A satellite authenticating during the
// change may have read the old policy and answer after the push, or be
// missing from the push's listing (its index is eventually consistent): the
// job's late pass, once such answers are out (PushSettle after the change),
// pushes the policy again to the connections that authenticated since
// shortly before the change. It never ends up with an older one. EINTERNAL
// when the job could not be started: the policy is stored all the same.
func (s *Service) SetSandboxPolicy(ctx context.Context, policy json.RawMessage) (SandboxPolicyView, error) {
	now := s.Now().UTC()
	if err := s.Registry.SetSandboxPolicy(ctx, policy, now); err != nil {
		return SandboxPolicyView{}, err
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "sandbox policy stored")
	frame, err := protocol.Encode(protocol.NewSandboxPolicy(policy))
	if err != nil {
		return SandboxPolicyView{}, err
	}
	job, err := s.Fanout.Start(ctx, fanout.Request{
		Kind: protocol.TypeSandboxPolicy, Subject: fanout.PolicySubjectPrefix + now.Format(time.RFC3339Nano), Frame: frame,
		LateSince: now.Add(-lateAuthentication), LateNotBefore: now.Add(s.PushSettle),
	})
	if err != nil {
		return SandboxPolicyView{}, satellite.Wrap(err, satellite.EINTERNAL, "the sandbox policy is stored, but its push did not start ("+
			satellite.ErrorMessage(err)+"): satellites get it when they next authenticate; set it again to push it now")
	}
	view := fanoutView(job)
	return SandboxPolicyView{Policy: rawJSON(policy), UpdatedAt: &now, Source: satellite.PolicySet, Push: &view}, nil
}

// MaxTelemetryDays bounds how far back a telemetry listing reaches.
const MaxTelemetryDays = 31

// ListTelemetry lists stored telemetry batches, newest first.
func (s *Service) ListTelemetry(ctx context.Context, q satellite.TelemetryQuery) (satellite.TelemetryListing, error) {
	if s.Telemetry == nil {
		return satellite.TelemetryListing{}, satellite.Errorf(satellite.EUNAVAILABLE, "no telemetry storage is configured (TELEMETRY_BUCKET, TELEMETRY_TABLE)")
	}
	if len(q.Kinds) == 0 {
		q.Kinds = s.TelemetryKinds
	}
	listing, err := s.Telemetry.List(ctx, q)
	if listing.Batches == nil {
		listing.Batches = []satellite.TelemetryObject{}
	}
	return listing, err
}

// settle waits out answers of authentications that read the state before a
// change (PushSettle). It reports false when ctx ends first (the request's
// deadline): then there is no time left for the second push.
func (s *Service) settle(ctx context.Context) bool {
	if s.PushSettle <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(s.PushSettle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// recentlyAuthenticated reports whether the satellite's current connection
// authenticated shortly before at (or after it).
func (s *Service) recentlyAuthenticated(ctx context.Context, id string, at time.Time) bool {
	sat, _, err := s.Registry.Satellite(ctx, id)
	if err != nil || sat.ConnectionID == "" {
		return false
	}
	c, err := s.Registry.Connection(ctx, sat.ConnectionID, s.Now())
	return err == nil && !c.AuthenticatedAt.Before(at.Add(-lateAuthentication))
}
