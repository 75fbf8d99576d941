package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestParseValidFrames(t *testing.T) {
	latency := 87.5
	hash := "lock-1"
	env := "prod"
	cases := []struct {
		name  string
		frame string
		want  protocol.Message
	}{
		{"authenticate", `{"type":"authenticate","clientId":"sat-1","token":"csat_x"}`,
			&protocol.Authenticate{ClientID: "sat-1", Token: "csat_x"}},
		{"heartbeat", `{"type":"heartbeat","version":"1.4.0","uptimeSeconds":12.5}`,
			&protocol.Heartbeat{Version: "1.4.0", UptimeSeconds: 12.5}},
		{"heartbeat with unknown extra field", `{"type":"heartbeat","version":"1","uptimeSeconds":0,"cpu":0.3}`,
			&protocol.Heartbeat{Version: "1"}},
		{"result minimal", `{"type":"result","configId":"c","systemId":"s","status":"unhealthy","executedAt":"2026-11-27T08:00:00Z"}`,
			&protocol.Result{ConfigID: "c", SystemID: "s", Status: satellite.CheckUnhealthy, ExecutedAt: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}},
		{"result full", `{"type":"result","configId":"c","systemId":"s","status":"degraded","latencyMs":87.5,"result":{"status":"degraded", "metadata":{"connected":true}},"executedAt":"2026-11-27T08:00:00.123+01:00"}`,
			&protocol.Result{ConfigID: "c", SystemID: "s", Status: satellite.CheckDegraded, LatencyMs: &latency,
				Detail: json.RawMessage(`{"status":"degraded","metadata":{"connected":true}}`), ExecutedAt: time.Date(2026, 11, 27, 7, 0, 0, 123e6, time.UTC)}},
		{"result null optionals", `{"type":"result","configId":"c","systemId":"s","status":"healthy","latencyMs":null,"result":null,"executedAt":"2026-11-27T08:00:00Z"}`,
			&protocol.Result{ConfigID: "c", SystemID: "s", Status: satellite.CheckHealthy, ExecutedAt: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}},
		{"strategy_error", `{"type":"strategy_error","strategyId":"ssh","message":"missing"}`,
			&protocol.StrategyError{StrategyID: "ssh", Message: "missing"}},
		{"sync state", `{"type":"script_package_sync_state","lockfileHash":"lock-1","status":"error","errorMessage":"boom"}`,
			&protocol.SyncState{LockfileHash: &hash, Status: satellite.SyncError, ErrorMessage: "boom"}},
		{"sync state null lockfile", `{"type":"script_package_sync_state","lockfileHash":null,"status":"pending"}`,
			&protocol.SyncState{Status: satellite.SyncPending}},
		{"manifest request", `{"type":"request_script_package_manifest","lockfileHash":"lock-1"}`,
			&protocol.ManifestRequest{LockfileHash: "lock-1"}},
		{"blob request", `{"type":"request_script_package_blob","integrity":"sha512-abc"}`,
			&protocol.BlobRequest{Integrity: "sha512-abc"}},
		{"run secrets", `{"type":"request_run_secrets","requestId":"r","configId":"c","collectorId":"k","runId":"u"}`,
			&protocol.RunSecretsRequest{RequestID: "r", ConfigID: "c", CollectorID: "k", RunID: "u"}},
		{"authenticate with capabilities", `{"type":"authenticate","clientId":"sat-1","token":"csat_x","capabilities":["telemetry","scrape","telemetry"]}`,
			&protocol.Authenticate{ClientID: "sat-1", Token: "csat_x", Capabilities: []string{"scrape", "telemetry"}}},
		{"heartbeat with no capabilities", `{"type":"heartbeat","version":"1","uptimeSeconds":0,"capabilities":[]}`,
			&protocol.Heartbeat{Version: "1", Capabilities: []string{}}},
		{"result with environment", `{"type":"result","configId":"c","systemId":"s","status":"healthy","executedAt":"2026-11-27T08:00:00Z","environmentId":"prod"}`,
			&protocol.Result{ConfigID: "c", SystemID: "s", Status: satellite.CheckHealthy, ExecutedAt: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), EnvironmentID: &env}},
		{"result with null environment", `{"type":"result","configId":"c","systemId":"s","status":"healthy","executedAt":"2026-11-27T08:00:00Z","environmentId":null}`,
			&protocol.Result{ConfigID: "c", SystemID: "s", Status: satellite.CheckHealthy, ExecutedAt: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}},
		{"config secrets", `{"type":"request_config_secrets","requestId":"r","configId":"c","runId":"u"}`,
			&protocol.ConfigSecretsRequest{RequestID: "r", ConfigID: "c", RunID: "u"}},
		{"telemetry batch", `{"type":"telemetry_batch","batchId":7,"kind":"logstream","payload":[{"line":"a"}, {"line":"b"}],"droppedByGroup":{"app":3}}`,
			&protocol.TelemetryBatch{BatchID: json.RawMessage(`7`), BatchKey: "n:7", Kind: "logstream", Payload: json.RawMessage(`[{"line":"a"},{"line":"b"}]`),
				DroppedByGroup: map[string]float64{"app": 3}, Size: 123}},
		{"telemetry batch string id", `{"type":"telemetry_batch","batchId":"b-1","kind":"metric-scrape","payload":{"items":[]}}`,
			&protocol.TelemetryBatch{BatchID: json.RawMessage(`"b-1"`), BatchKey: "s:b-1", Kind: "metric-scrape", Payload: json.RawMessage(`{"items":[]}`), Size: 88}},
		{"capability status", `{"type":"capability_status","kind":"scrape","payload":{"targets":{"t1":{"error":null}}}}`,
			&protocol.CapabilityStatus{Kind: "scrape", Payload: json.RawMessage(`{"targets":{"t1":{"error":null}}}`)}},
		{"capability secret request", `{"type":"capability_secret_request","requestId":"r","kind":"scrape","payload":{"targetId":"t1"}}`,
			&protocol.CapabilitySecretRequest{RequestID: "r", Kind: "scrape", Payload: json.RawMessage(`{"targetId":"t1"}`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := protocol.Parse([]byte(tc.frame))
			if err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tc.want)
			if string(gotJSON) != string(wantJSON) || got.Type() != tc.want.Type() {
				t.Errorf("Parse = %s, want %s", gotJSON, wantJSON)
			}
			if r, ok := got.(*protocol.Result); ok && !r.ExecutedAt.Equal(tc.want.(*protocol.Result).ExecutedAt) {
				t.Errorf("executedAt = %v", r.ExecutedAt)
			}
		})
	}
}

