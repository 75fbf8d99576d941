package protocol

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Outbound frame types.
const (
	TypeAuthenticated         = "authenticated"
	TypeAuthFailed            = "auth_failed"
	TypeConfigUpdated         = "config_updated"
	TypeRefreshScriptPackages = "refresh_script_packages"
	TypeScriptPackageManifest = "script_package_manifest"
	TypeScriptPackageBlob     = "script_package_blob"
	TypeRunSecrets            = "run_secrets"
	TypeShutdown              = "shutdown"
	// The current protocol's additions (PROTOCOL-CURRENT).
	TypeSandboxPolicy            = "sandbox_policy"
	TypeConfigSecrets            = "config_secrets"
	TypeTelemetryAck             = "telemetry_ack"
	TypeCapabilityConfig         = "capability_config"
	TypeCapabilitySecretResponse = "capability_secret_response"
	// This backend's extension: see Keepalive.
	TypeKeepalive = "keepalive"
)

// Reasons for auth_failed, exactly as existing satellites expect them.
const (
	ReasonInvalidCredentials = "Invalid client ID or token"
	ReasonMustAuthenticate   = "Must authenticate first"
)

// SecretsUnavailable is the run_secrets error when no secret source is configured.
const SecretsUnavailable = "Secret delivery is not available on this core instance."

// LockfileHash is the tri-state scriptPackagesLockfileHash: omitted when no
// script-package store is configured, null when nothing is published, a string
// otherwise.
type LockfileHash struct {
	Configured bool
	Hash       *string
}

// field renders the hash for an omitempty json.RawMessage field.
func (h LockfileHash) field() json.RawMessage {
	if !h.Configured {
		return nil
	}
	if h.Hash == nil {
		return json.RawMessage("null")
	}
	b, _ := json.Marshal(*h.Hash)
	return b
}

// Authenticated is the reply to a valid authenticate.
type Authenticated struct {
	Type                       string                 `json:"type"`
	SatelliteID                string                 `json:"satelliteId"`
	Assignments                []satellite.Assignment `json:"assignments"`
	ScriptPackagesLockfileHash json.RawMessage        `json:"scriptPackagesLockfileHash,omitempty"`
	// SandboxPolicy is the fleet-wide script sandbox policy, omitted when
	// none is set (or it could not be read): the satellite then stays
	// fail-closed.
	SandboxPolicy json.RawMessage `json:"sandboxPolicy,omitempty"`
	// MaxMessageBytes is this backend's extension: the largest message
	// the satellite may send (MaxMessageBytes, API Gateway's limit); a
	// larger one closes its connection with 1009. An agent that knows the
	// field sizes its telemetry batches under it; older agents ignore it.
	MaxMessageBytes int `json:"maxMessageBytes,omitempty"`
}

// NewAuthenticated builds an authenticated reply; policy is nil when there
// is none to send. It always advertises MaxMessageBytes.
func NewAuthenticated(satelliteID string, assignments []satellite.Assignment, hash LockfileHash, policy json.RawMessage) Authenticated {
	return Authenticated{Type: TypeAuthenticated, SatelliteID: satelliteID, Assignments: nonNil(assignments), ScriptPackagesLockfileHash: hash.field(),
		SandboxPolicy: policy, MaxMessageBytes: MaxMessageBytes}
}

// AuthFailed precedes closing a connection that failed authentication.
type AuthFailed struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// NewAuthFailed builds an auth_failed frame.
func NewAuthFailed(reason string) AuthFailed { return AuthFailed{Type: TypeAuthFailed, Reason: reason} }

// ConfigUpdated is pushed when a satellite's assignments change.
type ConfigUpdated struct {
	Type                       string                 `json:"type"`
	Assignments                []satellite.Assignment `json:"assignments"`
	ScriptPackagesLockfileHash json.RawMessage        `json:"scriptPackagesLockfileHash,omitempty"`
}

// NewConfigUpdated builds a config_updated push.
func NewConfigUpdated(assignments []satellite.Assignment, hash LockfileHash) ConfigUpdated {
	return ConfigUpdated{Type: TypeConfigUpdated, Assignments: nonNil(assignments), ScriptPackagesLockfileHash: hash.field()}
}

// RefreshScriptPackages is pushed when the desired lockfile changes.
type RefreshScriptPackages struct {
	Type         string `json:"type"`
	LockfileHash string `json:"lockfileHash"`
}

// NewRefreshScriptPackages builds a refresh_script_packages push.
func NewRefreshScriptPackages(lockfileHash string) RefreshScriptPackages {
	return RefreshScriptPackages{Type: TypeRefreshScriptPackages, LockfileHash: lockfileHash}
}

// ScriptPackageManifest replies to request_script_package_manifest.
// ManifestURL is this backend's extension for a manifest too large for one
// message: Entries is then empty and the manifest document is fetched from the
// URL (see PROTOCOL.md).
type ScriptPackageManifest struct {
	Type         string                    `json:"type"`
	LockfileHash string                    `json:"lockfileHash"`
	Entries      []satellite.ManifestEntry `json:"entries"`
	ManifestURL  string                    `json:"manifestUrl,omitempty"`
}

// NewScriptPackageManifest builds a manifest reply.
func NewScriptPackageManifest(lockfileHash string, entries []satellite.ManifestEntry) ScriptPackageManifest {
	if entries == nil {
		entries = []satellite.ManifestEntry{}
	}
	return ScriptPackageManifest{Type: TypeScriptPackageManifest, LockfileHash: lockfileHash, Entries: entries}
}

