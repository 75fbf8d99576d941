package s3telemetry_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/s3telemetry"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestListingStopsAtItsScanBound checks a listing that would read more keys
// than its bound stops there and says so.
func TestListingStopsAtItsScanBound(t *testing.T) {
	env := testenv.New(t)
	bucket, err := s3objects.New(awsapi.New(localaws.AWSConfig(), awsapi.Options{}), env.TelemetryBucket, env.S3Endpoint, true)
	if err != nil {
		t.Fatal(err)
	}
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
