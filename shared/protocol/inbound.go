// Package protocol is the satellite wire contract of PROTOCOL.md: parsing and
// validating the frames a satellite sends, and encoding the frames the backend
// sends back. Field names are exact and case-sensitive; unknown extra fields
// are ignored; an unknown type or a missing or mistyped required field makes a
// frame invalid.
package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// MaxMessageBytes is API Gateway's WebSocket message limit (128 KB). Frames over
// it are refused, and nothing larger is ever sent.
const MaxMessageBytes = 128 * 1024

// Inbound frame types.
const (
	TypeAuthenticate           = "authenticate"
	TypeHeartbeat              = "heartbeat"
	TypeResult                 = "result"
	TypeStrategyError          = "strategy_error"
	TypeScriptPackageSyncState = "script_package_sync_state"
	TypeManifestRequest        = "request_script_package_manifest"
	TypeBlobRequest            = "request_script_package_blob"
	TypeRunSecretsRequest      = "request_run_secrets"
	// The current protocol's additions (PROTOCOL-CURRENT).
	TypeConfigSecretsRequest    = "request_config_secrets"
	TypeTelemetryBatch          = "telemetry_batch"
	TypeCapabilityStatus        = "capability_status"
	TypeCapabilitySecretRequest = "capability_secret_request"
)

// Bounds of inbound fields. A frame that breaks one is invalid: dropped and
// logged, the socket kept. They keep one buggy or malicious satellite from
// storing what others then choke on (a 400 KB item, a number DynamoDB
// refuses, JSON nested too deep for common parsers).
const (
	// MaxIDBytes bounds every id: clientId, configId, systemId, strategyId,
	// collectorId, requestId, runId, integrity, and the token.
	MaxIDBytes = 256
	// MaxVersionBytes bounds a heartbeat's version.
	MaxVersionBytes = 64
	// MaxTextBytes bounds free text: strategy_error.message and
	// script_package_sync_state.errorMessage.
	MaxTextBytes = 2048
	// MaxLatencyMs is a day: result.latencyMs is in 0..MaxLatencyMs.
	MaxLatencyMs = 86_400_000
	// MaxResultDepth bounds how deeply result.result, and every other
	// opaque payload a satellite sends, may nest.
	MaxResultDepth = 32
	// MaxCapabilities bounds the capabilities list of authenticate and
	// heartbeat; each is a name (see ValidName).
	MaxCapabilities = 32
	// MaxNameBytes bounds a capability, a telemetry or capability kind.
	MaxNameBytes = 64
	// MaxStatusBytes bounds a capability_status payload as sent.
	MaxStatusBytes = 4096
	// MaxSecretRequestBytes bounds a capability_secret_request payload.
	MaxSecretRequestBytes = 1024
	// MaxDroppedGroups bounds the entries of telemetry_batch.droppedByGroup.
	MaxDroppedGroups = 256
	// MaxBatchID is the largest numeric telemetry batchId: 2^53-1, the
	// largest integer a JavaScript number (the agent's batch ids) and every
	// JSON client hold exactly. 2^53 is refused too: 2^53+1 reads as it.
	MaxBatchID = 1<<53 - 1
	// MaxEchoedBatchIDBytes bounds a refused batchId echoed in its ack (as
	// sent): any longer one leaves too little room for the ack's other
	// fields in one frame, and is not answered.
	MaxEchoedBatchIDBytes = MaxMessageBytes - 1024
)

// namePattern is a capability or kind: a letter or digit, then letters,
// digits, '.', '_' or '-'.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidName reports whether s can name a capability or a kind.
func ValidName(s string) bool { return len(s) <= MaxNameBytes && namePattern.MatchString(s) }

// InboundTypes lists every inbound frame type.
var InboundTypes = []string{
	TypeAuthenticate, TypeHeartbeat, TypeResult, TypeStrategyError, TypeScriptPackageSyncState,
	TypeManifestRequest, TypeBlobRequest, TypeRunSecretsRequest,
	TypeConfigSecretsRequest, TypeTelemetryBatch, TypeCapabilityStatus, TypeCapabilitySecretRequest,
}

// Message is one parsed satellite frame: one of the pointer types below.
type Message interface{ Type() string }

// Authenticate must be a connection's first frame.
type Authenticate struct {
	ClientID string
	Token    string // plaintext; never logged
	// Capabilities is what the agent offers, sorted and without
	// duplicates. nil when the frame has none (absent, null, or not a
	// list: an older agent build omits it), which keeps the stored list;
	// never nil when the frame has a list, so an empty list clears it.
	Capabilities []string
	// CapabilitiesDropped says what of the capabilities was left out ("" when
	// nothing): they are optional, so a bad list never fails the frame.
	CapabilitiesDropped string
}

// Heartbeat reports liveness and the agent version.
type Heartbeat struct {
	Version       string
	UptimeSeconds float64
	// Capabilities repeats authenticate's list so that a change converges
	// without a reconnect; nil when the frame has none, as in Authenticate.
	Capabilities        []string
	CapabilitiesDropped string
}

