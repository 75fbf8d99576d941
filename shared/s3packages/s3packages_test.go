package s3packages_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/s3packages"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestBlobKeyIsContentAddressed(t *testing.T) {
	content := []byte("export const x = 1;\n")
	s512 := sha512.Sum512(content)
	s256 := sha256.Sum256(content)
	cases := map[string]string{
		"sha512-" + base64.StdEncoding.EncodeToString(s512[:]): "blobs/sha512-" + hex.EncodeToString(s512[:]),
		"sha256-" + base64.StdEncoding.EncodeToString(s256[:]): "blobs/sha256-" + hex.EncodeToString(s256[:]),
	}
	for integrity, want := range cases {
		if got, err := s3packages.BlobKey(integrity); err != nil || got != want {
			t.Errorf("BlobKey(%s) = %q, %v; want %q", integrity, got, err, want)
		}
	}
	for _, bad := range []string{
		"", "sha512-", "md5-" + base64.StdEncoding.EncodeToString(s256[:16]),
		"sha512-" + base64.StdEncoding.EncodeToString(s256[:]), // wrong length for sha512
		"sha512-../../secret", "sha256-" + base64.StdEncoding.EncodeToString(s256[:]) + " ",
	} {
		if _, err := s3packages.BlobKey(bad); satellite.ErrorCode(err) != satellite.EINVALID {
			t.Errorf("BlobKey(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestManifestKey(t *testing.T) {
	if got, err := s3packages.ManifestKey("3f2c9a7e"); err != nil || got != "manifests/3f2c9a7e.json" {
		t.Errorf("ManifestKey = %q, %v", got, err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", "a b"} {
		if _, err := s3packages.ManifestKey(bad); satellite.ErrorCode(err) != satellite.EINVALID {
			t.Errorf("ManifestKey(%q) = %v, want EINVALID", bad, err)
		}
	}
}

// TestMissingObjectsReadAsNotFoundOtherDenialsDoNot checks how S3's answers
// map: a missing key is 404 NoSuchKey for callers allowed to list the bucket
// and 403 AccessDenied for the functions (which are not); a 403 for a bad
// credential is a failure, not a missing package. A HEAD's error answer has
// no body (S3 sends none, and Go's server drops one), so the blob's size is
// then asked for with a GET to learn the reason.
func TestMissingObjectsReadAsNotFoundOtherDenialsDoNot(t *testing.T) {
	for _, tc := range []struct {
		status     int
		code, body string
		want       satellite.Code
	}{
		{404, "NoSuchKey", "<Error><Code>NoSuchKey</Code></Error>", satellite.ENOTFOUND},
		{403, "AccessDenied", "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", satellite.ENOTFOUND},
		{403, "InvalidAccessKeyId", "<Error><Code>InvalidAccessKeyId</Code></Error>", satellite.EINTERNAL},
		{403, "SignatureDoesNotMatch", "<Error><Code>SignatureDoesNotMatch</Code></Error>", satellite.EINTERNAL},
		{404, "NoSuchBucket", "<Error><Code>NoSuchBucket</Code></Error>", satellite.EINTERNAL},
		{500, "InternalError", "<Error><Code>InternalError</Code></Error>", satellite.EINTERNAL},
	} {
		var methods []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			methods = append(methods, r.Method)
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		}))
		cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("id", "secret", ""),
			Retryer: func() aws.Retryer { return aws.NopRetryer{} }}
		client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(srv.URL), true })
		objects := s3objects.New(client, s3.NewPresignClient(client), "b")
		store := s3packages.New(objects)
		_, serr := store.BlobSize(context.Background(), scriptpkg.Integrity([]byte("x")))
		sizeMethods := methods
		_, rerr := store.ReadBlob(context.Background(), scriptpkg.Integrity([]byte("x")), 1<<10)
		_, merr := store.Manifest(context.Background(), "lock-1")
		if satellite.ErrorCode(serr) != tc.want || satellite.ErrorCode(rerr) != tc.want || satellite.ErrorCode(merr) != tc.want {
			t.Errorf("%d %s: blob size %v, blob %v, manifest %v; want %s", tc.status, tc.code, serr, rerr, merr, tc.want)
		}
		wantMethods := []string{"HEAD"}
		if tc.status == 403 || tc.status == 404 {
			wantMethods = append(wantMethods, "GET")
		}
		if !slices.Equal(sizeMethods, wantMethods) {
			t.Errorf("%d %s: blob size asked with %v, want %v", tc.status, tc.code, sizeMethods, wantMethods)
		}
		srv.Close()
	}
}

func newStore(t *testing.T) (*s3packages.Store, *s3packages.Publisher, *testenv.Env, *testenv.Calls) {
	t.Helper()
	env := testenv.New(t)
	calls := &testenv.Calls{}
	objects := localaws.Bucket(env.S3Endpoint, env.Bucket, calls.S3Option)
	return s3packages.New(objects), s3packages.NewPublisher(objects), env, calls
}

