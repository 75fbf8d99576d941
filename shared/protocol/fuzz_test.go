package protocol_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// FuzzParse checks that no frame makes Parse panic, that every failure is a
// classified error, and that errors never quote the frame.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"type":"authenticate","clientId":"sat-1","token":"csat_x"}`,
		`{"type":"heartbeat","version":"1.4.0","uptimeSeconds":12}`,
		`{"type":"result","configId":"c","systemId":"s","status":"healthy","latencyMs":1,"result":{"status":"healthy","metadata":{"connected":true}},"executedAt":"2026-11-27T08:00:00Z"}`,
		`{"type":"strategy_error","strategyId":"s","message":"m"}`,
		`{"type":"script_package_sync_state","lockfileHash":null,"status":"ready","errorMessage":null}`,
		`{"type":"request_script_package_manifest","lockfileHash":"l"}`,
		`{"type":"request_script_package_blob","integrity":"sha512-x"}`,
		`{"type":"request_run_secrets","requestId":"r","configId":"c","collectorId":"k","runId":"u"}`,
		`{"type":"request_config_secrets","requestId":"r","configId":"c","runId":"u"}`,
		`{"type":"telemetry_batch","batchId":1,"kind":"logstream","payload":[{"l":1}],"droppedByGroup":{"a":1}}`,
		`{"type":"capability_status","kind":"scrape","payload":{"t":1}}`,
		`{"type":"capability_secret_request","requestId":"r","kind":"scrape","payload":{"targetId":"t"}}`,
		`{"type":1}`, `[]`, `null`, `{"type":"heartbeat","version":"\u0000","uptimeSeconds":1e400}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		msg, err := protocol.Parse(frame)
		if err != nil {
			if msg != nil {
				t.Fatalf("Parse returned both a message and %v", err)
			}
			if c := satellite.ErrorCode(err); c != satellite.EINVALID && c != satellite.ETOOLARGE {
				t.Fatalf("Parse error code %q", c)
			}
			if len(frame) > 12 && strings.Contains(err.Error(), string(frame)) {
				t.Fatalf("error quotes the frame: %v", err)
			}
			// The answer to a refused request is always a JSON frame.
			typ, _ := protocol.InvalidType(err)
			if answer, ok := protocol.AnswerRefused(typ, frame, err.Error()); ok {
				if _, err := json.Marshal(answer); err != nil {
					t.Fatalf("the answer to a refused %s does not encode: %v", typ, err)
				}
			}
			return
		}
		if msg.Type() == "" {
			t.Fatal("parsed message without type")
		}
	})
}