func TestParseInvalidFrames(t *testing.T) {
	cases := []struct {
		name, frame   string
		code          satellite.Code
		typ, field    string
		reasonContain string
	}{
		{"not JSON", `hello`, satellite.EINVALID, "", "", "not a JSON object"},
		{"null", `null`, satellite.EINVALID, "", "", "not a JSON object"},
		{"string", `"heartbeat"`, satellite.EINVALID, "", "", "not a JSON object"},
		{"no type", `{}`, satellite.EINVALID, "", "type", "required"},
		{"type not string", `{"type":3}`, satellite.EINVALID, "", "type", "must be a string"},
		{"unknown type", `{"type":"hello"}`, satellite.EINVALID, "", "type", "not a known"},
		{"authenticate without token", `{"type":"authenticate","clientId":"a"}`, satellite.EINVALID, "authenticate", "token", "required"},
		{"authenticate null token", `{"type":"authenticate","clientId":"a","token":null}`, satellite.EINVALID, "authenticate", "token", "must be a string"},
		{"heartbeat uptime string", `{"type":"heartbeat","version":"1","uptimeSeconds":"5"}`, satellite.EINVALID, "heartbeat", "uptimeSeconds", "must be a number"},
		{"heartbeat version missing", `{"type":"heartbeat","uptimeSeconds":5}`, satellite.EINVALID, "heartbeat", "version", "required"},
		{"result status unknown", `{"type":"result","configId":"c","systemId":"s","status":"ok","executedAt":"2026-11-27T08:00:00Z"}`, satellite.EINVALID, "result", "status", "healthy"},
		{"result latency string", `{"type":"result","configId":"c","systemId":"s","status":"healthy","latencyMs":"5","executedAt":"2026-11-27T08:00:00Z"}`, satellite.EINVALID, "result", "latencyMs", "number"},
		{"result detail array", `{"type":"result","configId":"c","systemId":"s","status":"healthy","result":[],"executedAt":"2026-11-27T08:00:00Z"}`, satellite.EINVALID, "result", "result", "object"},
		{"result executedAt not ISO", `{"type":"result","configId":"c","systemId":"s","status":"healthy","executedAt":"1700000000"}`, satellite.EINVALID, "result", "executedAt", "ISO 8601"},
		{"result missing systemId", `{"type":"result","configId":"c","status":"healthy","executedAt":"2026-11-27T08:00:00Z"}`, satellite.EINVALID, "result", "systemId", "required"},
		{"strategy_error message number", `{"type":"strategy_error","strategyId":"s","message":1}`, satellite.EINVALID, "strategy_error", "message", "string"},
		{"sync state lockfile missing", `{"type":"script_package_sync_state","status":"ready"}`, satellite.EINVALID, "script_package_sync_state", "lockfileHash", "required"},
		{"sync state bad status", `{"type":"script_package_sync_state","lockfileHash":"l","status":"done"}`, satellite.EINVALID, "script_package_sync_state", "status", "pending"},
		{"sync state errorMessage number", `{"type":"script_package_sync_state","lockfileHash":"l","status":"error","errorMessage":5}`, satellite.EINVALID, "script_package_sync_state", "errorMessage", "string or null"},
		{"manifest request no hash", `{"type":"request_script_package_manifest"}`, satellite.EINVALID, "request_script_package_manifest", "lockfileHash", "required"},
		{"blob request integrity object", `{"type":"request_script_package_blob","integrity":{}}`, satellite.EINVALID, "request_script_package_blob", "integrity", "string"},
		{"run secrets missing runId", `{"type":"request_run_secrets","requestId":"r","configId":"c","collectorId":"k"}`, satellite.EINVALID, "request_run_secrets", "runId", "required"},
		{"result environment number", `{"type":"result","configId":"c","systemId":"s","status":"healthy","executedAt":"2026-11-27T08:00:00Z","environmentId":3}`, satellite.EINVALID, "result", "environmentId", "string or null"},
		{"result environment empty", `{"type":"result","configId":"c","systemId":"s","status":"healthy","executedAt":"2026-11-27T08:00:00Z","environmentId":""}`, satellite.EINVALID, "result", "environmentId", "string of 1"},
		{"config secrets without configId", `{"type":"request_config_secrets","requestId":"r","runId":"u"}`, satellite.EINVALID, "request_config_secrets", "configId", "required"},
		{"telemetry without batchId", `{"type":"telemetry_batch","kind":"logstream","payload":[]}`, satellite.EINVALID, "telemetry_batch", "batchId", "required"},
		{"telemetry fractional batchId", `{"type":"telemetry_batch","batchId":1.5,"kind":"logstream","payload":[]}`, satellite.EINVALID, "telemetry_batch", "batchId", "an integer from 0 to"},
		{"telemetry negative batchId", `{"type":"telemetry_batch","batchId":-1,"kind":"logstream","payload":[]}`, satellite.EINVALID, "telemetry_batch", "batchId", "an integer from 0 to"},
		{"telemetry object batchId", `{"type":"telemetry_batch","batchId":{},"kind":"logstream","payload":[]}`, satellite.EINVALID, "telemetry_batch", "batchId", "an integer from 0 to"},
		{"telemetry without payload", `{"type":"telemetry_batch","batchId":1,"kind":"logstream"}`, satellite.EINVALID, "telemetry_batch", "payload", "required"},
		{"telemetry bad kind", `{"type":"telemetry_batch","batchId":1,"kind":"../x","payload":[]}`, satellite.EINVALID, "telemetry_batch", "kind", "letters"},
		{"telemetry dropped negative", `{"type":"telemetry_batch","batchId":1,"kind":"k","payload":[],"droppedByGroup":{"a":-1}}`, satellite.EINVALID, "telemetry_batch", "droppedByGroup", "non-negative"},
		{"telemetry dropped not numbers", `{"type":"telemetry_batch","batchId":1,"kind":"k","payload":[],"droppedByGroup":{"a":"x"}}`, satellite.EINVALID, "telemetry_batch", "droppedByGroup", "numbers"},
		{"capability status without kind", `{"type":"capability_status","payload":{}}`, satellite.EINVALID, "capability_status", "kind", "required"},
		{"capability secret payload array", `{"type":"capability_secret_request","requestId":"r","kind":"scrape","payload":["t1"]}`, satellite.EINVALID, "capability_secret_request", "payload", "object"},
		{"field name case differs", `{"type":"authenticate","ClientId":"a","token":"t"}`, satellite.EINVALID, "authenticate", "clientId", "required"},
		{"oversized", `{"type":"heartbeat","version":"` + strings.Repeat("v", protocol.MaxMessageBytes) + `","uptimeSeconds":1}`, satellite.ETOOLARGE, "", "", "over the"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := protocol.Parse([]byte(tc.frame))
			if got := satellite.ErrorCode(err); got != tc.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.code)
			}
			var inv *protocol.InvalidFrame
			if !errors.As(err, &inv) {
				t.Fatalf("error %v is not an *InvalidFrame", err)
			}
			if inv.Type != tc.typ || inv.Field != tc.field || !strings.Contains(inv.Reason, tc.reasonContain) {
				t.Errorf("InvalidFrame = %+v, want type %q field %q reason containing %q", inv, tc.typ, tc.field, tc.reasonContain)
			}
		})
	}
}

