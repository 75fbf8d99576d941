// Package s3telemetry stores telemetry batches in S3, one object per batch,
// under a key by kind, day and satellite:
//
//	telemetry/<kind>/<YYYY-MM-DD>/<satelliteId>/<HHMMSS.mmm>Z_<connectionId>_<batch>.json
//
// so that a day of one kind, or of one satellite, lists under one prefix,
// and lists the stored batches back for the admin API. The time is when the
// batch was first claimed (the same for every attempt at it), <connectionId>
// is path-escaped, and <batch> names the batchId by its type, so that a
// number and a string of the same digits are two batches:
//
//	n<digits>   a number: n7
//	s<id>       a string of at most 64 letters, digits, '.', '_' or '-': s7, sbatch-12
//	h<sha256>   any other string: the hex SHA-256 of the string
//
// Every key is unique per connection and batchId and at most MaxKeyBytes,
// whatever the id, and an object is written only where none is (a
// conditional PUT): a stored batch is never replaced.
package s3telemetry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"regexp"
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

// MaxKeyBytes is S3's limit on a key: 1,024 bytes of UTF-8. Every key Key
// returns is within it.
const MaxKeyBytes = 1024

// readableID is a string batchId kept as it is in its key: short, and
// nothing S3, a URL or a shell would read otherwise.
var readableID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// maxConnectionBytes bounds the escaped connection id in a key (API
// Gateway's are 16 characters); a longer one is hashed, so that every key
// fits MaxKeyBytes.
const maxConnectionBytes = 128

// Key returns the object key of a batch (see the package doc). The batch's
// ReceivedAt must be the same for every attempt at it, so that a retry
// writes to the key of any earlier attempt.
func Key(b satellite.TelemetryBatch) string {
	at := b.ReceivedAt.UTC()
	conn := url.PathEscape(b.ConnectionID)
	if len(conn) > maxConnectionBytes {
		conn = "h" + digest(b.ConnectionID)
	}
	return Prefix + b.Kind + "/" + at.Format(dayLayout) + "/" + b.SatelliteID + "/" +
		at.Format(timeLayout) + "_" + conn + "_" + batchName(b.BatchID) + ".json"
}

// batchName names a batchId (a JSON string, or a number as its digits) in
// a key: distinct ids get distinct names, of at most 65 bytes.
func batchName(id json.RawMessage) string {
	var s string
	if json.Unmarshal(id, &s) == nil {
		if readableID.MatchString(s) {
			return "s" + s
		}
		return "h" + digest("s:"+s)
	}
	digits := string(id)
	if digits != "" && len(digits) <= 20 && strings.Trim(digits, "0123456789") == "" {
		return "n" + digits
	}
	// Not a number the protocol accepts (it sends digits): named apart
	// from every string all the same.
	return "h" + digest("n:"+digits)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Store implements satellite.TelemetrySink. The object is created only
// where none is (If-None-Match: *). A key that holds an object already
// holds this batch: keys are unique per connection and batchId and the
// same for every attempt at a batch, so the object is an earlier attempt's
// (one that stored the batch and died before its outcome was remembered).
// That counts as stored, and the object is kept as it is. Two attempts
// writing at once may get S3's 409 ConditionalRequestConflict: an error,
// after which the agent's resend finds the object.
func (s *Store) Store(ctx context.Context, b satellite.TelemetryBatch) (string, error) {
	doc, err := json.Marshal(Document{
		SatelliteID: b.SatelliteID, ConnectionID: b.ConnectionID, Kind: b.Kind, BatchID: b.BatchID,
		ReceivedAt: b.ReceivedAt.UTC(), Accepted: b.Accepted, DroppedByGroup: b.DroppedByGroup, Payload: b.Payload,
	})
	if err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "encode telemetry batch")
	}
	key := Key(b)
	if err := s.objects.Create(ctx, key, doc, "application/json", nil); err != nil && !s3objects.Exists(err) {
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
