package packagecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/packagecache"
	"github.com/checkstack/satellite-backend/shared/s3packages"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

// fixture is a cache over the S3 store of the test harness's S3 server,
// with every S3 request recorded.
type fixture struct {
	t         *testing.T
	env       *testenv.Env
	calls     *testenv.Calls
	store     *s3packages.Store
	publisher *s3packages.Publisher
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := testenv.New(t)
	calls := &testenv.Calls{}
	objects := localaws.Bucket(env.S3Endpoint, env.Bucket, calls.S3Option)
	store := s3packages.New(objects)
	store.Log = slog.New(slog.NewTextHandler(io.Discard, nil)) // the refused manifest's error
	return &fixture{t: t, env: env, calls: calls, store: store, publisher: s3packages.NewPublisher(objects)}
}

func (f *fixture) blob(content []byte) string {
	f.t.Helper()
	in, err := f.publisher.PutBlob(ctx, content)
	if err != nil {
		f.t.Fatal(err)
	}
	return in
}

// requests runs fn and returns the S3 operations it made.
func (f *fixture) requests(fn func()) []string {
	f.calls.Reset()
	fn()
	return f.calls.Operations("S3")
}

// read answers a blob request the way the endpoint does: its size, then its
// content when it fits maxInline.
func read(t *testing.T, c *packagecache.Store, integrity string, maxInline int64) ([]byte, int64) {
	t.Helper()
	size, err := c.BlobSize(ctx, integrity)
	if err != nil {
		t.Fatalf("BlobSize(%s): %v", integrity, err)
	}
	if size > maxInline {
		return nil, size
	}
	data, err := c.ReadBlob(ctx, integrity, size)
	if err != nil {
		t.Fatalf("ReadBlob(%s): %v", integrity, err)
	}
	return data, size
}

