// Package packagecache keeps, in a warm function instance, the script-package
// manifests and blobs it has read, so that the burst of requests a publish
// causes (every satellite asks for the new manifest, then for each blob it
// lacks) costs S3 one read per instance instead of one per satellite.
//
// Everything kept is addressed by its content, so it never goes stale: a
// manifest by its lockfile hash, a blob by its integrity. Only what was
// verified against that address is kept (a manifest whose entries hash to
// its lockfile hash, a blob whose content has its integrity). The S3 store
// refuses a manifest stored under another name (it answers ENOTFOUND, as
// for a hash nothing was published under); one another store returned
// would be passed on, never kept. Answers that something does not exist
// are never kept: it may be published a moment later.
package packagecache

import (
	"context"
	"time"

	"github.com/checkstack/satellite-backend/shared/lru"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

// Defaults sized for a 128-512 MB function: a few hundred inline blobs
// (each at most about 96 KB) and their manifests.
const (
	DefaultMaxBytes   = 16 << 20
	DefaultMaxEntries = 1024
)

// Store implements satellite.PackageStore over another store, keeping what
// it reads in a bounded LRU.
type Store struct {
	store satellite.PackageStore
	cache *lru.Cache[string, object]
}

var _ satellite.PackageStore = (*Store)(nil)

// object is one kept manifest or blob. A blob too large to be sent inline
// is kept by its size only (satellites fetch it by URL).
type object struct {
	entries []satellite.ManifestEntry
	data    []byte
	hasData bool
	size    int64
}

// New returns store with a cache of at most maxEntries manifests and blobs
// holding at most maxBytes; with either at zero nothing is kept.
func New(store satellite.PackageStore, maxEntries int, maxBytes int64) *Store {
	return &Store{store: store, cache: lru.New[string, object](maxEntries, maxBytes)}
}

// Len is the number of manifests and blobs kept.
func (s *Store) Len() int { return s.cache.Len() }

// Bytes is the estimated memory the kept objects hold.
func (s *Store) Bytes() int64 { return s.cache.Cost() }

// Cache keys: one namespace per kind of object.
func manifestKey(lockfileHash string) string { return "manifest:" + lockfileHash }
func blobKey(integrity string) string        { return "blob:" + integrity }

// entryOverhead approximates what one cache entry costs beyond the bytes
// of its strings and data (the LRU's node, the map slot, the slice
// headers), and stringHeader what each string adds to its bytes.
const (
	entryOverhead = 160
	stringHeader  = 16
)

// Manifest implements satellite.PackageStore.
func (s *Store) Manifest(ctx context.Context, lockfileHash string) ([]satellite.ManifestEntry, error) {
	key := manifestKey(lockfileHash)
	if o, ok := s.cache.Get(key); ok {
		return o.entries, nil
	}
	entries, err := s.store.Manifest(ctx, lockfileHash)
	if err != nil {
		return nil, err
	}
	if scriptpkg.LockfileHash(entries) == lockfileHash {
		cost := int64(len(key)) + entryOverhead
		for _, e := range entries {
			cost += int64(len(e.Name)+len(e.Version)+len(e.Integrity)) + 3*stringHeader
		}
		s.cache.Add(key, object{entries: entries}, cost)
	}
	return entries, nil
}

// BlobSize implements satellite.PackageStore.
func (s *Store) BlobSize(ctx context.Context, integrity string) (int64, error) {
	key := blobKey(integrity)
	if o, ok := s.cache.Get(key); ok {
		return o.size, nil
	}
	size, err := s.store.BlobSize(ctx, integrity)
	if err != nil {
		return 0, err
	}
	s.cache.Add(key, object{size: size}, int64(len(key))+entryOverhead)
	return size, nil
}

// ReadBlob implements satellite.PackageStore. The content is checked
// against integrity again before it is kept or returned.
func (s *Store) ReadBlob(ctx context.Context, integrity string, maxBytes int64) ([]byte, error) {
	key := blobKey(integrity)
	if o, ok := s.cache.Get(key); ok && o.hasData {
		if int64(len(o.data)) > maxBytes {
			return nil, satellite.Errorf(satellite.EINTERNAL, "blob %s holds %d bytes, more than the %d expected", integrity, len(o.data), maxBytes)
		}
		return o.data, nil
	}
	data, err := s.store.ReadBlob(ctx, integrity, maxBytes)
	if err != nil {
		return nil, err
	}
	if !scriptpkg.VerifyIntegrity(integrity, data) {
		return nil, satellite.Errorf(satellite.EINTERNAL, "blob %s does not match its integrity", integrity)
	}
	s.cache.Add(key, object{data: data, hasData: true, size: int64(len(data))}, int64(len(key)+len(data))+entryOverhead)
	return data, nil
}

// BlobURL implements satellite.PackageStore (a presigned URL, made without
// a request).
func (s *Store) BlobURL(ctx context.Context, integrity string, ttl time.Duration) (string, error) {
	return s.store.BlobURL(ctx, integrity, ttl)
}

// ManifestURL implements satellite.PackageStore.
func (s *Store) ManifestURL(ctx context.Context, lockfileHash string, ttl time.Duration) (string, error) {
	return s.store.ManifestURL(ctx, lockfileHash, ttl)
}
