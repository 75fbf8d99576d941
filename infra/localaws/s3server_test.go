package localaws_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/checkstack/satellite-backend/infra/localaws"
)

// TestMissingKeysAreAccessDeniedAsOnAWS checks the local S3 server answers a
// missing key as S3 answers a caller without s3:ListBucket (every function):
// 403 AccessDenied, while present keys and other buckets' errors are as usual.
func TestMissingKeysAreAccessDeniedAsOnAWS(t *testing.T) {
	srv, err := localaws.StartS3("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := srv.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := s3.NewFromConfig(localaws.AWSConfig(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
	})
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
