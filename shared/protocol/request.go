package protocol

import (
	"bytes"
	"encoding/json"
	"log/slog"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Request is a frame the satellite waits on an answer to, matched on one
// of its fields: a requestId, the lockfile hash or the integrity it asks
// for, a telemetry batch's batchId. Whatever becomes of a request, it is
// answered under that id: by its handler, or by its Awaited's Refusal or
// Failure. The request types are ManifestRequest, BlobRequest,
// RunSecretsRequest, ConfigSecretsRequest, CapabilitySecretRequest and
// TelemetryBatch; each is one case of requestKindOf.
type Request interface {
	Message
	// Awaited is the answer the satellite waits on: the request's type
	// and the id the answer carries back.
	Awaited() Awaited
}

// Awaited is the answer a satellite waits on for one request.
type Awaited struct {
	// Type is the request's type.
	Type string
	// ID is the id the answer is matched on, as the JSON text the answer
	// carries back.
	ID json.RawMessage
	// LogAttrs name the request in a log line: ids only, never values.
	LogAttrs []slog.Attr
}

// Refusal is the answer refusing the request, saying why where the answer
// has room for it: a manifest with no entries, a blob with data null, a
// secret reply with error reason, a telemetry_ack rejecting the batch.
// A zero Awaited has none (nil).
func (a Awaited) Refusal(reason string) any {
	if kind, ok := requestKindOf(a.Type); ok {
		return kind.refusal(a.ID, reason)
	}
	return nil
}

// Failure is the answer to a request the backend failed to handle, so
// that the satellite stops waiting: a secret reply saying to try again, a
// retryable telemetry_ack. nil when the protocol has none (a manifest, a
// blob: their only refusal says the thing does not exist), and the
// satellite asks again after its timeout.
func (a Awaited) Failure() any {
	if kind, _ := requestKindOf(a.Type); kind.failure != nil {
		return kind.failure(a.ID)
	}
	return nil
}

// SecretsFailed is a secret reply's error when the backend failed to
// resolve the secrets.
const SecretsFailed = "Secrets could not be resolved right now; try again."

// requestKind is what the protocol says of one request type: where its
// id is in a frame, and its answers built from the id's JSON text.
type requestKind struct {
	// asSent reads the id from a frame Parse refused, exactly as sent;
	// false when the frame has no id an answer can carry.
	asSent  func(frame []byte) (json.RawMessage, bool)
	refusal func(id json.RawMessage, reason string) any
	failure func(id json.RawMessage) any // nil: none
}

// requestKindOf is the table of request types: what the protocol says of
// requests of type typ; false when typ is not a request type.
//
// It is a switch rather than a map a package variable holds: a map is
// built when the package starts, which would link the answers into every
// function that imports the package.
func requestKindOf(typ string) (requestKind, bool) {
	switch typ {
	case TypeManifestRequest:
		return requestKind{
			asSent: stringAsSent("lockfileHash"),
			refusal: func(id json.RawMessage, _ string) any {
				return refusedManifest{Type: TypeScriptPackageManifest, LockfileHash: id, Entries: []satellite.ManifestEntry{}}
			},
		}, true
	case TypeBlobRequest:
		return requestKind{
			asSent:  stringAsSent("integrity"),
			refusal: func(id json.RawMessage, _ string) any { return refusedBlob{Type: TypeScriptPackageBlob, Integrity: id} },
		}, true
	case TypeRunSecretsRequest:
		return secretRequest(TypeRunSecrets), true
	case TypeConfigSecretsRequest:
		return secretRequest(TypeConfigSecrets), true
	case TypeCapabilitySecretRequest:
		return secretRequest(TypeCapabilitySecretResponse), true
	case TypeTelemetryBatch:
		return requestKind{
			asSent:  BatchIDOf,
			refusal: func(id json.RawMessage, _ string) any { return NewTelemetryAck(id, 0, 1, false) },
			failure: func(id json.RawMessage) any { return NewTelemetryAck(id, 0, 0, true) },
		}, true
	}
	return requestKind{}, false
}

// secretRequest is a request for secrets, answered by a reply of type
// answer matched on requestId, whose refusal is its error alone.
func secretRequest(answer string) requestKind {
	refusal := func(id json.RawMessage, reason string) any {
		return refusedRequest{Type: answer, RequestID: id, Error: reason}
	}
	return requestKind{
		asSent:  stringAsSent("requestId"),
		refusal: refusal,
		failure: func(id json.RawMessage) any { return refusal(id, SecretsFailed) },
	}
}

// awaited is the Awaited of a parsed request of type typ whose id is the
// string id.
func awaited(typ, id string, attrs ...slog.Attr) Awaited {
	b, _ := json.Marshal(id)
	return Awaited{Type: typ, ID: b, LogAttrs: attrs}
}

// Awaited implements Request.
func (m *ManifestRequest) Awaited() Awaited { return awaited(TypeManifestRequest, m.LockfileHash) }

// Awaited implements Request.
func (m *BlobRequest) Awaited() Awaited { return awaited(TypeBlobRequest, m.Integrity) }

// Awaited implements Request.
func (m *RunSecretsRequest) Awaited() Awaited {
	return awaited(TypeRunSecretsRequest, m.RequestID, slog.String("configId", m.ConfigID), slog.String("collectorId", m.CollectorID))
}

// Awaited implements Request.
func (m *ConfigSecretsRequest) Awaited() Awaited {
	return awaited(TypeConfigSecretsRequest, m.RequestID, slog.String("configId", m.ConfigID))
}

// Awaited implements Request.
func (m *CapabilitySecretRequest) Awaited() Awaited {
	return awaited(TypeCapabilitySecretRequest, m.RequestID, slog.String("kind", m.Kind))
}

// Awaited implements Request.
func (m *TelemetryBatch) Awaited() Awaited {
	return Awaited{Type: TypeTelemetryBatch, ID: m.BatchID, LogAttrs: []slog.Attr{slog.String("kind", m.Kind)}}
}

// IsRequest reports whether frames of type typ are requests.
func IsRequest(typ string) bool {
	_, ok := requestKindOf(typ)
	return ok
}

// A satellite waits on the answer to each of its requests, and waits out a
// timeout when none comes. So a request Parse refuses is still answered
// whenever the frame carries its id as the protocol has it: a JSON string
// (a number too for a batchId, see BatchIDOf). The answer carries it back
// exactly as sent, its JSON text echoed rather than decoded and encoded
// again, so that a string the backend would decode differently (a lone
// surrogate escape) still matches on the satellite's side. An id that is
// absent, null or of another type cannot be answered: the reply's field
// is a string, and a satellite never sends anything else there.

// AwaitedOf returns the answer awaited for a frame of type typ that Parse
// refused: the id as sent. It returns false when typ is not a request
// type or the frame does not carry the id its answer is matched on.
func AwaitedOf(typ string, frame []byte) (Awaited, bool) {
	kind, ok := requestKindOf(typ)
	if !ok {
		return Awaited{}, false
	}
	id, ok := kind.asSent(frame)
	if !ok {
		return Awaited{}, false
	}
	return Awaited{Type: typ, ID: id}, true
}

// AnswerRefused returns the answer to a frame of type typ that Parse
// refused with reason: the Refusal of AwaitedOf. It returns false when
// there is none.
func AnswerRefused(typ string, frame []byte, reason string) (any, bool) {
	a, ok := AwaitedOf(typ, frame)
	if !ok {
		return nil, false
	}
	return a.Refusal(reason), true
}

// refusedManifest is an unknown lockfile's answer: no entries.
type refusedManifest struct {
	Type         string                    `json:"type"`
	LockfileHash json.RawMessage           `json:"lockfileHash"`
	Entries      []satellite.ManifestEntry `json:"entries"`
}

// refusedBlob is a missing blob's answer: data null.
type refusedBlob struct {
	Type      string          `json:"type"`
	Integrity json.RawMessage `json:"integrity"`
	Data      *string         `json:"data"`
}

// refusedRequest is a secret request's answer with error alone, as
// RunSecrets, ConfigSecrets and CapabilitySecretResponse encode it.
type refusedRequest struct {
	Type      string          `json:"type"`
	RequestID json.RawMessage `json:"requestId"`
	Error     string          `json:"error,omitempty"`
}

// stringAsSent returns a reader of the JSON text of a frame's field when
// it is a string (any string, of any length: its bounds are what made the
// frame invalid, not what the answer carries).
func stringAsSent(field string) func(frame []byte) (json.RawMessage, bool) {
	return func(frame []byte) (json.RawMessage, bool) {
		var fields object
		if len(frame) > MaxMessageBytes || json.Unmarshal(frame, &fields) != nil {
			return nil, false
		}
		raw := bytes.TrimSpace(fields[field])
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return raw, true
	}
}
