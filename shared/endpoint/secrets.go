package endpoint

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Secrets of every kind (run, config, capability) travel only as replies on
// the authenticated socket, resolved from what the backend stores for this
// satellite: the satellite names what it runs, never which secrets. They are
// never stored and never logged.

// runSecrets resolves the secret env of one collector from the satellite's
// OWN stored assignment: the satellite names the collector, never the secrets.
func (s *Service) runSecrets(ctx context.Context, c Conn, conn satellite.Connection, m *protocol.RunSecretsRequest) error {
	if s.Secrets == nil {
		return satellite.Errorf(satellite.EUNAVAILABLE, protocol.SecretsUnavailable)
	}
	assignments, err := s.ownAssignments(ctx, c, conn, m.ConfigID)
	if err != nil {
		return err
	}
	var (
		collector satellite.Collector
		found     bool
	)
	for _, a := range assignments {
		if collector, found = a.Collector(m.CollectorID); found {
			break
		}
	}
	if !found {
		return satellite.Errorf(satellite.ENOTFOUND, "No collector %s in configId %s", m.CollectorID, m.ConfigID)
	}
	env, err := collector.SecretEnv()
	if err != nil {
		return err
	}
	values, err := s.Secrets.Resolve(ctx, satellite.SecretNames(env))
	if err != nil {
		return err
	}
	resolved := make(map[string]string, len(env))
	for envName, secretName := range env {
		resolved[envName] = values[secretName]
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "run secrets delivered",
		slog.String("connectionId", c.ID), slog.String("satelliteId", conn.SatelliteID),
		slog.String("configId", m.ConfigID), slog.String("collectorId", m.CollectorID),
		slog.String("runId", m.RunID), slog.Int("count", len(resolved)))
	return s.reply(ctx, c, protocol.RunSecrets{Type: protocol.TypeRunSecrets, RequestID: m.RequestID, Env: resolved})
}

// ownAssignments returns the satellite's assignments for configID, read
// now, checked against the connection's token generation: a connection
// that authenticated with a token since rotated gets no secrets, even
// before it is closed.
func (s *Service) ownAssignments(ctx context.Context, c Conn, conn satellite.Connection, configID string) ([]satellite.Assignment, error) {
	assignments, err := s.Registry.AssignmentsForConfig(ctx, conn.SatelliteID, configID)
	if err != nil {
		return nil, err
	}
	if len(assignments) == 0 {
		return nil, satellite.Errorf(satellite.ENOTFOUND, "No assignment for configId %s", configID)
	}
	if assignments[0].TokenGeneration != conn.TokenGeneration {
		return nil, satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s's token was rotated since connection %s authenticated", conn.SatelliteID, c.ID)
	}
	return assignments, nil
}

// configSecrets answers request_config_secrets with the values of the
// secret references in the satellite's own assignment for the config: its
// strategy config and each collector's config, by field path. Assignments
// of one config on several systems share the config; the first is read.
func (s *Service) configSecrets(ctx context.Context, c Conn, conn satellite.Connection, m *protocol.ConfigSecretsRequest) error {
	assignments, err := s.ownAssignments(ctx, c, conn, m.ConfigID)
	if err != nil {
		return err
	}
	a := assignments[0]
	strategy := satellite.SecretRefs(a.Config)
	collectors := map[string]map[string]string{}
	names := map[string]bool{}
	for _, name := range strategy {
		names[name] = true
	}
	for _, col := range a.Collectors {
		refs := satellite.SecretRefs(map[string]any(col.Config))
		if len(refs) == 0 {
			continue
		}
		collectors[col.ID] = refs
		for _, name := range refs {
			names[name] = true
		}
	}
	values, err := s.resolve(ctx, names)
	if err != nil {
		return err
	}
	reply := protocol.ConfigSecrets{Type: protocol.TypeConfigSecrets, RequestID: m.RequestID}
	fill := func(refs map[string]string) map[string]string {
		out := make(map[string]string, len(refs))
		for path, name := range refs {
			out[path] = values[name]
		}
		return out
	}
	if len(strategy) > 0 {
		reply.Strategy = fill(strategy)
	}
	if len(collectors) > 0 {
		reply.Collectors = make(map[string]map[string]string, len(collectors))
		for id, refs := range collectors {
			reply.Collectors[id] = fill(refs)
		}
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "config secrets delivered",
		slog.String("connectionId", c.ID), slog.String("satelliteId", conn.SatelliteID),
		slog.String("configId", m.ConfigID), slog.String("runId", m.RunID), slog.Int("count", len(names)))
	return s.reply(ctx, c, reply)
}

