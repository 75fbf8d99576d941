package localstack_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/testenv"
)

// A satellite pipelining telemetry through the core URL, with frames spread
// over several instances: every batch acked as stored is stored, once, and
// ids that only look alike (7 and "7", ids that escape badly) are different
// batches. Before: a number and a string id shared an S3 key and one
// overwrote the other; a long id of '<' escaped past S3's key limit and was
// acked retryable for ever.
func TestPipelinedTelemetryKeepsEveryAckedBatch(t *testing.T) {
	s := startStack(t, localstack.InProcess)
	tok := createSatellite(t, s, "sat-telemetry")
	c := dial(t, satelliteURL(t, s))
	c.send(map[string]any{"type": "authenticate", "clientId": "sat-telemetry", "token": tok})
	c.expect("authenticated")

	ids := []any{strings.Repeat("<", 200)}
	for i := range 12 {
		ids = append(ids, i, fmt.Sprint(i))
	}
	for n, id := range ids {
		c.send(map[string]any{"type": "telemetry_batch", "batchId": id, "kind": "logstream",
			"payload": []any{map[string]any{"stream": "agent", "line": fmt.Sprintf("batch %d", n)}}})
	}
	// A number JavaScript cannot hold exactly is refused, not aliased.
	c.send(json.RawMessage(`{"type":"telemetry_batch","batchId":9007199254740993,"kind":"logstream","payload":[]}`))

	stored, refused := 0, 0
	for range len(ids) + 1 {
		ack := c.expect("telemetry_ack")
		switch {
		case ack["retryable"] == true:
			t.Errorf("batch %v acked retryable: %v", ack["batchId"], ack)
		case ack["accepted"] == float64(1):
			stored++
		default:
			refused++
		}
	}
	if stored != len(ids) || refused != 1 {
		t.Errorf("%d batches stored and %d refused, want %d and 1", stored, refused, len(ids))
	}
	testenv.Eventually(t, "every acked batch listed", func() bool {
		out := admin(t, s, "GET", "/telemetry?satelliteId=sat-telemetry&kind=logstream", nil)
		batches, _ := out["batches"].([]any)
		return len(batches) == len(ids)
	})
	out := admin(t, s, "GET", "/telemetry?satelliteId=sat-telemetry&kind=logstream", nil)
	if batches, _ := out["batches"].([]any); len(batches) != len(ids) {
		t.Errorf("%d objects listed, want one per acked batch (%d)", len(batches), len(ids))
	}
}
