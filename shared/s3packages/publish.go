package s3packages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

// Publisher writes blobs and manifests where Store reads them.
type Publisher struct{ objects *s3objects.Bucket }

var _ satellite.PackagePublisher = (*Publisher)(nil)

// NewPublisher returns a publisher into the package bucket.
func NewPublisher(objects *s3objects.Bucket) *Publisher { return &Publisher{objects: objects} }

// PutBlob stores data content-addressed and returns its integrity.
func (p *Publisher) PutBlob(ctx context.Context, data []byte) (string, error) {
	integrity := scriptpkg.Integrity(data)
	key, err := BlobKey(integrity)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	err = p.objects.Put(ctx, key, data, "application/octet-stream", map[string]string{"sha256": hex.EncodeToString(sum[:])})
	if err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "store blob")
	}
	return integrity, nil
}

// PutManifest stores the manifest of entries and returns its lockfile hash.
func (p *Publisher) PutManifest(ctx context.Context, entries []satellite.ManifestEntry) (string, error) {
	hash := scriptpkg.LockfileHash(entries)
	key, err := ManifestKey(hash)
	if err != nil {
		return "", err
	}
	if entries == nil {
		entries = []satellite.ManifestEntry{}
	}
	b, err := json.Marshal(scriptpkg.Manifest{LockfileHash: hash, Entries: entries})
	if err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "encode manifest")
	}
	if err := p.objects.Put(ctx, key, b, "application/json", nil); err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "store manifest")
	}
	return hash, nil
}
