// Package s3packages is the adapter of satellite.PackageStore over S3:
// content-addressed blobs under blobs/ and manifests under
// manifests/<lockfileHash>.json. It reads S3 on every call; packagecache
// keeps what a warm instance has read.
package s3packages

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

// Key prefixes inside the bucket.
const (
	BlobPrefix     = "blobs/"
	ManifestPrefix = "manifests/"
)

// MaxManifestBytes bounds how much of a manifest object is read.
const MaxManifestBytes = 8 << 20

// Store implements satellite.PackageStore.
type Store struct {
	objects *s3objects.Bucket
	// Log receives the error logged for a stored manifest that does not
	// match the lockfile hash it is stored under; slog.Default() when nil.
	Log *slog.Logger
}

var _ satellite.PackageStore = (*Store)(nil)

// New returns a store over the objects of the package bucket.
func New(objects *s3objects.Bucket) *Store { return &Store{objects: objects} }

// ManifestKey returns the object key of a lockfile's manifest. EINVALID when
// the hash cannot name one.
func ManifestKey(lockfileHash string) (string, error) {
	if !satellite.ValidLockfileHash(lockfileHash) {
		return "", satellite.Errorf(satellite.EINVALID, "lockfileHash is not a valid lockfile hash")
	}
	return ManifestPrefix + lockfileHash + ".json", nil
}

// BlobKey returns the content-addressed object key of a blob from its
// Subresource Integrity string ("sha512-<base64>"): blobs/<alg>-<hex digest>.
// EINVALID when integrity is not a well-formed sha256/384/512 SRI value.
func BlobKey(integrity string) (string, error) {
	alg, digest, err := scriptpkg.ParseIntegrity(integrity)
	if err != nil {
		return "", err
	}
	return BlobPrefix + alg + "-" + hex.EncodeToString(digest), nil
}

// notFound reports whether err says the object does not exist. S3 answers a
// GET of a missing key with 404 NoSuchKey only to callers granted
// s3:ListBucket on the bucket; everyone else gets 403 AccessDenied, so as not
// to reveal which keys exist. The functions are not granted ListBucket (they
// never list), and the policy test proves they are granted GetObject on every
// key this store reads, in a bucket encrypted with S3-managed keys: for these
// keys AccessDenied means the object is missing. Other answers stay errors:
// a 403 for an invalid or expired credential, a bad signature or a skewed
// clock, and a 404 NoSuchBucket.
func notFound(err error) bool {
	// Only a GET's answer names its code: see BlobSize for a HEAD's.
	code := s3objects.Code(err)
	return code == "NoSuchKey" || code == "AccessDenied"
}

// Manifest implements satellite.PackageStore. A manifest is served only
// when its entries hash to the lockfile hash it is stored under (and its
// document says that hash): anything else under that name (written by hand,
// or by anyone but the publisher) is corrupt, logged as an error, and
// answered ENOTFOUND, as if nothing were published under the hash.
func (s *Store) Manifest(ctx context.Context, lockfileHash string) ([]satellite.ManifestEntry, error) {
	key, err := ManifestKey(lockfileHash)
	if err != nil {
		return nil, err
	}
	body, _, err := s.objects.Get(ctx, key)
	if notFound(err) {
		return nil, satellite.Errorf(satellite.ENOTFOUND, "no manifest for lockfile %s", lockfileHash)
	}
	if err != nil {
		return nil, satellite.Wrap(err, satellite.EINTERNAL, "read manifest")
	}
	defer body.Close()
	var m scriptpkg.Manifest
	if err := json.NewDecoder(io.LimitReader(body, MaxManifestBytes)).Decode(&m); err != nil {
		return nil, satellite.Wrap(err, satellite.EINTERNAL, "decode manifest "+key)
	}
	if got := scriptpkg.LockfileHash(m.Entries); got != lockfileHash || m.LockfileHash != lockfileHash {
		log := cmp.Or(s.Log, slog.Default())
		log.LogAttrs(ctx, slog.LevelError, "stored manifest does not match its lockfile hash; not served",
			slog.String("lockfileHash", lockfileHash), slog.String("entriesHash", got), slog.Int("entries", len(m.Entries)))
		return nil, satellite.Errorf(satellite.ENOTFOUND, "no valid manifest for lockfile %s", lockfileHash)
	}
	return m.Entries, nil
}

