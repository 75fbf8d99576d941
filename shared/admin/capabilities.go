package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/checkstack/satellite-backend/shared/push"
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

// SetCapabilityConfig stores a satellite's config of one capability kind and
// pushes capability_config to it when it is connected. Its secrets are never
// pushed: the satellite asks for a bound resource's secrets when it needs
// them.
func (s *Service) SetCapabilityConfig(ctx context.Context, id string, cfg satellite.CapabilityConfig) (CapabilityConfigView, error) {
	cfg.UpdatedAt = s.Now().UTC()
	if err := s.Registry.SetCapabilityConfig(ctx, id, cfg); err != nil {
		return CapabilityConfigView{}, err
	}
	if err := s.Push.CapabilityConfig(ctx, id, cfg.Kind, cfg.Payload); err != nil {
		// Stored: the satellite gets it on its next authenticate anyway.
		s.Log.LogAttrs(ctx, slog.LevelError, "capability_config not pushed", slog.String("satelliteId", id),
			slog.String("kind", cfg.Kind), slog.String("error", err.Error()))
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

// SandboxPolicyView is the fleet-wide sandbox policy.
type SandboxPolicyView struct {
	// Policy is null when none was ever set: satellites then run scripts
	// fail-closed.
	Policy    rawJSON      `json:"policy"`
	UpdatedAt *time.Time   `json:"updatedAt"`
	Pushed    *push.FanOut `json:"pushed,omitempty"`
}

// SandboxPolicy returns the fleet-wide sandbox policy.
func (s *Service) SandboxPolicy(ctx context.Context) (SandboxPolicyView, error) {
	st, err := s.Registry.Settings(ctx)
	if err != nil {
		return SandboxPolicyView{}, err
	}
	v := SandboxPolicyView{Policy: rawJSON("null")}
	if len(st.SandboxPolicy) > 0 {
		at := st.SandboxPolicyUpdatedAt
		v.Policy, v.UpdatedAt = rawJSON(st.SandboxPolicy), &at
	}
	return v, nil
}

// SetSandboxPolicy stores the fleet-wide sandbox policy, then pushes
// sandbox_policy to every connected satellite. Every later authenticated
// carries it.
func (s *Service) SetSandboxPolicy(ctx context.Context, policy json.RawMessage) (SandboxPolicyView, error) {
	now := s.Now().UTC()
	if err := s.Registry.SetSandboxPolicy(ctx, policy, now); err != nil {
		return SandboxPolicyView{}, err
	}
	report, err := s.Push.SandboxPolicy(ctx, policy)
	if err != nil {
		s.Log.LogAttrs(ctx, slog.LevelError, "sandbox_policy fan-out incomplete", slog.String("error", err.Error()))
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "sandbox policy stored", slog.Int("pushed", report.Sent), slog.Int("failed", report.Failed))
	return SandboxPolicyView{Policy: rawJSON(policy), UpdatedAt: &now, Pushed: &report}, nil
}

// MaxTelemetryDays bounds how far back a telemetry listing reaches.
const MaxTelemetryDays = 31

// ListTelemetry lists stored telemetry batches, newest first.
func (s *Service) ListTelemetry(ctx context.Context, q satellite.TelemetryQuery) ([]satellite.TelemetryObject, error) {
	if s.Telemetry == nil {
		return nil, satellite.Errorf(satellite.EUNAVAILABLE, "no telemetry storage is configured (TELEMETRY_BUCKET, TELEMETRY_TABLE)")
	}
	if len(q.Kinds) == 0 {
		q.Kinds = s.TelemetryKinds
	}
	objects, err := s.Telemetry.List(ctx, q)
	if objects == nil {
		objects = []satellite.TelemetryObject{}
	}
	return objects, err
}
