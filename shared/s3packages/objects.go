package s3packages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/shared/awsapi"
)

// Objects reads, writes and presigns the objects of one S3 bucket.
type Objects struct {
	api    *awsapi.Client
	bucket string
	// base is the URL an object key is appended to: the bucket's virtual
	// host, or the endpoint and the bucket in the path.
	base *url.URL
}

// NewObjects returns access to bucket. endpoint overrides S3's regional
// endpoint when not empty; pathStyle puts the bucket in the path instead of
// the host name (S3-compatible local servers).
func NewObjects(api *awsapi.Client, bucket, endpoint string, pathStyle bool) (*Objects, error) {
	base, err := url.Parse(api.Endpoint("s3", endpoint))
	if err != nil {
		return nil, err
	}
	if pathStyle {
		base.Path = strings.TrimRight(base.Path, "/") + "/" + bucket
	} else {
		base.Host = bucket + "." + base.Host
	}
	return &Objects{api: api, bucket: bucket, base: base}, nil
}

func (o *Objects) url(key string) *url.URL {
	u := *o.base
	escaped := strings.TrimRight(u.EscapedPath(), "/") + "/" + awsapi.EscapePath(key)
	u.Path, _ = url.PathUnescape(escaped)
	u.RawPath = escaped
	return &u
}

func (o *Objects) request(operation, method, key string, body []byte) awsapi.Request {
	return awsapi.Request{
		Service: "s3", ServiceID: "S3", Operation: operation, Resource: key,
		Method: method, URL: o.url(key), Body: body, S3: true,
	}
}

// Get returns an object's body (the caller closes it) and its size. A
// missing key is an *awsapi.Error with status 404, or 403 for a caller
// without s3:ListBucket.
func (o *Objects) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	resp, err := o.api.Do(ctx, o.request("GetObject", http.MethodGet, key, nil))
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// Put stores an object with a content type and user metadata
// (x-amz-meta-*). The body is signed, so S3 refuses a corrupted upload.
func (o *Objects) Put(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string) error {
	r := o.request("PutObject", http.MethodPut, key, body)
	sum := sha256.Sum256(body)
	r.PayloadHash = hex.EncodeToString(sum[:])
	r.Header = http.Header{"Content-Type": {contentType}}
	for k, v := range metadata {
		r.Header.Set("X-Amz-Meta-"+k, v)
	}
	resp, err := o.api.Do(ctx, r)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// PresignGet returns a plain-GET URL of an object, valid for ttl.
func (o *Objects) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return o.api.Presign(ctx, o.request("PresignGetObject", http.MethodGet, key, nil), ttl)
}