func TestInvalidFrameNeverQuotesTheFrame(t *testing.T) {
	for _, frame := range []string{
		`{"type":"authenticate","clientId":1,"token":"csat_SECRET"}`,
		`{"type":"authenticate","clientId":"a","token":{"csat_SECRET":1}}`,
		`{"type":"csat_SECRET"}`,
		`{"type":"authenticate","clientId":"a","token":"csat_SECRET"`,
	} {
		_, err := protocol.Parse([]byte(frame))
		if err == nil || strings.Contains(err.Error(), "csat_SECRET") {
			t.Errorf("Parse(%s) error %v quotes the frame", frame, err)
		}
	}
}

func TestEncodeRefusesOversizedFrames(t *testing.T) {
	big := strings.Repeat("x", protocol.MaxMessageBytes)
	_, err := protocol.Encode(protocol.NewShutdown(big))
	if satellite.ErrorCode(err) != satellite.ETOOLARGE {
		t.Errorf("Encode of %d bytes: %v, want ETOOLARGE", len(big), err)
	}
}

func TestOutboundFieldNames(t *testing.T) {
	hash := "lock-1"
	cases := []struct {
		frame any
		want  string
	}{
		{protocol.NewAuthenticated("sat-1", nil, protocol.LockfileHash{}, nil), `{"type":"authenticated","satelliteId":"sat-1","assignments":[],"maxMessageBytes":131072}`},
		{protocol.NewAuthenticated("sat-1", nil, protocol.LockfileHash{Configured: true}, nil), `{"type":"authenticated","satelliteId":"sat-1","assignments":[],"scriptPackagesLockfileHash":null,"maxMessageBytes":131072}`},
		{protocol.NewAuthenticated("sat-1", nil, protocol.LockfileHash{}, json.RawMessage(`{"egress":"deny"}`)), `{"type":"authenticated","satelliteId":"sat-1","assignments":[],"sandboxPolicy":{"egress":"deny"},"maxMessageBytes":131072}`},
		{protocol.NewSandboxPolicy(json.RawMessage(`{"egress":"deny"}`)), `{"type":"sandbox_policy","policy":{"egress":"deny"}}`},
		{protocol.ConfigSecrets{Type: protocol.TypeConfigSecrets, RequestID: "r", Strategy: map[string]string{"auth.password": "p"}, Collectors: map[string]map[string]string{"c1": {"headers[0].value": "v"}}},
			`{"type":"config_secrets","requestId":"r","strategy":{"auth.password":"p"},"collectors":{"c1":{"headers[0].value":"v"}}}`},
		{protocol.ConfigSecrets{Type: protocol.TypeConfigSecrets, RequestID: "r", Error: "e"}, `{"type":"config_secrets","requestId":"r","error":"e"}`},
		{protocol.NewTelemetryAck(json.RawMessage(`7`), 2, 0, false), `{"type":"telemetry_ack","batchId":7,"accepted":2,"rejected":0,"retryable":false}`},
		{protocol.NewTelemetryAck(json.RawMessage(`"b-1"`), 0, 0, true), `{"type":"telemetry_ack","batchId":"b-1","accepted":0,"rejected":0,"retryable":true}`},
		{protocol.NewCapabilityConfig("scrape", json.RawMessage(`{"targets":[]}`)), `{"type":"capability_config","kind":"scrape","payload":{"targets":[]}}`},
		{protocol.CapabilitySecretResponse{Type: protocol.TypeCapabilitySecretResponse, RequestID: "r", Payload: map[string]string{"bearerToken": "t"}},
			`{"type":"capability_secret_response","requestId":"r","payload":{"bearerToken":"t"}}`},
		{protocol.CapabilitySecretResponse{Type: protocol.TypeCapabilitySecretResponse, RequestID: "r", Error: "e"}, `{"type":"capability_secret_response","requestId":"r","error":"e"}`},
		{protocol.NewConfigUpdated(nil, protocol.LockfileHash{Configured: true, Hash: &hash}), `{"type":"config_updated","assignments":[],"scriptPackagesLockfileHash":"lock-1"}`},
		{protocol.NewAuthFailed(protocol.ReasonInvalidCredentials), `{"type":"auth_failed","reason":"Invalid client ID or token"}`},
		{protocol.NewAuthFailed(protocol.ReasonMustAuthenticate), `{"type":"auth_failed","reason":"Must authenticate first"}`},
		{protocol.NewRefreshScriptPackages("l"), `{"type":"refresh_script_packages","lockfileHash":"l"}`},
		{protocol.NewScriptPackageManifest("l", nil), `{"type":"script_package_manifest","lockfileHash":"l","entries":[]}`},
		{protocol.ScriptPackageBlob{Type: protocol.TypeScriptPackageBlob, Integrity: "i"}, `{"type":"script_package_blob","integrity":"i","data":null}`},
		{protocol.RunSecrets{Type: protocol.TypeRunSecrets, RequestID: "r", Error: "e"}, `{"type":"run_secrets","requestId":"r","error":"e"}`},
		{protocol.RunSecrets{Type: protocol.TypeRunSecrets, RequestID: "r", Env: map[string]string{"A": "1"}}, `{"type":"run_secrets","requestId":"r","env":{"A":"1"}}`},
		{protocol.NewShutdown("rotated"), `{"type":"shutdown","reason":"rotated"}`},
	}
	for _, tc := range cases {
		got, err := protocol.Encode(tc.frame)
		if err != nil || string(got) != tc.want {
			t.Errorf("Encode = %s, %v; want %s", got, err, tc.want)
		}
	}
}

