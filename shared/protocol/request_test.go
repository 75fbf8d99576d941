package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/checkstack/satellite-backend/shared/protocol"
)

// TestRequestAnswers checks every request's refusal and failure encode as
// the reply its handler would send with an error, under its id, and that
// the request types are the ones IsRequest names.
func TestRequestAnswers(t *testing.T) {
	batchID := json.RawMessage(`7`)
	cases := []struct {
		req              protocol.Request
		refusal, failure any // failure nil: none
	}{
		{&protocol.ManifestRequest{LockfileHash: "h<1>"}, protocol.NewScriptPackageManifest("h<1>", nil), nil},
		{&protocol.BlobRequest{Integrity: "sha512-x"}, protocol.ScriptPackageBlob{Type: protocol.TypeScriptPackageBlob, Integrity: "sha512-x"}, nil},
		{&protocol.RunSecretsRequest{RequestID: "r&1"},
			protocol.RunSecrets{Type: protocol.TypeRunSecrets, RequestID: "r&1", Error: "why"},
			protocol.RunSecrets{Type: protocol.TypeRunSecrets, RequestID: "r&1", Error: protocol.SecretsFailed}},
		{&protocol.ConfigSecretsRequest{RequestID: "r"},
			protocol.ConfigSecrets{Type: protocol.TypeConfigSecrets, RequestID: "r", Error: "why"},
			protocol.ConfigSecrets{Type: protocol.TypeConfigSecrets, RequestID: "r", Error: protocol.SecretsFailed}},
		{&protocol.CapabilitySecretRequest{RequestID: "r"},
			protocol.CapabilitySecretResponse{Type: protocol.TypeCapabilitySecretResponse, RequestID: "r", Error: "why"},
			protocol.CapabilitySecretResponse{Type: protocol.TypeCapabilitySecretResponse, RequestID: "r", Error: protocol.SecretsFailed}},
		{&protocol.TelemetryBatch{BatchID: batchID}, protocol.NewTelemetryAck(batchID, 0, 1, false), protocol.NewTelemetryAck(batchID, 0, 0, true)},
	}
	requests := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.req.Type(), func(t *testing.T) {
			requests[tc.req.Type()] = true
			a := tc.req.Awaited()
			if a.Type != tc.req.Type() || !protocol.IsRequest(a.Type) {
				t.Errorf("awaited %+v of a %s", a, tc.req.Type())
			}
			if got, want := mustEncode(t, a.Refusal("why")), mustEncode(t, tc.refusal); got != want {
				t.Errorf("refusal %s, want %s", got, want)
			}
			switch failure := a.Failure(); {
			case tc.failure == nil && failure != nil:
				t.Errorf("failure %s, want none", mustEncode(t, failure))
			case tc.failure != nil && failure == nil:
				t.Errorf("no failure, want %s", mustEncode(t, tc.failure))
			case tc.failure != nil:
				if got, want := mustEncode(t, failure), mustEncode(t, tc.failure); got != want {
					t.Errorf("failure %s, want %s", got, want)
				}
			}
		})
	}
	for _, typ := range protocol.InboundTypes {
		if protocol.IsRequest(typ) != requests[typ] {
			t.Errorf("IsRequest(%s) = %v, but the cases say %v", typ, protocol.IsRequest(typ), requests[typ])
		}
	}
}

func mustEncode(t *testing.T, frame any) string {
	t.Helper()
	b, err := protocol.Encode(frame)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
