package satellite

import (
	"encoding/json"
	"time"
)

// CapabilityConfig is an operator's config of one capability kind for one
// satellite. Payload is pushed to the satellite as capability_config;
// Secrets never leaves the backend: it binds each resource the config uses
// (resource id) to the secret references of its fields, which a
// capability_secret_request for that resource resolves.
type CapabilityConfig struct {
	Kind    string
	Payload json.RawMessage
	// Secrets is resource id -> field -> secret reference
	// ("${{ secrets.NAME }}").
	Secrets   map[string]map[string]string
	UpdatedAt time.Time
	// TokenGeneration is the satellite's token generation when the config
	// was read (Registry.CapabilityConfig): a connection that authenticated
	// with another gets none of its secrets.
	TokenGeneration int64
}

// CapabilityStatus is the latest state a satellite reported for one
// capability kind.
type CapabilityStatus struct {
	Kind       string
	Payload    json.RawMessage
	ReportedAt time.Time
}

// Bounds of the capability channels and the fleet settings.
const (
	// MaxCapabilityConfigs bounds the configured kinds of one satellite.
	MaxCapabilityConfigs = 16
	// MaxCapabilityPayloadBytes bounds a capability config's payload.
	MaxCapabilityPayloadBytes = 16 * 1024
	// MaxCapabilityResources bounds the resources of a config's secrets map,
	// and MaxSecretFields the fields of one resource.
	MaxCapabilityResources = 64
	MaxSecretFields        = 16
	// MaxSecretFieldLength bounds the name of a resource's field.
	MaxSecretFieldLength = 128
	// MaxStatusKinds bounds the kinds a satellite keeps a status for.
	MaxStatusKinds = 32
	// MaxSandboxPolicyBytes bounds the fleet-wide sandbox policy: it rides
	// every authenticated frame.
	MaxSandboxPolicyBytes = 16 * 1024
)

// Settings are the fleet-wide settings every authentication reads.
type Settings struct {
	// LockfileHash is the published script-package lockfile, nil when
	// nothing is published.
	LockfileHash *string
	// SandboxPolicy is the script sandbox policy (a JSON object), nil when
	// never set. SandboxPolicySet says an operator stored one, even one
	// that does not read back as a JSON object (see SandboxPolicyInForce).
	SandboxPolicy          json.RawMessage
	SandboxPolicySet       bool
	SandboxPolicyUpdatedAt time.Time
}