func TestInlineBlobFitsAtTheBoundary(t *testing.T) {
	integrity := "sha512-" + strings.Repeat("A", 86) + "=="
	largest := int64(0)
	for n := int64(protocol.MaxMessageBytes); n > 0; n-- {
		if protocol.InlineBlobFits(integrity, n) {
			largest = n
			break
		}
	}
	data := strings.Repeat("A", int((largest+2)/3*4))
	b, err := protocol.Encode(protocol.ScriptPackageBlob{Type: protocol.TypeScriptPackageBlob, Integrity: integrity, Data: &data})
	if err != nil || len(b) > protocol.MaxMessageBytes {
		t.Fatalf("largest inline blob %d encodes to %d bytes (%v)", largest, len(b), err)
	}
	if protocol.InlineBlobFits(integrity, largest+1) {
		t.Errorf("InlineBlobFits(%d) = true beyond the largest fitting size %d", largest+1, largest)
	}
}

// TestBoundsAreEnforced checks every bound at its limit (accepted) and just
// past it (an invalid frame naming the field).
func TestBoundsAreEnforced(t *testing.T) {
	id := func(n int) string { return strings.Repeat("i", n) }
	nested := func(levels int) string {
		return strings.Repeat(`{"a":`, levels-1) + `{}` + strings.Repeat(`}`, levels-1)
	}
	groups := func(n int) string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf(`"g%d":1`, i)
		}
		return "{" + strings.Join(out, ",") + "}"
	}
	result := func(extra string) string {
		return `{"type":"result","configId":"c","systemId":"s","status":"healthy","executedAt":"2026-11-27T08:00:00Z"` + extra + `}`
	}
	cases := []struct {
		name, ok, over, field string
	}{
		{"clientId", `{"type":"authenticate","clientId":"` + id(protocol.MaxIDBytes) + `","token":"t"}`,
			`{"type":"authenticate","clientId":"` + id(protocol.MaxIDBytes+1) + `","token":"t"}`, "clientId"},
		{"token", `{"type":"authenticate","clientId":"c","token":"` + id(protocol.MaxIDBytes) + `"}`,
			`{"type":"authenticate","clientId":"c","token":"` + id(protocol.MaxIDBytes+1) + `"}`, "token"},
		{"configId", result(`,"configId":"` + id(protocol.MaxIDBytes) + `"`), result(`,"configId":"` + id(protocol.MaxIDBytes+1) + `"`), "configId"},
		{"version", `{"type":"heartbeat","version":"` + id(protocol.MaxVersionBytes) + `","uptimeSeconds":1}`,
			`{"type":"heartbeat","version":"` + id(protocol.MaxVersionBytes+1) + `","uptimeSeconds":1}`, "version"},
		{"strategy message", `{"type":"strategy_error","strategyId":"s","message":"` + id(protocol.MaxTextBytes) + `"}`,
			`{"type":"strategy_error","strategyId":"s","message":"` + id(protocol.MaxTextBytes+1) + `"}`, "message"},
		{"errorMessage", `{"type":"script_package_sync_state","lockfileHash":null,"status":"error","errorMessage":"` + id(protocol.MaxTextBytes) + `"}`,
			`{"type":"script_package_sync_state","lockfileHash":null,"status":"error","errorMessage":"` + id(protocol.MaxTextBytes+1) + `"}`, "errorMessage"},
		{"sync lockfileHash", `{"type":"script_package_sync_state","lockfileHash":"3f2c9a7e","status":"ready"}`,
			`{"type":"script_package_sync_state","lockfileHash":"../x","status":"ready"}`, "lockfileHash"},
		{"manifest lockfileHash", `{"type":"request_script_package_manifest","lockfileHash":"lock-1"}`,
			`{"type":"request_script_package_manifest","lockfileHash":"a/b"}`, "lockfileHash"},
		{"runId", `{"type":"request_run_secrets","requestId":"r","configId":"c","collectorId":"k","runId":"` + id(protocol.MaxIDBytes) + `"}`,
			`{"type":"request_run_secrets","requestId":"r","configId":"c","collectorId":"k","runId":"` + id(protocol.MaxIDBytes+1) + `"}`, "runId"},
		{"latencyMs high", result(`,"latencyMs":86400000`), result(`,"latencyMs":1e308`), "latencyMs"},
		{"latencyMs negative", result(`,"latencyMs":0`), result(`,"latencyMs":-1`), "latencyMs"},
		{"result depth", result(`,"result":` + nested(protocol.MaxResultDepth)), result(`,"result":` + nested(protocol.MaxResultDepth+1)), "result"},
		{"environmentId", result(`,"environmentId":"` + id(protocol.MaxIDBytes) + `"`), result(`,"environmentId":"` + id(protocol.MaxIDBytes+1) + `"`), "environmentId"},
		{"batchId number", `{"type":"telemetry_batch","batchId":9007199254740991,"kind":"k","payload":[]}`,
			`{"type":"telemetry_batch","batchId":9007199254740992,"kind":"k","payload":[]}`, "batchId"},
		{"batchId string", `{"type":"telemetry_batch","batchId":"` + id(protocol.MaxIDBytes) + `","kind":"k","payload":[]}`,
			`{"type":"telemetry_batch","batchId":"` + id(protocol.MaxIDBytes+1) + `","kind":"k","payload":[]}`, "batchId"},
		{"telemetry depth", `{"type":"telemetry_batch","batchId":1,"kind":"k","payload":` + nested(protocol.MaxResultDepth) + `}`,
			`{"type":"telemetry_batch","batchId":1,"kind":"k","payload":` + nested(protocol.MaxResultDepth+1) + `}`, "payload"},
		{"droppedByGroup entries", `{"type":"telemetry_batch","batchId":1,"kind":"k","payload":[],"droppedByGroup":` + groups(protocol.MaxDroppedGroups) + `}`,
			`{"type":"telemetry_batch","batchId":1,"kind":"k","payload":[],"droppedByGroup":` + groups(protocol.MaxDroppedGroups+1) + `}`, "droppedByGroup"},
		{"status size", `{"type":"capability_status","kind":"k","payload":"` + id(protocol.MaxStatusBytes-2) + `"}`,
			`{"type":"capability_status","kind":"k","payload":"` + id(protocol.MaxStatusBytes-1) + `"}`, "payload"},
		{"secret request size", `{"type":"capability_secret_request","requestId":"r","kind":"k","payload":{"a":"` + id(protocol.MaxSecretRequestBytes-8) + `"}}`,
			`{"type":"capability_secret_request","requestId":"r","kind":"k","payload":{"a":"` + id(protocol.MaxSecretRequestBytes-7) + `"}}`, "payload"},
		{"result depth with brackets in strings", result(`,"result":{"a":"[[[[{{{{` + strings.Repeat("[", 40) + `"}`), result(`,"result":` + nested(9990)), "result"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := protocol.Parse([]byte(tc.ok)); err != nil {
				t.Errorf("at the bound: %v", err)
			}
			_, err := protocol.Parse([]byte(tc.over))
			var inv *protocol.InvalidFrame
			if satellite.ErrorCode(err) != satellite.EINVALID || !errors.As(err, &inv) || inv.Field != tc.field {
				t.Errorf("past the bound: %v, want an invalid frame naming %s", err, tc.field)
			}
		})
	}
}