// ScriptPackageBlob replies to request_script_package_blob. Data is the blob
// in base64, or null when it does not exist. URL and Size are this backend's
// extension for blobs too large for one message: Data is then null and URL is a
// short-lived plain-GET URL of Size bytes (see PROTOCOL.md).
type ScriptPackageBlob struct {
	Type      string  `json:"type"`
	Integrity string  `json:"integrity"`
	Data      *string `json:"data"`
	URL       string  `json:"url,omitempty"`
	Size      int64   `json:"size,omitempty"`
}

// RunSecrets replies to request_run_secrets with exactly one of Env or Error.
type RunSecrets struct {
	Type      string            `json:"type"`
	RequestID string            `json:"requestId"`
	Env       map[string]string `json:"env,omitempty"`
	Error     string            `json:"error,omitempty"`
}

// Shutdown precedes the backend closing a satellite's connection.
type Shutdown struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// NewShutdown builds a shutdown push.
func NewShutdown(reason string) Shutdown { return Shutdown{Type: TypeShutdown, Reason: reason} }

// SandboxPolicyPush is pushed to every connected satellite when the
// fleet-wide policy changes.
type SandboxPolicyPush struct {
	Type   string          `json:"type"`
	Policy json.RawMessage `json:"policy"`
}

// NewSandboxPolicy builds a sandbox_policy push.
func NewSandboxPolicy(policy json.RawMessage) SandboxPolicyPush {
	return SandboxPolicyPush{Type: TypeSandboxPolicy, Policy: policy}
}

// ConfigSecrets replies to request_config_secrets: the resolved secret
// fields of the assignment by field path, or Error alone.
type ConfigSecrets struct {
	Type       string                       `json:"type"`
	RequestID  string                       `json:"requestId"`
	Strategy   map[string]string            `json:"strategy,omitempty"`
	Collectors map[string]map[string]string `json:"collectors,omitempty"`
	Error      string                       `json:"error,omitempty"`
}

// TelemetryAck answers every telemetry_batch. Retryable says the agent
// should keep the batch and send it again with the same batchId.
type TelemetryAck struct {
	Type      string          `json:"type"`
	BatchID   json.RawMessage `json:"batchId"`
	Accepted  int             `json:"accepted"`
	Rejected  int             `json:"rejected"`
	Retryable bool            `json:"retryable"`
}

// Keepalive is sent now and then in answer to a heartbeat so that the
// connection carries bytes from the backend to the satellite: CloudFront
// closes a WebSocket on which the origin sent nothing for 10 minutes, and a
// satellite that only heartbeats and reports results would otherwise get
// nothing back. Satellites ignore frame types they do not know.
type Keepalive struct {
	Type string `json:"type"`
}

// NewKeepalive builds a keepalive frame.
func NewKeepalive() Keepalive { return Keepalive{Type: TypeKeepalive} }

// NewTelemetryAck builds a telemetry_ack.
func NewTelemetryAck(batchID json.RawMessage, accepted, rejected int, retryable bool) TelemetryAck {
	return TelemetryAck{Type: TypeTelemetryAck, BatchID: batchID, Accepted: accepted, Rejected: rejected, Retryable: retryable}
}

// CapabilityConfig pushes the operator's config of one capability kind. It
// never carries secrets.
type CapabilityConfig struct {
	Type    string          `json:"type"`
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
}

// NewCapabilityConfig builds a capability_config push.
func NewCapabilityConfig(kind string, payload json.RawMessage) CapabilityConfig {
	return CapabilityConfig{Type: TypeCapabilityConfig, Kind: kind, Payload: payload}
}

// CapabilitySecretResponse replies to capability_secret_request with
// exactly one of Payload (field -> value) or Error.
type CapabilitySecretResponse struct {
	Type      string            `json:"type"`
	RequestID string            `json:"requestId"`
	Payload   map[string]string `json:"payload,omitempty"`
	Error     string            `json:"error,omitempty"`
}

// Encode marshals an outbound frame and refuses one over MaxMessageBytes with
// ETOOLARGE, so nothing API Gateway would reject is ever posted.
func Encode(frame any) ([]byte, error) {
	b, err := json.Marshal(frame)
	if err != nil {
		return nil, satellite.Wrap(err, satellite.EINTERNAL, "encode frame")
	}
	if len(b) > MaxMessageBytes {
		return nil, satellite.Errorf(satellite.ETOOLARGE, "%s frame of %d bytes is over the %d byte limit", frameType(frame), len(b), MaxMessageBytes)
	}
	return b, nil
}

// InlineBlobFits reports whether a blob of size bytes fits inline (base64) in
// one script_package_blob frame for integrity.
func InlineBlobFits(integrity string, size int64) bool {
	if size < 0 || size > MaxMessageBytes {
		return false
	}
	empty := ""
	b, _ := json.Marshal(ScriptPackageBlob{Type: TypeScriptPackageBlob, Integrity: integrity, Data: &empty})
	encoded := (size + 2) / 3 * 4
	return int64(len(b))+encoded <= MaxMessageBytes
}

// frameType is an outbound frame's wire type: every frame carries it in
// its Type field, so no list of frame types has to be kept in step.
func frameType(frame any) string {
	v := reflect.ValueOf(frame)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Type"); f.IsValid() && f.Kind() == reflect.String && f.String() != "" {
			return f.String()
		}
	}
	return fmt.Sprintf("%T", frame)
}

func nonNil(a []satellite.Assignment) []satellite.Assignment {
	if a == nil {
		return []satellite.Assignment{}
	}
	return a
}
