package wshandler_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/s3telemetry"
)

// S3's limit on a key: 1,024 bytes of UTF-8. The local S3 server enforces
// it too, but the tests hold every key to AWS's documented figure.
const s3MaxKeyBytes = 1024

// rawAcks returns the telemetry_ack frames posted to a connection, as sent:
// a decoded frame would round a large numeric batchId to a float64.
func rawAcks(h *harness, id string) []string {
	var out []string
	for _, p := range h.mgmt.Posts(id) {
		if bytes.Contains(p, []byte(`"type":"telemetry_ack"`)) {
			out = append(out, string(p))
		}
	}
	return out
}

// storedBatches decodes every stored telemetry object by key, checking each
// key against S3's limits.
func storedBatches(t *testing.T, h *harness) map[string]s3telemetry.Document {
	t.Helper()
	docs := map[string]s3telemetry.Document{}
	for key, b := range telemetryObjects(t, h) {
		if len(key) > s3MaxKeyBytes || !utf8.ValidString(key) {
			t.Errorf("key of %d bytes (valid UTF-8: %v) is not an S3 key: %q", len(key), utf8.ValidString(key), key)
		}
		var doc s3telemetry.Document
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("object %s: %v", key, err)
		}
		docs[key] = doc
	}
	return docs
}

// TestTelemetryNumericIDsAreNeverAliased: a numeric batchId is exact or
// refused. The agent's ids are JavaScript numbers, exact up to 2^53-1; a
// larger one read through a float64 would become another batch's id and be
// acked with that batch's counts. Refused ids are still answered, with the
// id echoed exactly as sent.
func TestTelemetryNumericIDsAreNeverAliased(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-bigids")
	id := h.authenticate("sat-bigids", tok)
	send := func(batchID string) string {
		t.Helper()
		before := len(rawAcks(h, id))
		// Not through batch: the frames are read as sent, not decoded (a
		// Go client cannot decode 1e400 into a float64; the agent's
		// JSON.parse reads it as Infinity).
		ev := testenv.Raw(t, id, `{"type":"telemetry_batch","batchId":`+batchID+`,"kind":"logstream","payload":[1,2]}`)
		if _, err := h.message.WebSocket.Message(ctx, ev); err != nil {
			t.Fatalf("batchId %s: %v", batchID, err)
		}
		acks := rawAcks(h, id)[before:]
		if len(acks) != 1 {
			t.Fatalf("batchId %s: %d acks %v, want one", batchID, len(acks), acks)
		}
		return acks[0]
	}
	stored := func(batchID string) string {
		return `{"type":"telemetry_ack","batchId":` + batchID + `,"accepted":2,"rejected":0,"retryable":false}`
	}
	refused := func(batchID string) string {
		return `{"type":"telemetry_ack","batchId":` + batchID + `,"accepted":0,"rejected":1,"retryable":false}`
	}
	for _, tc := range []struct{ sent, want string }{
		{"9007199254740991", stored("9007199254740991")},  // 2^53-1, the largest exact one
		{"9007199254740992", refused("9007199254740992")}, // 2^53: also what 2^53+1 reads as
		{"9007199254740993", refused("9007199254740993")},
		{"18446744073709551617", refused("18446744073709551617")},
		{"1e400", refused("1e400")},
		{"-1", refused("-1")},
		{"7.5", refused("7.5")},
		{"9007199254740991", stored("9007199254740991")}, // re-acked
	} {
		if got := send(tc.sent); got != tc.want {
			t.Errorf("batchId %s: ack %s, want %s", tc.sent, got, tc.want)
		}
	}
	if docs := storedBatches(t, h); len(docs) != 1 {
		t.Errorf("%d objects stored, want 1 (2^53-1)", len(docs))
	}
}
