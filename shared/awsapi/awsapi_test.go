package awsapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/checkstack/satellite-backend/shared/awsapi"
)

// recorder is an HTTP client that keeps the request and answers 200.
type recorder struct{ req *http.Request }

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	r.req = req
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
}

// exampleClient has the credentials, region and time of AWS's published
// SigV4 examples for S3.
func exampleClient(http aws.HTTPClient) *awsapi.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""),
		HTTPClient:  http,
	}
	return awsapi.New(cfg, awsapi.Options{Now: func() time.Time { return time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC) }})
}

// TestS3RequestsCarryAWSsDocumentedSignatures signs AWS's own S3 examples (a
// GET Object with a Range header, and a presigned GET valid for a day) and
// compares with the signatures AWS documents for them: the request the
// client builds (host, path, headers, payload hash) is what S3 verifies.
func TestS3RequestsCarryAWSsDocumentedSignatures(t *testing.T) {
	rec := &recorder{}
	c := exampleClient(rec)
	u, _ := url.Parse("https://examplebucket.s3.amazonaws.com/test.txt")
	resp, err := c.Do(context.Background(), awsapi.Request{
		Service: "s3", ServiceID: "S3", Operation: "GetObject", Method: http.MethodGet, URL: u, S3: true,
		Header: http.Header{"Range": {"bytes=0-9"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if got := rec.req.Header.Get("Authorization"); got != want {
		t.Errorf("GET Object Authorization =\n %s\nwant\n %s", got, want)
	}

	signed, err := c.Presign(context.Background(), awsapi.Request{
		Service: "s3", ServiceID: "S3", Operation: "PresignGetObject", Method: http.MethodGet, URL: u, S3: true,
	}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := url.Parse(signed)
	if sig := got.Query().Get("X-Amz-Signature"); sig != "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404" {
		t.Errorf("presigned URL %s\nhas signature %s", signed, sig)
	}
}

func TestErrorsAreDecodedFromEveryShape(t *testing.T) {
	for name, tc := range map[string]struct {
		status       int
		header, body string
		code, msg    string
	}{
		"JSON 1.1":         {400, "", `{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","message":"no such secret"}`, "ResourceNotFoundException", "no such secret"},
		"REST JSON header": {410, "GoneException:http://internal.amazon.com/", `{"message":null}`, "GoneException", ""},
		"S3 XML":           {403, "", `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`, "AccessDenied", "Access Denied"},
		"no body":          {404, "", ``, "Not Found", ""},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("X-Amzn-ErrorType", tc.header)
				}
				w.Header().Set("X-Amzn-RequestId", "req-1")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c := exampleClient(nil)
			u, _ := url.Parse(srv.URL + "/x")
			_, err := c.Do(context.Background(), awsapi.Request{Service: "s3", ServiceID: "S3", Operation: "GetObject", Method: http.MethodGet, URL: u})
			e, ok := err.(*awsapi.Error)
			if !ok || e.StatusCode != tc.status || e.Code != tc.code || e.Message != tc.msg || e.RequestID != "req-1" {
				t.Errorf("error = %#v, want status %d code %q message %q", err, tc.status, tc.code, tc.msg)
			}
			if !awsapi.IsStatus(err, tc.status) {
				t.Errorf("IsStatus(%d) is false", tc.status)
			}
		})
	}
}

// TestRetriesWhatTheSDKRetries checks throttling and 5xx answers are tried
// again (up to the retryer's attempts) and client errors are not.
func TestRetriesWhatTheSDKRetries(t *testing.T) {
	var calls atomic.Int32
	answers := map[string]int{"/throttled": 400, "/unavailable": 503, "/forbidden": 403}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		status := answers[r.URL.Path]
		w.WriteHeader(status)
		if status == 400 {
			_, _ = io.WriteString(w, `{"__type":"ThrottlingException","message":"slow down"}`)
		}
	}))
	defer srv.Close()
	cfg := aws.Config{
		Region:      "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider("id", "secret", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		},
	}
	c := awsapi.New(cfg, awsapi.Options{})
	for path, want := range map[string]int32{"/throttled": 3, "/unavailable": 3, "/forbidden": 1} {
		calls.Store(0)
		u, _ := url.Parse(srv.URL + path)
		_, err := c.Do(context.Background(), awsapi.Request{Service: "events", ServiceID: "EventBridge", Operation: "PutEvents", Method: http.MethodPost, URL: u, Body: []byte("{}")})
		if err == nil || calls.Load() != want {
			t.Errorf("%s: %d attempts (%v), want %d", path, calls.Load(), err, want)
		}
	}
}

