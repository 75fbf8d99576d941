package s3packages_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/s3packages"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

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
// credential is a failure, not a missing package.
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
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		}))
		cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("id", "secret", ""),
			Retryer: func() aws.Retryer { return aws.NopRetryer{} }}
		objects, err := s3objects.New(awsapi.New(cfg, awsapi.Options{}), "b", srv.URL, true)
		if err != nil {
			t.Fatal(err)
		}
		store := s3packages.New(objects)
		_, err = store.OpenBlob(context.Background(), scriptpkg.Integrity([]byte("x")))
		_, merr := store.Manifest(context.Background(), "lock-1")
		if satellite.ErrorCode(err) != tc.want || satellite.ErrorCode(merr) != tc.want {
			t.Errorf("%d %s: blob %v, manifest %v; want %s", tc.status, tc.code, err, merr, tc.want)
		}
		srv.Close()
	}
}
