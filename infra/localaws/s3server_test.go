package localaws_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/shared/s3objects"
)

// startWithBucket starts a local S3 server (persisted in dbFile, or in
// memory when it is "") holding bucket "b", stopped when the test ends.
func startWithBucket(t *testing.T, dbFile string) *localaws.S3Server {
	t.Helper()
	srv, err := localaws.StartS3("127.0.0.1:0", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := srv.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	return srv
}

// pathStyleClient is the SDK's S3 client of srv.
func pathStyleClient(srv *localaws.S3Server) *s3.Client {
	return s3.NewFromConfig(localaws.AWSConfig(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
	})
}

// TestMissingKeysAreAccessDeniedAsOnAWS checks the local S3 server answers a
// missing key as S3 answers a caller without s3:ListBucket (every function):
// 403 AccessDenied, while present keys and other buckets' errors are as usual.
func TestMissingKeysAreAccessDeniedAsOnAWS(t *testing.T) {
	srv := startWithBucket(t, "")
	ctx := context.Background()
	client := pathStyleClient(srv)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("blobs/present"), Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("blobs/present")}); err != nil {
		t.Errorf("GET of a present key: %v", err)
	}
	for name, call := range map[string]func() error{
		"GET": func() error {
			_, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("blobs/missing")})
			return err
		},
		"HEAD": func() error {
			_, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("blobs/missing")})
			return err
		},
	} {
		err := call()
		var resp *awshttp.ResponseError
		if !errors.As(err, &resp) || resp.HTTPStatusCode() != 403 {
			t.Errorf("%s of a missing key: %v, want HTTP 403", name, err)
		}
		var api smithy.APIError
		if name == "GET" && (!errors.As(err, &api) || api.ErrorCode() != "AccessDenied") {
			t.Errorf("GET of a missing key: %v, want AccessDenied", err)
		}
	}
}

// TestConditionalWritesNeverReplaceAnObject checks the local S3 server
// answers a conditional write (If-None-Match: *) as S3 documents it: the
// first write of a key stores it; a write of a key that holds an object is
// refused with 412 PreconditionFailed and leaves the object as it was
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html),
// in memory and in the bolt database of a persisted local stack, through
// the SDK's client and through the functions' own (s3objects).
func TestConditionalWritesNeverReplaceAnObject(t *testing.T) {
	for name, dbFile := range map[string]string{"in memory": "", "persisted": filepath.Join(t.TempDir(), "s3.db")} {
		t.Run(name, func(t *testing.T) {
			srv := startWithBucket(t, dbFile)
			ctx := context.Background()
			client := pathStyleClient(srv)
			create := func(key, body string) error {
				_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Body: strings.NewReader(body), IfNoneMatch: aws.String("*")})
				return err
			}
			read := func(key string) string {
				t.Helper()
				out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key)})
				if err != nil {
					t.Fatal(err)
				}
				defer out.Body.Close()
				b, _ := io.ReadAll(out.Body)
				return string(b)
			}
			if err := create("telemetry/a", "first"); err != nil {
				t.Fatalf("first conditional write: %v", err)
			}
			err := create("telemetry/a", "second")
			var resp *awshttp.ResponseError
			var api smithy.APIError
			if !errors.As(err, &resp) || resp.HTTPStatusCode() != 412 || !errors.As(err, &api) || api.ErrorCode() != "PreconditionFailed" {
				t.Errorf("second conditional write: %v, want 412 PreconditionFailed", err)
			}
			if got := read("telemetry/a"); got != "first" {
				t.Errorf("object after a refused conditional write: %q, want the first", got)
			}

			bucket := localaws.Bucket(srv.URL, "b")
			if err := bucket.Create(ctx, "telemetry/b", []byte("first"), "text/plain", nil); err != nil {
				t.Fatalf("Create of a new key: %v", err)
			}
			for _, key := range []string{"telemetry/a", "telemetry/b"} {
				if err := bucket.Create(ctx, key, []byte("again"), "text/plain", nil); !s3objects.Exists(err) {
					t.Errorf("Create of the existing %s: %v, want 412", key, err)
				}
				if got := read(key); got != "first" {
					t.Errorf("%s after Create of an existing key: %q, want the first", key, got)
				}
			}
			// An unconditional write still replaces (what Put is for).
			if err := bucket.Put(ctx, "telemetry/b", []byte("replaced"), "text/plain", nil); err != nil || read("telemetry/b") != "replaced" {
				t.Errorf("Put over an existing key: %v, %q", err, read("telemetry/b"))
			}
		})
	}
}

// TestFunctionsPutsReachTheLocalServerWithTheSDKsChecksum pins what the
// functions' S3 client sends with its default checksums
// (RequestChecksumCalculation WhenSupported, the AWS SDKs' default since
// early 2025): over plain HTTP, as to this server, a PUT carries its CRC32
// in the x-amz-checksum-crc32 header and a signed payload hash, never an
// aws-chunked body with a trailing checksum (which the SDK sends only over
// TLS, to S3 itself, and which gofakes3 does not decode). What is stored is
// the body, byte for byte.
func TestFunctionsPutsReachTheLocalServerWithTheSDKsChecksum(t *testing.T) {
	srv := startWithBucket(t, "")
	target, _ := url.Parse(srv.URL)
	var mu sync.Mutex
	var puts []http.Header
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			mu.Lock()
			puts = append(puts, r.Header.Clone())
			mu.Unlock()
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	defer proxy.Close()

	body := bytes.Repeat([]byte("export const x = 1;\n"), 5000)
	bucket := localaws.Bucket(proxy.URL, "b")
	if err := bucket.Create(context.Background(), "telemetry/x", body, "application/json", nil); err != nil {
		t.Fatal(err)
	}
	got, _, err := bucket.Get(context.Background(), "telemetry/x")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if stored, _ := io.ReadAll(got); !bytes.Equal(stored, body) {
		t.Errorf("stored %d bytes, want the %d sent", len(stored), len(body))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(puts) != 1 {
		t.Fatalf("%d PUTs", len(puts))
	}
	h := puts[0]
	sum := crc32.ChecksumIEEE(body)
	want := base64.StdEncoding.EncodeToString([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	if h.Get("X-Amz-Checksum-Crc32") != want || strings.Contains(h.Get("Content-Encoding"), "aws-chunked") ||
		strings.HasPrefix(h.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		t.Errorf("PUT headers: checksum %q (want %q), content encoding %q, payload hash %q",
			h.Get("X-Amz-Checksum-Crc32"), want, h.Get("Content-Encoding"), h.Get("X-Amz-Content-Sha256"))
	}
}