func TestEndpointsFollowThePartition(t *testing.T) {
	for region, want := range map[string]string{
		"eu-central-1": "https://events.eu-central-1.amazonaws.com",
		"cn-north-1":   "https://events.cn-north-1.amazonaws.com.cn",
	} {
		c := awsapi.New(aws.Config{Region: region}, awsapi.Options{})
		if got := c.Endpoint("events", ""); got != want {
			t.Errorf("%s: %s, want %s", region, got, want)
		}
		if got := c.Endpoint("events", "http://127.0.0.1:9/"); got != "http://127.0.0.1:9" {
			t.Errorf("override: %s", got)
		}
	}
}

func TestPathEscaping(t *testing.T) {
	if got := awsapi.EscapePath("blobs/sha512-ab cd=é"); got != "blobs/sha512-ab%20cd%3D%C3%A9" {
		t.Errorf("EscapePath = %s", got)
	}
	if got := awsapi.EscapeSegment("abc=/d"); got != "abc%3D%2Fd" {
		t.Errorf("EscapeSegment = %s", got)
	}
}

// flakyTransport fails its first calls as a connection AWS closed while it
// sat idle in the pool, then answers 200.
type flakyTransport struct {
	failures int
	calls    atomic.Int32
}

func (f *flakyTransport) Do(req *http.Request) (*http.Response, error) {
	if int(f.calls.Add(1)) <= f.failures {
		return nil, &url.Error{Op: req.Method, URL: req.URL.String(), Err: io.EOF}
	}
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Header: http.Header{}}, nil
}

// TestDroppedConnectionsAreRetried checks a request whose connection broke
// is sent again, as the SDK does.
func TestDroppedConnectionsAreRetried(t *testing.T) {
	transport := &flakyTransport{failures: 2}
	c := exampleClient(transport)
	u, _ := url.Parse("https://events.us-east-1.amazonaws.com/")
	resp, err := c.Do(context.Background(), awsapi.Request{Service: "events", ServiceID: "EventBridge", Operation: "PutEvents", Method: http.MethodPost, URL: u, Body: []byte("{}")})
	if err != nil || transport.calls.Load() != 3 {
		t.Fatalf("after 2 dropped connections: %v, %d attempts; want success on the third", err, transport.calls.Load())
	}
	resp.Body.Close()
}

// TestAnEndedContextDuringBackOffIsAnError checks a call whose deadline
// passes while it waits to retry returns the call's error, never a nil
// response without one.
func TestAnEndedContextDuringBackOffIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"message":"slow down"}`)
	}))
	defer srv.Close()
	cfg := aws.Config{
		Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("id", "secret", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Hour, nil })
			})
		},
	}
	c := awsapi.New(cfg, awsapi.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	u, _ := url.Parse(srv.URL + "/@connections/abc%3D")
	resp, err := c.Do(ctx, awsapi.Request{Service: "execute-api", ServiceID: "ApiGatewayManagementApi", Operation: "PostToConnection", Method: http.MethodPost, URL: u, Body: []byte("{}")})
	if err == nil || resp != nil || !awsapi.IsStatus(err, http.StatusTooManyRequests) {
		t.Errorf("Do = %v, %v; want the 429 error", resp, err)
	}
}
