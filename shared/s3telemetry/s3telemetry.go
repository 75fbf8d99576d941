// Package s3telemetry stores telemetry batches in S3, one object per batch,
// under a key by kind, day and satellite:
//
//	telemetry/<kind>/<YYYY-MM-DD>/<satelliteId>/<HHMMSS.mmm>Z_<connectionId>_<batchId>.json
//
// so that a day of one kind, or of one satellite, lists under one prefix,
// and lists the stored batches back for the admin API.
package s3telemetry

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Prefix starts every telemetry key.
const Prefix = "telemetry/"

// Store implements satellite.TelemetrySink and satellite.TelemetryArchive.
type Store struct {
	objects *s3objects.Bucket
	// ScanLimit bounds the keys one listing reads (MaxScanned when zero).
	ScanLimit int
}

var (
	_ satellite.TelemetrySink    = (*Store)(nil)
	_ satellite.TelemetryArchive = (*Store)(nil)
)

// New returns a store over the telemetry bucket.
func New(objects *s3objects.Bucket) *Store { return &Store{objects: objects, ScanLimit: MaxScanned} }

// Document is a stored batch.
type Document struct {
	SatelliteID    string             `json:"satelliteId"`
	ConnectionID   string             `json:"connectionId"`
	Kind           string             `json:"kind"`
	BatchID        json.RawMessage    `json:"batchId"`
	ReceivedAt     time.Time          `json:"receivedAt"`
	Accepted       int                `json:"accepted"`
	DroppedByGroup map[string]float64 `json:"droppedByGroup,omitempty"`
	Payload        json.RawMessage    `json:"payload"`
}

const (
	dayLayout  = "2006-01-02"
	timeLayout = "150405.000Z"
)

// Key returns the object key of a batch.
func Key(b satellite.TelemetryBatch) string {
	at := b.ReceivedAt.UTC()
	return Prefix + b.Kind + "/" + at.Format(dayLayout) + "/" + b.SatelliteID + "/" +
		at.Format(timeLayout) + "_" + url.PathEscape(b.ConnectionID) + "_" + url.PathEscape(strings.Trim(string(b.BatchID), `"`)) + ".json"
}

// Store implements satellite.TelemetrySink.
func (s *Store) Store(ctx context.Context, b satellite.TelemetryBatch) (string, error) {
	doc, err := json.Marshal(Document{
		SatelliteID: b.SatelliteID, ConnectionID: b.ConnectionID, Kind: b.Kind, BatchID: b.BatchID,
		ReceivedAt: b.ReceivedAt.UTC(), Accepted: b.Accepted, DroppedByGroup: b.DroppedByGroup, Payload: b.Payload,
	})
	if err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "encode telemetry batch")
	}
	key := Key(b)
	if err := s.objects.Put(ctx, key, doc, "application/json", nil); err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "store telemetry batch")
	}
	return key, nil
}

// parse reads kind, satellite and time back from a key.
func parse(key string, size int64) (satellite.TelemetryObject, bool) {
	parts := strings.Split(strings.TrimPrefix(key, Prefix), "/")
	if len(parts) != 4 || len(parts[3]) < len(timeLayout) {
		return satellite.TelemetryObject{}, false
	}
	at, err := time.Parse(dayLayout+" "+timeLayout, parts[1]+" "+parts[3][:len(timeLayout)])
	if err != nil {
		return satellite.TelemetryObject{}, false
	}
	return satellite.TelemetryObject{Key: key, Kind: parts[0], SatelliteID: parts[2], ReceivedAt: at.UTC(), Size: size}, true
}

// MaxScanned bounds the keys one listing reads (ten ListObjectsV2 pages),
// so that a listing of a busy fleet without a satellite answers within the
// API's time limit.
const MaxScanned = 10_000

// List implements satellite.TelemetryArchive: for each kind, the days from
// q.Until back to q.Since, newest first, each one prefix (of the satellite
// when q.SatelliteID is set), until q.Limit batches are found or MaxScanned
// keys were read.
func (s *Store) List(ctx context.Context, q satellite.TelemetryQuery) (satellite.TelemetryListing, error) {
	var out satellite.TelemetryListing
	scanned := 0
	first := q.Since.UTC().Truncate(24 * time.Hour)
	for day := q.Until.UTC().Truncate(24 * time.Hour); !day.Before(first); day = day.Add(-24 * time.Hour) {
		var found []satellite.TelemetryObject
		for _, kind := range q.Kinds {
			prefix := Prefix + kind + "/" + day.Format(dayLayout) + "/"
			if q.SatelliteID != "" {
				prefix += q.SatelliteID + "/"
			}
			err := s.objects.List(ctx, prefix, "", func(o s3objects.Object) bool {
				if scanned++; scanned > s.ScanLimit {
					out.Truncated = true
					return false
				}
				if obj, ok := parse(o.Key, o.Size); ok && !obj.ReceivedAt.Before(q.Since) && !obj.ReceivedAt.After(q.Until) {
					found = append(found, obj)
				}
				return true
			})
			if err != nil {
				return satellite.TelemetryListing{}, satellite.Wrap(err, satellite.EINTERNAL, "list telemetry")
			}
		}
		sort.Slice(found, func(i, j int) bool {
			if !found[i].ReceivedAt.Equal(found[j].ReceivedAt) {
				return found[i].ReceivedAt.After(found[j].ReceivedAt)
			}
			return found[i].Key < found[j].Key
		})
		out.Batches = append(out.Batches, found...)
		if q.Limit > 0 && len(out.Batches) >= q.Limit {
			out.Batches = out.Batches[:q.Limit]
			return out, nil
		}
		if out.Truncated {
			return out, nil
		}
	}
	return out, nil
}
