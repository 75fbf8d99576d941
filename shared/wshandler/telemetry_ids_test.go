package wshandler_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/protocol"
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

// TestTelemetryNumberAndStringIDsAreDifferentBatches: batchId 7 and "7" are
// two batches (their dedupe keys differ), so both are stored, each as its
// own object with its own payload, even when they arrive in the same
// millisecond on one connection.
func TestTelemetryNumberAndStringIDsAreDifferentBatches(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-ids")
	id := h.authenticate("sat-ids", tok)
	ackIs(t, batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":7,"kind":"logstream","payload":[{"line":"number"}]}`), 7.0, 1, 0, false)
	ackIs(t, batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":"7","kind":"logstream","payload":[{"line":"string"},{"line":"two"}]}`), "7", 2, 0, false)

	got := map[string]string{}
	for key, doc := range storedBatches(t, h) {
		got[string(doc.BatchID)] = string(doc.Payload)
		switch string(doc.BatchID) {
		case `7`:
			if !strings.HasSuffix(key, "_n7.json") {
				t.Errorf("key of batch 7 is %s, want it to end _n7.json", key)
			}
		case `"7"`:
			if !strings.HasSuffix(key, "_s7.json") {
				t.Errorf(`key of batch "7" is %s, want it to end _s7.json`, key)
			}
		}
	}
	want := map[string]string{`7`: `[{"line":"number"}]`, `"7"`: `[{"line":"string"},{"line":"two"}]`}
	if len(got) != 2 || got[`7`] != want[`7`] || got[`"7"`] != want[`"7"`] {
		t.Errorf("stored batches %v, want %v", got, want)
	}
}

// TestTelemetryIDsThatEscapeBadlyAreStoredOnce: every string batchId the
// protocol accepts (up to MaxIDBytes, any characters) gets a key S3 takes,
// so it is stored and acked as stored, and its resend is re-acked, not
// stored again. An id past the protocol's bound is refused, and still
// answered.
func TestTelemetryIDsThatEscapeBadlyAreStoredOnce(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-escapes")
	id := h.authenticate("sat-escapes", tok)
	ids := map[string]string{
		"200 '<'":                      strings.Repeat("<", 200),
		"256 '<' (the longest)":        strings.Repeat("<", protocol.MaxIDBytes),
		"128 'é'":                      strings.Repeat("é", protocol.MaxIDBytes/2),
		"85 line separators":           strings.Repeat("\u2028", protocol.MaxIDBytes/3),
		"slashes and dots":             "../a/./b/%2F..",
		"quotes, backslashes, control": `"\` + "\x01\t",
		"a readable one":               "batch-2026.11_27",
	}
	for name, batchID := range ids {
		t.Run(name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"type": "telemetry_batch", "batchId": batchID, "kind": "logstream", "payload": []string{"line"}})
			ackIs(t, batch(t, h, h.message, id, string(body)), batchID, 1, 0, false)
			ackIs(t, batch(t, h, h.message, id, string(body)), batchID, 1, 0, false)
		})
	}
	docs := storedBatches(t, h)
	if len(docs) != len(ids) {
		t.Errorf("%d objects stored, want %d", len(docs), len(ids))
	}
	for key, doc := range docs {
		var sent string
		if err := json.Unmarshal(doc.BatchID, &sent); err != nil {
			t.Errorf("stored batchId %s: %v", doc.BatchID, err)
		}
		if sent == ids["a readable one"] && !strings.HasSuffix(key, "_sbatch-2026.11_27.json") {
			t.Errorf("a short, safe id is not readable in its key: %s", key)
		}
	}

	t.Run("past the protocol's bound: refused, answered", func(t *testing.T) {
		long := strings.Repeat("<", 1000)
		body, _ := json.Marshal(map[string]any{"type": "telemetry_batch", "batchId": long, "kind": "logstream", "payload": []string{"line"}})
		ackIs(t, batch(t, h, h.message, id, string(body)), long, 0, 1, false)
		if n := len(storedBatches(t, h)); n != len(ids) {
			t.Errorf("%d objects after a refused batch, want %d", n, len(ids))
		}
	})
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