// Result is one health-check run.
type Result struct {
	ConfigID   string
	SystemID   string
	Status     satellite.CheckStatus
	LatencyMs  *float64
	Detail     json.RawMessage // the "result" object, nil when absent or null
	ExecutedAt time.Time
	// EnvironmentID is the environment the run was for; nil for an
	// environment-less run (absent or null).
	EnvironmentID *string
}

// StrategyError reports a strategy the satellite cannot run.
type StrategyError struct {
	StrategyID string
	Message    string
}

// SyncState is a satellite's script-package reconcile state.
type SyncState struct {
	LockfileHash *string
	Status       satellite.SyncStatus
	ErrorMessage string
}

// ManifestRequest asks for the manifest of a lockfile.
type ManifestRequest struct{ LockfileHash string }

// BlobRequest asks for one content-addressed blob.
type BlobRequest struct{ Integrity string }

// RunSecretsRequest asks for the secret env of one collector run.
type RunSecretsRequest struct {
	RequestID   string
	ConfigID    string
	CollectorID string
	RunID       string
}

// ConfigSecretsRequest asks for the secret fields of the satellite's own
// assignment for a config.
type ConfigSecretsRequest struct {
	RequestID string
	ConfigID  string
	RunID     string
}

// TelemetryBatch is one batch of telemetry items of one kind.
type TelemetryBatch struct {
	// BatchID is the id as sent (a number or a string), echoed in the ack.
	BatchID json.RawMessage
	// BatchKey is BatchID as text, the same for equal ids: what dedupe keys
	// on.
	BatchKey string
	Kind     string
	// Payload is opaque (compacted JSON); its meaning depends on Kind.
	Payload        json.RawMessage
	DroppedByGroup map[string]float64
	// Size is the frame's size in bytes, what the byte budget counts.
	Size int
}

// CapabilityStatus reports the state of one capability.
type CapabilityStatus struct {
	Kind    string
	Payload json.RawMessage
}

// CapabilitySecretRequest asks for the secret of a resource a capability
// uses (Payload names it, e.g. {"targetId": ...}).
type CapabilitySecretRequest struct {
	RequestID string
	Kind      string
	Payload   json.RawMessage
}

func (*Authenticate) Type() string      { return TypeAuthenticate }
func (*Heartbeat) Type() string         { return TypeHeartbeat }
func (*Result) Type() string            { return TypeResult }
func (*StrategyError) Type() string     { return TypeStrategyError }
func (*SyncState) Type() string         { return TypeScriptPackageSyncState }
func (*ManifestRequest) Type() string   { return TypeManifestRequest }
func (*BlobRequest) Type() string       { return TypeBlobRequest }
func (*RunSecretsRequest) Type() string { return TypeRunSecretsRequest }
func (*ConfigSecretsRequest) Type() string {
	return TypeConfigSecretsRequest
}
func (*TelemetryBatch) Type() string   { return TypeTelemetryBatch }
func (*CapabilityStatus) Type() string { return TypeCapabilityStatus }
func (*CapabilitySecretRequest) Type() string {
	return TypeCapabilitySecretRequest
}

// InvalidFrame says why a frame was refused. It never holds frame content, so
// it is safe to log even when the frame carried a token.
type InvalidFrame struct {
	Type   string // the frame's type when it could be read, else ""
	Field  string // the offending field, "" when the whole frame is at fault
	Reason string
	Size   int
}

func (e *InvalidFrame) Error() string {
	switch {
	case e.Field != "":
		return fmt.Sprintf("invalid %s frame: field %q %s", e.typeName(), e.Field, e.Reason)
	default:
		return fmt.Sprintf("invalid %s frame: %s", e.typeName(), e.Reason)
	}
}

func (e *InvalidFrame) typeName() string {
	if e.Type == "" {
		return "satellite"
	}
	return e.Type
}

