// Package s3packages is the adapter of satellite.PackageStore over S3:
// content-addressed blobs under blobs/ and manifests under
// manifests/<lockfileHash>.json.
package s3packages

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/shared/awsapi"
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
type Store struct{ objects *s3objects.Bucket }

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
	var e *awsapi.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case "NoSuchKey", "AccessDenied":
		return true
	}
	// A HEAD answer has no body, hence no code.
	return e.StatusCode == http.StatusNotFound && e.Code == http.StatusText(http.StatusNotFound)
}

// Manifest implements satellite.PackageStore.
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
	return m.Entries, nil
}

// OpenBlob implements satellite.PackageStore.
func (s *Store) OpenBlob(ctx context.Context, integrity string) (satellite.Blob, error) {
	key, err := BlobKey(integrity)
	if err != nil {
		return satellite.Blob{}, err
	}
	body, size, err := s.objects.Get(ctx, key)
	if notFound(err) {
		return satellite.Blob{}, satellite.Errorf(satellite.ENOTFOUND, "no blob %s", strings.TrimPrefix(key, BlobPrefix))
	}
	if err != nil {
		return satellite.Blob{}, satellite.Wrap(err, satellite.EINTERNAL, "read blob")
	}
	return satellite.Blob{Size: size, Body: body}, nil
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