// TestBlobSizeIsOneHeadAndReadBlobIsVerified runs against the S3 server of
// the test harness, which answers a missing key as S3 does for the
// functions (403 AccessDenied; a HEAD's 403 without a body).
func TestBlobSizeIsOneHeadAndReadBlobIsVerified(t *testing.T) {
	store, publisher, env, calls := newStore(t)
	content := bytes.Repeat([]byte("export const big = 1;\n"), 20000) // 440 KB
	in, err := publisher.PutBlob(ctx, content)
	if err != nil {
		t.Fatal(err)
	}

	calls.Reset()
	size, err := store.BlobSize(ctx, in)
	if err != nil || size != int64(len(content)) {
		t.Fatalf("BlobSize = %d, %v; want %d", size, err, len(content))
	}
	if got := calls.Operations("S3"); !slices.Equal(got, []string{"HeadObject"}) {
		t.Errorf("BlobSize made %v, want one HeadObject (the blob is never opened)", got)
	}

	calls.Reset()
	missing := scriptpkg.Integrity([]byte("never published"))
	if _, err := store.BlobSize(ctx, missing); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("BlobSize of a missing blob: %v, want ENOTFOUND", err)
	}
	if got := calls.Operations("S3"); !slices.Equal(got, []string{"HeadObject", "GetObject"}) {
		t.Errorf("a missing blob's size made %v, want HeadObject then GetObject (to tell a missing key from a refused request)", got)
	}
	if _, err := store.ReadBlob(ctx, missing, 1<<20); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("ReadBlob of a missing blob: %v, want ENOTFOUND", err)
	}

	data, err := store.ReadBlob(ctx, in, size)
	if err != nil || !bytes.Equal(data, content) {
		t.Fatalf("ReadBlob = %d bytes, %v", len(data), err)
	}
	if _, err := store.ReadBlob(ctx, in, size-1); satellite.ErrorCode(err) != satellite.EINTERNAL {
		t.Errorf("ReadBlob with a bound under the size: %v, want EINTERNAL", err)
	}

	// Content stored under another blob's address is never returned.
	forged := scriptpkg.Integrity([]byte("what the manifest promised"))
	key, _ := s3packages.BlobKey(forged)
	env.PutObject(t, key, []byte("something else"))
	if _, err := store.ReadBlob(ctx, forged, 1<<20); satellite.ErrorCode(err) != satellite.EINTERNAL || !strings.Contains(err.Error(), "does not match its integrity") {
		t.Errorf("ReadBlob of content under the wrong address: %v, want EINTERNAL naming the mismatch", err)
	}
	if _, err := store.BlobSize(ctx, "sha512-notbase64!!"); satellite.ErrorCode(err) != satellite.EINVALID {
		t.Errorf("BlobSize of a malformed integrity: %v, want EINVALID", err)
	}
}

// TestManifestIsServedOnlyUnderItsOwnHash runs against the S3 server of
// the test harness: a manifest is returned only when its entries hash to
// the lockfile hash it is stored under and its document says that hash;
// anything else stored under the name is answered as nothing published
// (ENOTFOUND: satellites get empty entries) and logged as an error, with
// the hashes and no entry.
func TestManifestIsServedOnlyUnderItsOwnHash(t *testing.T) {
	store, publisher, env, _ := newStore(t)
	entries := []satellite.ManifestEntry{{Name: "probe", Version: "1.0.0", Integrity: scriptpkg.Integrity([]byte("probe"))}}
	hash, err := publisher.PutManifest(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("published", func(t *testing.T) {
		got, err := store.Manifest(ctx, hash)
		if err != nil || !slices.Equal(got, entries) {
			t.Errorf("Manifest = %v, %v; want %v", got, err, entries)
		}
	})
	other := []satellite.ManifestEntry{{Name: "other", Version: "2.0.0", Integrity: scriptpkg.Integrity([]byte("other"))}}
	for _, tc := range []struct {
		name, under string
		doc         scriptpkg.Manifest
	}{
		{"entries of another lockfile", "lock-named-by-hand", scriptpkg.Manifest{LockfileHash: "lock-named-by-hand", Entries: entries}},
		{"another manifest over a published one", hash, scriptpkg.Manifest{LockfileHash: hash, Entries: other}},
		{"a document naming another hash", scriptpkg.LockfileHash(other), scriptpkg.Manifest{LockfileHash: hash, Entries: other}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testenv.SafeBuffer
			store.Log = slog.New(slog.NewJSONHandler(&logs, nil))
			key, _ := s3packages.ManifestKey(tc.under)
			doc, _ := json.Marshal(tc.doc)
			env.PutObject(t, key, doc)
			got, err := store.Manifest(ctx, tc.under)
			if satellite.ErrorCode(err) != satellite.ENOTFOUND || got != nil {
				t.Errorf("Manifest = %v, %v; want ENOTFOUND, as for a hash nothing was published under", got, err)
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(logs.String()), &line); err != nil || line["level"] != "ERROR" || line["lockfileHash"] != tc.under {
				t.Errorf("log = %q (%v); want one error line naming lockfile %s", logs.String(), err, tc.under)
			}
			if strings.Contains(logs.String(), "sha512-") {
				t.Errorf("log line carries the manifest's entries: %s", logs.String())
			}
		})
	}
}

var ctx = context.Background()
