package s3telemetry_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/s3telemetry"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestListingStopsAtItsScanBound checks a listing that would read more keys
// than its bound stops there and says so.
func TestListingStopsAtItsScanBound(t *testing.T) {
	env := testenv.New(t)
	bucket := localaws.Bucket(env.S3Endpoint, env.TelemetryBucket)
	store := s3telemetry.New(bucket)
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for i := range 5 {
		b := satellite.TelemetryBatch{SatelliteID: "sat-" + string(rune('a'+i)), ConnectionID: "c=", Kind: "logstream",
			BatchID: json.RawMessage(`1`), Payload: json.RawMessage(`[]`), ReceivedAt: now.Add(time.Duration(i) * time.Second)}
		if _, err := store.Store(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	q := satellite.TelemetryQuery{Kinds: []string{"logstream"}, Since: now.Add(-time.Hour), Until: now.Add(time.Hour), Limit: 100}
	all, err := store.List(context.Background(), q)
	if err != nil || len(all.Batches) != 5 || all.Truncated || all.Batches[0].SatelliteID != "sat-e" {
		t.Fatalf("unbounded: %+v, %v", all, err)
	}
	store.ScanLimit = 3
	some, err := store.List(context.Background(), q)
	if err != nil || len(some.Batches) != 3 || !some.Truncated {
		t.Errorf("bounded to 3 keys: %d batches, truncated %v, %v", len(some.Batches), some.Truncated, err)
	}
}

// TestKeysAreUniqueAndFitS3 checks every batchId the protocol accepts gets
// a key of its own, within S3's 1,024 bytes, with the longest kind,
// satellite id and connection id around it; and that short, safe ids stay
// readable.
func TestKeysAreUniqueAndFitS3(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	longest := func(c string, n int) string { return strings.Repeat(c, n) }
	str := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	ids := []json.RawMessage{
		json.RawMessage(`7`), str("7"), json.RawMessage(`9007199254740991`), str("9007199254740991"),
		str("batch-1"), str("batch-1 "), str("Batch-1"), str(longest("a", 64)), str(longest("a", 65)),
		str(longest("<", protocol.MaxIDBytes)), str(longest("<", protocol.MaxIDBytes-1)),
		str(longest("é", protocol.MaxIDBytes/2)), str(longest("\u2028", protocol.MaxIDBytes/3)),
		str(longest("%", protocol.MaxIDBytes)), str("a/b"), str("a%2Fb"), str("."), str(".."),
		str(`"`), str(`\`), str("\x00"), str("h" + strings.Repeat("0", 64)),
	}
	keys := map[string]string{}
	for _, conn := range []string{"L0SM9cOFvHcCIhw=", longest("/", 300)} {
		for _, id := range ids {
			b := satellite.TelemetryBatch{Kind: longest("k", protocol.MaxNameBytes), SatelliteID: longest("s", 128), ConnectionID: conn, BatchID: id, ReceivedAt: at}
			key := s3telemetry.Key(b)
			if len(key) > s3telemetry.MaxKeyBytes || !utf8.ValidString(key) {
				t.Errorf("batchId %.40s: key of %d bytes", id, len(key))
			}
			if other, ok := keys[key]; ok {
				t.Errorf("batchIds %.40s and %.40s share the key %s", id, other, key)
			}
			keys[key] = conn + " " + string(id)
		}
	}
	for id, suffix := range map[string]string{`7`: "_n7.json", `"7"`: "_s7.json", `"batch-1"`: "_sbatch-1.json"} {
		b := satellite.TelemetryBatch{Kind: "logstream", SatelliteID: "sat-1", ConnectionID: "L0SM9cOFvHcCIhw=", BatchID: json.RawMessage(id), ReceivedAt: at}
		if key := s3telemetry.Key(b); key != "telemetry/logstream/2026-11-27/sat-1/080000.000Z_L0SM9cOFvHcCIhw=_"+suffix[1:] {
			t.Errorf("batchId %s: key %s", id, key)
		}
	}
}

// TestStoreNeverReplacesABatch checks a second store of a batch's key (an
// earlier attempt stored it) counts as stored and keeps the first object.
func TestStoreNeverReplacesABatch(t *testing.T) {
	env := testenv.New(t)
	bucket := localaws.Bucket(env.S3Endpoint, env.TelemetryBucket)
	store := s3telemetry.New(bucket)
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	b := satellite.TelemetryBatch{SatelliteID: "sat-a", ConnectionID: "c=", Kind: "logstream", BatchID: json.RawMessage(`1`), Payload: json.RawMessage(`["first"]`), Accepted: 1, ReceivedAt: at}
	first, err := store.Store(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	b.Payload = json.RawMessage(`["second"]`)
	again, err := store.Store(context.Background(), b)
	if err != nil || again != first {
		t.Fatalf("second store of %s: %s, %v; want the same key, stored", first, again, err)
	}
	body, _, err := bucket.Get(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	var doc s3telemetry.Document
	if err := json.NewDecoder(body).Decode(&doc); err != nil || string(doc.Payload) != `["first"]` {
		t.Errorf("stored %s, %v; want the first", doc.Payload, err)
	}
}