// BlobSize implements satellite.PackageStore with a HEAD request. S3
// answers a failed HEAD without a body, so a 403 does not say whether the
// key is missing (AccessDenied, for a caller without s3:ListBucket) or the
// request was refused (a bad credential or signature), nor a 404 whether
// the key or the bucket is: only then is the object asked for with a GET,
// whose error answer names the reason.
func (s *Store) BlobSize(ctx context.Context, integrity string) (int64, error) {
	key, err := BlobKey(integrity)
	if err != nil {
		return 0, err
	}
	size, err := s.objects.Head(ctx, key)
	if status := s3objects.Status(err); status == http.StatusForbidden || status == http.StatusNotFound {
		var body io.ReadCloser
		body, size, err = s.objects.Get(ctx, key)
		if err == nil {
			body.Close()
		}
	}
	switch {
	case notFound(err):
		return 0, satellite.Errorf(satellite.ENOTFOUND, "no blob %s", strings.TrimPrefix(key, BlobPrefix))
	case err != nil:
		return 0, satellite.Wrap(err, satellite.EINTERNAL, "read blob size")
	case size < 0:
		return 0, satellite.Errorf(satellite.EINTERNAL, "blob %s: S3 gave no size", strings.TrimPrefix(key, BlobPrefix))
	}
	return size, nil
}

// ReadBlob implements satellite.PackageStore: one GET, read up to maxBytes,
// and the content checked against integrity before it is returned.
func (s *Store) ReadBlob(ctx context.Context, integrity string, maxBytes int64) ([]byte, error) {
	key, err := BlobKey(integrity)
	if err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(key, BlobPrefix)
	body, size, err := s.objects.Get(ctx, key)
	if notFound(err) {
		return nil, satellite.Errorf(satellite.ENOTFOUND, "no blob %s", name)
	}
	if err != nil {
		return nil, satellite.Wrap(err, satellite.EINTERNAL, "read blob")
	}
	defer body.Close()
	if size > maxBytes {
		return nil, satellite.Errorf(satellite.EINTERNAL, "blob %s holds %d bytes, more than the %d expected", name, size, maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(body, maxBytes+1))
	switch {
	case err != nil:
		return nil, satellite.Wrap(err, satellite.EINTERNAL, "read blob")
	case int64(len(data)) > maxBytes:
		return nil, satellite.Errorf(satellite.EINTERNAL, "blob %s holds more than the %d bytes expected", name, maxBytes)
	case size >= 0 && int64(len(data)) != size:
		return nil, satellite.Errorf(satellite.EINTERNAL, "blob %s: read %d bytes, S3 announced %d", name, len(data), size)
	case !scriptpkg.VerifyIntegrity(integrity, data):
		return nil, satellite.Errorf(satellite.EINTERNAL, "blob %s does not match its integrity", name)
	}
	return data, nil
}

// BlobURL implements satellite.PackageStore.
func (s *Store) BlobURL(ctx context.Context, integrity string, ttl time.Duration) (string, error) {
	key, err := BlobKey(integrity)
	if err != nil {
		return "", err
	}
	return s.presignGet(ctx, key, ttl)
}

// ManifestURL returns a plain-GET URL of a lockfile's manifest document.
func (s *Store) ManifestURL(ctx context.Context, lockfileHash string, ttl time.Duration) (string, error) {
	key, err := ManifestKey(lockfileHash)
	if err != nil {
		return "", err
	}
	return s.presignGet(ctx, key, ttl)
}

func (s *Store) presignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	url, err := s.objects.PresignGet(ctx, key, ttl)
	if err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "presign "+key)
	}
	return url, nil
}