// TestBadCapabilitiesNeverFailTheFrame checks capabilities, an optional
// field, are cleaned rather than refused: an agent whose list a backend does
// not like still authenticates and heartbeats.
func TestBadCapabilitiesNeverFailTheFrame(t *testing.T) {
	many := make([]string, protocol.MaxCapabilities+3)
	for i := range many {
		many[i] = fmt.Sprintf(`"c%02d"`, i)
	}
	cases := []struct {
		caps, want, dropped string
	}{
		{`"telemetry"`, `null`, "not an array of strings"},
		{`[1, 2]`, `null`, "not an array of strings"},
		{`["log receivers", "scrape", "` + strings.Repeat("x", protocol.MaxNameBytes+1) + `"]`, `["scrape"]`, "2 capabilities that are not"},
		{`[` + strings.Join(many, ",") + `]`, "", "3 capabilities past the first 32"},
		{`["scrape", "scrape"]`, `["scrape"]`, ""},
	}
	for _, tc := range cases {
		for _, frame := range []string{
			`{"type":"authenticate","clientId":"a","token":"t","capabilities":` + tc.caps + `}`,
			`{"type":"heartbeat","version":"1","uptimeSeconds":1,"capabilities":` + tc.caps + `}`,
		} {
			msg, err := protocol.Parse([]byte(frame))
			if err != nil {
				t.Errorf("%s: %v", frame, err)
				continue
			}
			var caps []string
			var dropped string
			switch m := msg.(type) {
			case *protocol.Authenticate:
				caps, dropped = m.Capabilities, m.CapabilitiesDropped
			case *protocol.Heartbeat:
				caps, dropped = m.Capabilities, m.CapabilitiesDropped
			}
			got, _ := json.Marshal(caps)
			if (tc.want != "" && string(got) != tc.want) || (tc.want == "" && len(caps) != protocol.MaxCapabilities) || !strings.Contains(dropped, tc.dropped) || (tc.dropped == "") != (dropped == "") {
				t.Errorf("%s: capabilities %s, dropped %q; want %s, %q", tc.caps, got, dropped, tc.want, tc.dropped)
			}
		}
	}
}