// capabilitySecret answers capability_secret_request: the request names a
// resource (targetId, resourceId or id in its payload); the resource must be
// bound in this satellite's own config of the kind, whose secrets map gives
// the secret reference of each of its fields.
func (s *Service) capabilitySecret(ctx context.Context, c Conn, conn satellite.Connection, m *protocol.CapabilitySecretRequest) error {
	if s.Secrets == nil {
		return satellite.Errorf(satellite.EUNAVAILABLE, protocol.SecretsUnavailable)
	}
	resource, ok := resourceOf(m.Payload)
	if !ok {
		return satellite.Errorf(satellite.EINVALID, "payload names no resource: give targetId, resourceId or id")
	}
	cfg, err := s.Registry.CapabilityConfig(ctx, conn.SatelliteID, m.Kind)
	if err != nil {
		return err
	}
	if cfg.TokenGeneration != conn.TokenGeneration {
		return satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s's token was rotated since connection %s authenticated", conn.SatelliteID, c.ID)
	}
	fields, ok := cfg.Secrets[resource]
	if !ok {
		return satellite.Errorf(satellite.EFORBIDDEN, "Resource %s is not bound to this satellite for capability %s", resource, m.Kind)
	}
	names := map[string]bool{}
	refs := make(map[string]string, len(fields))
	for field, ref := range fields {
		name, ok := satellite.SecretRef(ref)
		if !ok {
			return satellite.Errorf(satellite.EINVALID, "Field %s of resource %s is not bound to a secret reference", field, resource)
		}
		refs[field], names[name] = name, true
	}
	values, err := s.resolve(ctx, names)
	if err != nil {
		return err
	}
	payload := make(map[string]string, len(refs))
	for field, name := range refs {
		payload[field] = values[name]
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "capability secret delivered",
		slog.String("connectionId", c.ID), slog.String("satelliteId", conn.SatelliteID),
		slog.String("kind", m.Kind), slog.String("resource", resource), slog.Int("count", len(payload)))
	return s.reply(ctx, c, protocol.CapabilitySecretResponse{Type: protocol.TypeCapabilitySecretResponse, RequestID: m.RequestID, Payload: payload})
}

// resolve resolves secret names through the secret source. An unresolvable
// one is ENOTFOUND naming it (never a value). No names need no source: a
// config without secret references is answered even where secret delivery
// is not configured.
func (s *Service) resolve(ctx context.Context, names map[string]bool) (map[string]string, error) {
	if len(names) == 0 {
		return map[string]string{}, nil
	}
	if s.Secrets == nil {
		return nil, satellite.Errorf(satellite.EUNAVAILABLE, protocol.SecretsUnavailable)
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	return s.Secrets.Resolve(ctx, list)
}

// resourceOf reads the resource a capability_secret_request names.
func resourceOf(payload []byte) (string, bool) {
	var fields map[string]any
	if json.Unmarshal(payload, &fields) != nil {
		return "", false
	}
	for _, name := range []string{"targetId", "resourceId", "id"} {
		if v, ok := fields[name].(string); ok && v != "" && len(v) <= protocol.MaxIDBytes {
			return v, true
		}
	}
	return "", false
}
