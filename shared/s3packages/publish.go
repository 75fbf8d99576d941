package s3packages

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Publisher writes blobs and manifests where Store reads them.
type Publisher struct{ objects *Objects }

// NewPublisher returns a publisher into the package bucket.
func NewPublisher(objects *Objects) *Publisher { return &Publisher{objects: objects} }

// Integrity returns the sha512 Subresource Integrity string of data.
func Integrity(data []byte) string {
	sum := sha512.Sum512(data)
	return "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
}

// VerifyIntegrity checks data against a sha256, sha384 or sha512 SRI value.
func VerifyIntegrity(integrity string, data []byte) bool {
	alg, digest, ok := strings.Cut(integrity, "-")
	if !ok {
		return false
	}
	var sum []byte
	switch alg {
	case "sha256":
		s := sha256.Sum256(data)
		sum = s[:]
	case "sha384":
		s := sha512.Sum384(data)
		sum = s[:]
	case "sha512":
		s := sha512.Sum512(data)
		sum = s[:]
	default:
		return false
	}
	return base64.StdEncoding.EncodeToString(sum) == digest
}

// LockfileHash is deterministic over a manifest's entries: the hex sha256 of
// their canonical JSON, sorted by name then version, so the same package set
// always has the same hash whatever order it was given in.
func LockfileHash(entries []satellite.ManifestEntry) string {
	sorted := append([]satellite.ManifestEntry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Name != sorted[j].Name {
			return sorted[i].Name < sorted[j].Name
		}
		return sorted[i].Version < sorted[j].Version
	})
	b, _ := json.Marshal(sorted)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// PutBlob stores data content-addressed and returns its integrity.
func (p *Publisher) PutBlob(ctx context.Context, data []byte) (string, error) {
	integrity := Integrity(data)
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
	hash := LockfileHash(entries)
	key, err := ManifestKey(hash)
	if err != nil {
		return "", err
	}
	if entries == nil {
		entries = []satellite.ManifestEntry{}
	}
	b, err := json.Marshal(Manifest{LockfileHash: hash, Entries: entries})
	if err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "encode manifest")
	}
	if err := p.objects.Put(ctx, key, b, "application/json", nil); err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "store manifest")
	}
	return hash, nil
}
