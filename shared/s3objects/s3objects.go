// Package s3objects reads, writes, lists and presigns the objects of one S3
// bucket through the AWS SDK's S3 client, and tells S3's answers apart by
// their HTTP status and error code.
package s3objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// API is the part of the S3 client a Bucket calls.
type API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// Presigner is the part of the S3 presign client a Bucket calls.
type Presigner interface {
	PresignGetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
}

var (
	_ API       = (*s3.Client)(nil)
	_ Presigner = (*s3.PresignClient)(nil)
)

// Bucket reads, writes, lists and presigns the objects of one S3 bucket.
type Bucket struct {
	api     API
	presign Presigner
	bucket  string
}

// New returns access to bucket through api, with URLs presigned by
// presign. The clients carry the endpoint and the addressing style (a
// local S3-compatible server needs path-style addressing).
func New(api API, presign Presigner, bucket string) *Bucket {
	return &Bucket{api: api, presign: presign, bucket: bucket}
}

// Status returns the HTTP status of S3's answer when err is one, else 0.
func Status(err error) int {
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) {
		return resp.HTTPStatusCode()
	}
	return 0
}

// Code returns S3's error code when err is an error answer ("NoSuchKey",
// "AccessDenied"), else "". An error answer to a HEAD has no body, so its
// code is only named after the status ("NotFound", "Forbidden"), whatever
// S3's reason.
func Code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// Get returns an object's body (the caller closes it) and its size (-1
// when S3 gave none). A missing key is an error answer with status 404
// (NoSuchKey), or 403 (AccessDenied) for a caller without s3:ListBucket.
func (o *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	out, err := o.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, 0, err
	}
	if out.ContentLength == nil {
		return out.Body, -1, nil
	}
	return out.Body, *out.ContentLength, nil
}

// Head returns an object's size without reading it. A missing key is an
// error answer with status 404, or 403 for a caller without s3:ListBucket;
// see Code for what such an answer says.
func (o *Bucket) Head(ctx context.Context, key string) (int64, error) {
	out, err := o.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(key)})
	if err != nil {
		return 0, err
	}
	if out.ContentLength == nil || *out.ContentLength < 0 {
		return 0, fmt.Errorf("S3 HeadObject %s: no Content-Length in the answer", key)
	}
	return *out.ContentLength, nil
}

// Put stores an object with a content type and user metadata
// (x-amz-meta-*), replacing any object under the key. The SDK sends a
// checksum of the body (CRC32, its default), so S3 refuses a corrupted
// upload.
func (o *Bucket) Put(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string) error {
	return o.put(ctx, key, body, contentType, metadata, nil)
}

// Create stores an object as Put does, but only if no object has the key: a
// conditional write (If-None-Match: *), which S3 answers 412 Precondition
// Failed when the key exists (Exists reports it) and never replaces what is
// there. Two conditional writes of one key at once may get 409
// ConditionalRequestConflict instead, which is worth retrying. See
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html.
func (o *Bucket) Create(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string) error {
	return o.put(ctx, key, body, contentType, metadata, aws.String("*"))
}

// Exists reports whether err is S3's answer to Create for a key that
// already holds an object (412 Precondition Failed).
func Exists(err error) bool { return Status(err) == http.StatusPreconditionFailed }

func (o *Bucket) put(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string, ifNoneMatch *string) error {
	_, err := o.api.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(o.bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
		ContentType: aws.String(contentType), Metadata: metadata, IfNoneMatch: ifNoneMatch,
	})
	return err
}

// PresignGet returns a plain-GET URL of an object, valid for ttl. It sends
// no request.
func (o *Bucket) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	req, err := o.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(key)}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", err
	}
	return req.URL, nil
}

// Object is one listed object.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// List calls fn with the objects whose keys start with prefix, in key order,
// from the first key after startAfter ("" from the start), page by page,
// until fn returns false. It needs s3:ListBucket on the bucket.
func (o *Bucket) List(ctx context.Context, prefix, startAfter string, fn func(Object) bool) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(o.bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(1000)}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	for {
		page, err := o.api.ListObjectsV2(ctx, in)
		if err != nil {
			return err
		}
		for _, c := range page.Contents {
			if !fn(Object{Key: aws.ToString(c.Key), Size: aws.ToInt64(c.Size), LastModified: aws.ToTime(c.LastModified)}) {
				return nil
			}
		}
		if !aws.ToBool(page.IsTruncated) || aws.ToString(page.NextContinuationToken) == "" {
			return nil
		}
		in.ContinuationToken, in.StartAfter = page.NextContinuationToken, nil
	}
}