// Parse validates one frame and returns its message. Errors are *InvalidFrame
// wrapped in a satellite.Error with code EINVALID, or ETOOLARGE for frames over
// MaxMessageBytes.
func Parse(frame []byte) (Message, error) {
	if len(frame) > MaxMessageBytes {
		return nil, invalid(satellite.ETOOLARGE, &InvalidFrame{Reason: fmt.Sprintf("frame of %d bytes is over the %d byte limit", len(frame), MaxMessageBytes), Size: len(frame)})
	}
	var fields object
	if err := json.Unmarshal(frame, &fields); err != nil || fields == nil {
		return nil, invalid(satellite.EINVALID, &InvalidFrame{Reason: "not a JSON object", Size: len(frame)})
	}
	f := reader{fields: fields, frame: &InvalidFrame{Size: len(frame)}}
	typ := f.str("type")
	if f.err != nil {
		return nil, f.fail()
	}
	f.frame.Type = typ
	var msg Message
	switch typ {
	case TypeAuthenticate:
		a := &Authenticate{ClientID: f.id("clientId"), Token: f.id("token")}
		a.Capabilities, a.CapabilitiesDropped = f.capabilities()
		msg = a
	case TypeHeartbeat:
		h := &Heartbeat{Version: f.bounded("version", MaxVersionBytes), UptimeSeconds: f.num("uptimeSeconds")}
		h.Capabilities, h.CapabilitiesDropped = f.capabilities()
		msg = h
	case TypeResult:
		r := &Result{ConfigID: f.id("configId"), SystemID: f.id("systemId")}
		r.Status = satellite.CheckStatus(f.str("status"))
		if f.err == nil && !r.Status.Valid() {
			f.reject("status", "must be healthy, unhealthy or degraded")
		}
		r.LatencyMs = f.optNum("latencyMs")
		if r.LatencyMs != nil && (*r.LatencyMs < 0 || *r.LatencyMs > MaxLatencyMs) {
			f.reject("latencyMs", fmt.Sprintf("must be between 0 and %d", MaxLatencyMs))
		}
		r.Detail = f.optObject("result", MaxResultDepth)
		r.ExecutedAt = f.timestamp("executedAt")
		if r.EnvironmentID = f.optNullableStr("environmentId"); r.EnvironmentID != nil && (*r.EnvironmentID == "" || len(*r.EnvironmentID) > MaxIDBytes) {
			f.reject("environmentId", fmt.Sprintf("must be null or a string of 1 to %d bytes", MaxIDBytes))
		}
		msg = r
	case TypeStrategyError:
		msg = &StrategyError{StrategyID: f.id("strategyId"), Message: f.bounded("message", MaxTextBytes)}
	case TypeScriptPackageSyncState:
		s := &SyncState{LockfileHash: f.nullableStr("lockfileHash")}
		if s.LockfileHash != nil && !satellite.ValidLockfileHash(*s.LockfileHash) {
			f.reject("lockfileHash", "is not a lockfile hash")
		}
		s.Status = satellite.SyncStatus(f.str("status"))
		if f.err == nil && !s.Status.Valid() {
			f.reject("status", "must be pending, syncing, ready or error")
		}
		if m := f.optNullableStr("errorMessage"); m != nil {
			if len(*m) > MaxTextBytes {
				f.reject("errorMessage", fmt.Sprintf("is longer than %d bytes", MaxTextBytes))
			}
			s.ErrorMessage = *m
		}
		msg = s
	case TypeManifestRequest:
		m := &ManifestRequest{LockfileHash: f.str("lockfileHash")}
		if f.err == nil && !satellite.ValidLockfileHash(m.LockfileHash) {
			f.reject("lockfileHash", "is not a lockfile hash")
		}
		msg = m
	case TypeBlobRequest:
		msg = &BlobRequest{Integrity: f.id("integrity")}
	case TypeRunSecretsRequest:
		msg = &RunSecretsRequest{RequestID: f.id("requestId"), ConfigID: f.id("configId"), CollectorID: f.id("collectorId"), RunID: f.id("runId")}
	case TypeConfigSecretsRequest:
		msg = &ConfigSecretsRequest{RequestID: f.id("requestId"), ConfigID: f.id("configId"), RunID: f.id("runId")}
	case TypeTelemetryBatch:
		b := &TelemetryBatch{Size: len(frame)}
		b.BatchID, b.BatchKey = f.batchID("batchId")
		b.Kind = f.name("kind")
		b.Payload = f.payload("payload", true)
		b.DroppedByGroup = f.dropped("droppedByGroup")
		msg = b
	case TypeCapabilityStatus:
		st := &CapabilityStatus{Kind: f.name("kind"), Payload: f.payload("payload", true)}
		if f.err == nil && len(st.Payload) > MaxStatusBytes {
			f.reject("payload", fmt.Sprintf("is longer than %d bytes", MaxStatusBytes))
		}
		msg = st
	case TypeCapabilitySecretRequest:
		req := &CapabilitySecretRequest{RequestID: f.id("requestId"), Kind: f.name("kind"), Payload: f.payload("payload", true)}
		switch {
		case f.err != nil:
		case len(req.Payload) > MaxSecretRequestBytes:
			f.reject("payload", fmt.Sprintf("is longer than %d bytes", MaxSecretRequestBytes))
		case req.Payload[0] != '{':
			f.reject("payload", "must be an object")
		}
		msg = req
	default:
		f.frame.Type = ""
		f.reject("type", "is not a known message type")
	}
	if f.err != nil {
		return nil, f.fail()
	}
	return msg, nil
}

// InvalidType returns the type of the frame err refused ("" when it had
// none a reader could trust), and whether err is a refused frame at all.
func InvalidType(err error) (string, bool) {
	var f *InvalidFrame
	if !errors.As(err, &f) {
		return "", false
	}
	return f.Type, true
}

func invalid(code satellite.Code, f *InvalidFrame) error {
	return &satellite.Error{Code: code, Message: f.Error(), Err: f}
}