// TestCapabilitiesAbsentAndEmptyDiffer checks the parsed frame tells a
// frame without capabilities (nil: the stored list is kept) from one with
// an empty list (not nil: the stored list is cleared).
func TestCapabilitiesAbsentAndEmptyDiffer(t *testing.T) {
	for _, tc := range []struct {
		name, field string
		wantNil     bool
	}{
		{"absent", ``, true},
		{"null", `,"capabilities":null`, true},
		{"not a list", `,"capabilities":"scrape"`, true},
		{"empty", `,"capabilities":[]`, false},
		{"nothing but bad names", `,"capabilities":["log receivers"]`, false},
	} {
		for _, frame := range []string{
			`{"type":"authenticate","clientId":"a","token":"t"` + tc.field + `}`,
			`{"type":"heartbeat","version":"1","uptimeSeconds":1` + tc.field + `}`,
		} {
			msg, err := protocol.Parse([]byte(frame))
			if err != nil {
				t.Fatalf("%s: %v", frame, err)
			}
			var caps []string
			switch m := msg.(type) {
			case *protocol.Authenticate:
				caps = m.Capabilities
			case *protocol.Heartbeat:
				caps = m.Capabilities
			}
			if got := caps == nil; got != tc.wantNil || len(caps) != 0 {
				t.Errorf("%s: %s: capabilities %#v, want nil %v", tc.name, msg.Type(), caps, tc.wantNil)
			}
		}
	}
}

