package protocol

import (
	"bytes"
	"encoding/json"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// A satellite waits on the answer to each of its requests, matched on one
// field of the request, and waits out a timeout when none
// comes. So a request Parse refuses is still answered whenever the frame
// carries that field as a JSON string: the answer carries it back exactly
// as sent, its JSON text echoed rather than decoded and encoded again, so
// that a string the backend would decode differently (a lone surrogate
// escape) still matches on the satellite's side. A field that is absent,
// null or not a string cannot be answered: the reply's field is a string,
// and a satellite never sends anything else there.
//
// Telemetry batches are matched on batchId, which may be a number: they are
// acknowledged apart (BatchIDOf).

// correlates names the field each request's answer is matched on, for the
// request types AnswerRefused answers.
var correlates = map[string]string{
	TypeManifestRequest:         "lockfileHash",
	TypeBlobRequest:             "integrity",
	TypeRunSecretsRequest:       "requestId",
	TypeConfigSecretsRequest:    "requestId",
	TypeCapabilitySecretRequest: "requestId",
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

// refusedRequest is a secret request's answer with error alone.
type refusedRequest struct {
	Type      string          `json:"type"`
	RequestID json.RawMessage `json:"requestId"`
	Error     string          `json:"error"`
}

// AnswerRefused returns the answer to a frame of type typ that Parse
// refused with reason: a manifest with no entries, a blob with data null,
// a secret reply with error reason. It returns false when typ is not one of
// those or the frame does not carry the field its answer is matched
// on as a string.
func AnswerRefused(typ string, frame []byte, reason string) (any, bool) {
	field, ok := correlates[typ]
	if !ok {
		return nil, false
	}
	asSent, ok := stringAsSent(frame, field)
	if !ok {
		return nil, false
	}
	switch typ {
	case TypeManifestRequest:
		return refusedManifest{Type: TypeScriptPackageManifest, LockfileHash: asSent, Entries: []satellite.ManifestEntry{}}, true
	case TypeBlobRequest:
		return refusedBlob{Type: TypeScriptPackageBlob, Integrity: asSent}, true
	case TypeRunSecretsRequest:
		return refusedRequest{Type: TypeRunSecrets, RequestID: asSent, Error: reason}, true
	case TypeConfigSecretsRequest:
		return refusedRequest{Type: TypeConfigSecrets, RequestID: asSent, Error: reason}, true
	}
	return refusedRequest{Type: TypeCapabilitySecretResponse, RequestID: asSent, Error: reason}, true
}

// stringAsSent returns the JSON text of the frame's field when it is a
// string (any string, of any length: its bounds are what made the frame
// invalid, not what the answer carries).
func stringAsSent(frame []byte, field string) (json.RawMessage, bool) {
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