func TestSecondReadsOnAWarmInstanceCostNoRequest(t *testing.T) {
	f := newFixture(t)
	c := packagecache.New(f.store, packagecache.DefaultMaxEntries, packagecache.DefaultMaxBytes)
	small := []byte("export function check() { return true; }\n")
	smallIn := f.blob(small)
	large := bytes.Repeat([]byte("x"), 200<<10)
	largeIn := f.blob(large)
	entries := []satellite.ManifestEntry{{Name: "probe", Version: "1.0.0", Integrity: smallIn}, {Name: "big", Version: "2.0.0", Integrity: largeIn}}
	hash, err := f.publisher.PutManifest(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}

	for i, want := range [][]string{{"GetObject"}, nil} {
		got := f.requests(func() {
			m, err := c.Manifest(ctx, hash)
			if err != nil || !slices.Equal(m, entries) {
				t.Errorf("Manifest = %v, %v; want %v", m, err, entries)
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("manifest read %d made %v, want %v", i+1, got, want)
		}
	}
	for i, want := range [][]string{{"HeadObject", "GetObject"}, nil} {
		got := f.requests(func() {
			if data, _ := read(t, c, smallIn, 96<<10); !bytes.Equal(data, small) {
				t.Errorf("small blob read %d: %q", i+1, data)
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("small blob read %d made %v, want %v", i+1, got, want)
		}
	}
	// A blob over the inline limit is never read: its size decides the
	// answer (a URL), and that size is kept.
	for i, want := range [][]string{{"HeadObject"}, nil} {
		got := f.requests(func() {
			if data, size := read(t, c, largeIn, 96<<10); data != nil || size != int64(len(large)) {
				t.Errorf("large blob read %d: %d bytes, size %d", i+1, len(data), size)
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("large blob read %d made %v, want %v", i+1, got, want)
		}
	}
	if got := f.requests(func() {
		if _, err := c.BlobURL(ctx, largeIn, 60e9); err != nil {
			t.Error(err)
		}
	}); !slices.Equal(got, []string{"PresignGetObject"}) {
		t.Errorf("a presigned URL made %v, want only the signing (no request is sent)", got)
	}
	if c.Len() != 3 || c.Bytes() < int64(len(small)) || c.Bytes() > int64(len(small))+4<<10 {
		t.Errorf("cache holds %d objects, %d bytes; want 3 holding the small blob's %d bytes and a little more", c.Len(), c.Bytes(), len(small))
	}
}

func TestOnlyVerifiedObjectsAreKept(t *testing.T) {
	f := newFixture(t)
	c := packagecache.New(f.store, packagecache.DefaultMaxEntries, packagecache.DefaultMaxBytes)

	// A manifest whose entries do not hash to its name is refused (as
	// nothing published under it), and read again every time.
	key, _ := s3packages.ManifestKey("lock-named-by-hand")
	doc, _ := json.Marshal(scriptpkg.Manifest{LockfileHash: "lock-named-by-hand", Entries: []satellite.ManifestEntry{{Name: "a", Version: "1", Integrity: scriptpkg.Integrity([]byte("a"))}}})
	f.env.PutObject(t, key, doc)
	for i := range 2 {
		got := f.requests(func() {
			if m, err := c.Manifest(ctx, "lock-named-by-hand"); satellite.ErrorCode(err) != satellite.ENOTFOUND || m != nil {
				t.Errorf("Manifest = %v, %v; want ENOTFOUND", m, err)
			}
		})
		if !slices.Equal(got, []string{"GetObject"}) {
			t.Errorf("unverified manifest read %d made %v, want a GetObject every time", i+1, got)
		}
	}

	// Content stored under another blob's address is refused, never kept.
	forged := scriptpkg.Integrity([]byte("what was published"))
	blobKey, _ := s3packages.BlobKey(forged)
	f.env.PutObject(t, blobKey, []byte("what is stored"))
	for i := range 2 {
		got := f.requests(func() {
			size, err := c.BlobSize(ctx, forged)
			if err != nil {
				t.Fatal(err)
			}
			if data, err := c.ReadBlob(ctx, forged, size); satellite.ErrorCode(err) != satellite.EINTERNAL || data != nil {
				t.Errorf("ReadBlob of forged content = %q, %v; want EINTERNAL", data, err)
			}
		})
		want := []string{"HeadObject", "GetObject"}
		if i > 0 {
			want = []string{"GetObject"} // the size is right, and kept
		}
		if !slices.Equal(got, want) {
			t.Errorf("forged blob read %d made %v, want %v", i+1, got, want)
		}
	}
}

func TestMissingObjectsAreNotKept(t *testing.T) {
	f := newFixture(t)
	c := packagecache.New(f.store, packagecache.DefaultMaxEntries, packagecache.DefaultMaxBytes)
	content := []byte("published a moment later")
	in := scriptpkg.Integrity(content)
	entries := []satellite.ManifestEntry{{Name: "late", Version: "1.0.0", Integrity: in}}
	hash := scriptpkg.LockfileHash(entries)

	if _, err := c.BlobSize(ctx, in); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Fatalf("BlobSize before publishing: %v, want ENOTFOUND", err)
	}
	if _, err := c.Manifest(ctx, hash); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Fatalf("Manifest before publishing: %v, want ENOTFOUND", err)
	}
	if _, err := c.BlobSize(ctx, "md5-abc"); satellite.ErrorCode(err) != satellite.EINVALID {
		t.Errorf("BlobSize of a malformed integrity: %v, want EINVALID", err)
	}
	f.blob(content)
	if _, err := f.publisher.PutManifest(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if data, _ := read(t, c, in, 1<<20); !bytes.Equal(data, content) {
		t.Errorf("blob after publishing = %q", data)
	}
	if m, err := c.Manifest(ctx, hash); err != nil || !slices.Equal(m, entries) {
		t.Errorf("manifest after publishing = %v, %v", m, err)
	}
	if c.Len() != 2 {
		t.Errorf("cache holds %d objects, want the blob and the manifest", c.Len())
	}
}

func TestByteBoundEvictsLeastRecentlyUsedBlob(t *testing.T) {
	f := newFixture(t)
	// Room for one 60 KB blob and its bookkeeping, not two.
	c := packagecache.New(f.store, 100, 100<<10)
	a, b := bytes.Repeat([]byte("a"), 60<<10), bytes.Repeat([]byte("b"), 60<<10)
	aIn, bIn := f.blob(a), f.blob(b)
	read(t, c, aIn, 96<<10)
	read(t, c, bIn, 96<<10)
	if c.Bytes() > 100<<10 {
		t.Errorf("cache holds %d bytes, over its %d bound", c.Bytes(), 100<<10)
	}
	if got := f.requests(func() { read(t, c, bIn, 96<<10) }); len(got) != 0 {
		t.Errorf("most recent blob made %v, want it kept", got)
	}
	if got := f.requests(func() { read(t, c, aIn, 96<<10) }); !slices.Contains(got, "GetObject") {
		t.Errorf("evicted blob made %v, want it read again", got)
	}
}

func TestDisabledCacheReadsEveryTime(t *testing.T) {
	f := newFixture(t)
	c := packagecache.New(f.store, 0, 0)
	in := f.blob([]byte("x"))
	for i := range 2 {
		if got := f.requests(func() { read(t, c, in, 1<<10) }); !slices.Equal(got, []string{"HeadObject", "GetObject"}) {
			t.Errorf("read %d made %v", i+1, got)
		}
	}
}

// TestConcurrentReadersGetTheirOwnBlobs reads blobs from many goroutines
// through one cache (as the local stack's in-process functions do), under
// -race in CI.
func TestConcurrentReadersGetTheirOwnBlobs(t *testing.T) {
	f := newFixture(t)
	// Small enough that blobs are evicted while others read them.
	c := packagecache.New(f.store, 4, 64<<10)
	blobs := map[string][]byte{}
	var ins []string
	for i := range 8 {
		content := bytes.Repeat([]byte(fmt.Sprintf("blob %d;", i)), 1000+i*100)
		in := f.blob(content)
		blobs[in] = content
		ins = append(ins, in)
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				in := ins[(g+i)%len(ins)]
				size, err := c.BlobSize(ctx, in)
				if err != nil {
					t.Error(err)
					return
				}
				data, err := c.ReadBlob(ctx, in, size)
				if err != nil || !bytes.Equal(data, blobs[in]) {
					t.Errorf("blob %s: %d bytes, %v", in, len(data), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() > 4 || c.Bytes() > 64<<10 {
		t.Errorf("cache holds %d objects, %d bytes; bounds 4 and %d", c.Len(), c.Bytes(), 64<<10)
	}
}

// BenchmarkRequestAnswer measures what answering one manifest and one
// inline-blob request reads, against the harness's S3 server: through a
// warm cache and with the cache off. A benchmark, never a test: figures
// depend on the machine.
func BenchmarkRequestAnswer(b *testing.B) {
	env := testenv.New(b)
	objects := localaws.Bucket(env.S3Endpoint, env.Bucket)
	store, publisher := s3packages.New(objects), s3packages.NewPublisher(objects)
	blob := bytes.Repeat([]byte("export const x = 1;\n"), 2000) // 40 KB
	in, err := publisher.PutBlob(ctx, blob)
	if err != nil {
		b.Fatal(err)
	}
	var entries []satellite.ManifestEntry
	for i := range 50 {
		entries = append(entries, satellite.ManifestEntry{Name: fmt.Sprintf("package-%02d", i), Version: "1.0.0", Integrity: in})
	}
	hash, err := publisher.PutManifest(ctx, entries)
	if err != nil {
		b.Fatal(err)
	}
	for name, c := range map[string]*packagecache.Store{
		"cached": packagecache.New(store, packagecache.DefaultMaxEntries, packagecache.DefaultMaxBytes),
		"off":    packagecache.New(store, 0, 0),
	} {
		b.Run("manifest/"+name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Manifest(ctx, hash); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("blob/"+name, func(b *testing.B) {
			for b.Loop() {
				size, err := c.BlobSize(ctx, in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.ReadBlob(ctx, in, size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