// TestAnswerRefused checks the answer to a refused request carries the
// field it is matched on exactly as the frame wrote it, and that there is
// none when that field is not a string.
func TestAnswerRefused(t *testing.T) {
	cases := []struct {
		name, frame, want string // want "" for no answer
	}{
		{"manifest", `{"type":"request_script_package_manifest","lockfileHash":"a/b"}`,
			`{"type":"script_package_manifest","lockfileHash":"a/b","entries":[]}`},
		{"spaces around the field", `{ "type" : "request_script_package_manifest" , "lockfileHash" :  "a/b"  }`,
			`{"type":"script_package_manifest","lockfileHash":"a/b","entries":[]}`},
		{"the last of repeated fields, as a JavaScript reader takes it", `{"type":"request_script_package_blob","integrity":"x","integrity":"y\u00e9"}`,
			`{"type":"script_package_blob","integrity":"y\u00e9","data":null}`},
		{"run secrets", `{"type":"request_run_secrets","requestId":"r"}`,
			`{"type":"run_secrets","requestId":"r","error":"why"}`},
		{"config secrets", `{"type":"request_config_secrets","requestId":"r"}`,
			`{"type":"config_secrets","requestId":"r","error":"why"}`},
		{"capability secret", `{"type":"capability_secret_request","requestId":"r"}`,
			`{"type":"capability_secret_response","requestId":"r","error":"why"}`},
		{"a number", `{"type":"request_run_secrets","requestId":1}`, ""},
		{"null", `{"type":"request_script_package_manifest","lockfileHash":null}`, ""},
		{"absent", `{"type":"request_script_package_blob"}`, ""},
		{"a type answered elsewhere", `{"type":"telemetry_batch","requestId":"r"}`, ""},
		{"a type never answered", `{"type":"heartbeat","requestId":"r"}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var head struct{ Type string }
			_ = json.Unmarshal([]byte(tc.frame), &head)
			answer, ok := protocol.AnswerRefused(head.Type, []byte(tc.frame), "why")
			if !ok {
				if tc.want != "" {
					t.Errorf("no answer, want %s", tc.want)
				}
				return
			}
			got, err := protocol.Encode(answer)
			if err != nil || string(got) != tc.want {
				t.Errorf("answer %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

// An outbound frame over the limit is refused naming its wire type, for
// every frame type (the three below were named by their Go type before).
func TestOversizedFramesAreNamedByTheirType(t *testing.T) {
	big := strings.Repeat("x", protocol.MaxMessageBytes)
	for _, f := range []any{protocol.NewAuthFailed(big), protocol.NewShutdown(big), protocol.NewRefreshScriptPackages(big), protocol.NewKeepalive()} {
		b, err := protocol.Encode(f)
		if b != nil && err == nil {
			continue // the keepalive fits
		}
		if want := mustType(t, f); !strings.HasPrefix(satellite.ErrorMessage(err), want+" frame") {
			t.Errorf("error %q, want it to start with %q", satellite.ErrorMessage(err), want+" frame")
		}
	}
}

func mustType(t *testing.T, f any) string {
	t.Helper()
	var v struct {
		Type string `json:"type"`
	}
	b, _ := json.Marshal(f)
	if err := json.Unmarshal(b, &v); err != nil || v.Type == "" {
		t.Fatalf("%T has no type: %s", f, b)
	}
	return v.Type
}
