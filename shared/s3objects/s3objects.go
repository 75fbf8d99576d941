// Package s3objects reads, writes, lists and presigns the objects of one S3
// bucket through the project's SigV4 client (no S3 service client: see the
// Cold start in docs/COST.md).
package s3objects

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/shared/awsapi"
)

// Bucket reads, writes, lists and presigns the objects of one S3 bucket.
type Bucket struct {
	api    *awsapi.Client
	bucket string
	// base is the URL an object key is appended to: the bucket's virtual
	// host, or the endpoint and the bucket in the path.
	base *url.URL
}

// New returns access to bucket. endpoint overrides S3's regional
// endpoint when not empty; pathStyle puts the bucket in the path instead of
// the host name (S3-compatible local servers).
func New(api *awsapi.Client, bucket, endpoint string, pathStyle bool) (*Bucket, error) {
	base, err := url.Parse(api.Endpoint("s3", endpoint))
	if err != nil {
		return nil, err
	}
	if pathStyle {
		base.Path = strings.TrimRight(base.Path, "/") + "/" + bucket
	} else {
		base.Host = bucket + "." + base.Host
	}
	return &Bucket{api: api, bucket: bucket, base: base}, nil
}

func (o *Bucket) url(key string) *url.URL {
	u := *o.base
	escaped := strings.TrimRight(u.EscapedPath(), "/") + "/" + awsapi.EscapePath(key)
	u.Path, _ = url.PathUnescape(escaped)
	u.RawPath = escaped
	return &u
}

func (o *Bucket) request(operation, method, key string, body []byte) awsapi.Request {
	return awsapi.Request{
		Service: "s3", ServiceID: "S3", Operation: operation, Resource: key,
		Method: method, URL: o.url(key), Body: body, S3: true,
	}
}

// Get returns an object's body (the caller closes it) and its size. A
// missing key is an *awsapi.Error with status 404, or 403 for a caller
// without s3:ListBucket.
func (o *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	resp, err := o.api.Do(ctx, o.request("GetObject", http.MethodGet, key, nil))
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// Head returns an object's size without reading it. A missing key is an
// *awsapi.Error with status 404, or 403 for a caller without s3:ListBucket;
// an error answer to a HEAD has no body, so its Code is only the status
// text ("Forbidden"), whatever S3's reason.
func (o *Bucket) Head(ctx context.Context, key string) (int64, error) {
	resp, err := o.api.Do(ctx, o.request("HeadObject", http.MethodHead, key, nil))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("S3 HeadObject %s: no Content-Length in the answer", key)
	}
	return resp.ContentLength, nil
}

// Put stores an object with a content type and user metadata
// (x-amz-meta-*), replacing any object under the key. The body is signed, so
// S3 refuses a corrupted upload.
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
	return o.put(ctx, key, body, contentType, metadata, http.Header{"If-None-Match": {"*"}})
}

// Exists reports whether err is S3's answer to Create for a key that
// already holds an object (412 Precondition Failed).
func Exists(err error) bool { return awsapi.IsStatus(err, http.StatusPreconditionFailed) }

func (o *Bucket) put(ctx context.Context, key string, body []byte, contentType string, metadata map[string]string, conditions http.Header) error {
	r := o.request("PutObject", http.MethodPut, key, body)
	sum := sha256.Sum256(body)
	r.PayloadHash = hex.EncodeToString(sum[:])
	r.Header = http.Header{"Content-Type": {contentType}}
	for k, v := range metadata {
		r.Header.Set("X-Amz-Meta-"+k, v)
	}
	for k, v := range conditions {
		r.Header[k] = v
	}
	resp, err := o.api.Do(ctx, r)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// PresignGet returns a plain-GET URL of an object, valid for ttl.
func (o *Bucket) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return o.api.Presign(ctx, o.request("PresignGetObject", http.MethodGet, key, nil), ttl)
}

// Object is one listed object.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// listResult is the part of a ListObjectsV2 answer read here.
type listResult struct {
	Contents []struct {
		Key          string
		Size         int64
		LastModified time.Time
	}
	IsTruncated           bool
	NextContinuationToken string
}

// maxListedBytes bounds how much of one ListObjectsV2 answer is read (a
// page of 1,000 keys is well under it).
const maxListedBytes = 8 << 20

// List calls fn with the objects whose keys start with prefix, in key order,
// from the first key after startAfter ("" from the start), page by page,
// until fn returns false. It needs s3:ListBucket on the bucket.
func (o *Bucket) List(ctx context.Context, prefix, startAfter string, fn func(Object) bool) error {
	token := ""
	for {
		u := *o.base
		if u.Path == "" {
			u.Path = "/"
		}
		q := url.Values{"list-type": {"2"}, "prefix": {prefix}, "max-keys": {strconv.Itoa(1000)}}
		if token != "" {
			q.Set("continuation-token", token)
		} else if startAfter != "" {
			q.Set("start-after", startAfter)
		}
		u.RawQuery = q.Encode()
		resp, err := o.api.Do(ctx, awsapi.Request{
			Service: "s3", ServiceID: "S3", Operation: "ListObjectsV2", Resource: prefix,
			Method: http.MethodGet, URL: &u, S3: true,
		})
		if err != nil {
			return err
		}
		var page listResult
		err = xml.NewDecoder(io.LimitReader(resp.Body, maxListedBytes)).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return err
		}
		for _, c := range page.Contents {
			if !fn(Object{Key: c.Key, Size: c.Size, LastModified: c.LastModified}) {
				return nil
			}
		}
		if !page.IsTruncated || page.NextContinuationToken == "" {
			return nil
		}
		token = page.NextContinuationToken
	}
}
