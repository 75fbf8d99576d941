// Package awsapi sends requests to the AWS APIs the functions call besides
// DynamoDB: S3 object reads, writes and presigned URLs, EventBridge and
// Secrets Manager (AWS JSON 1.1), SQS (AWS JSON 1.0), and the API Gateway
// Management API. It signs with the SDK's SigV4 signer, retries with the
// SDK's standard retryer and decodes AWS's error shapes, but links none of
// the SDK's service clients: each adds between a quarter and a whole megabyte to every
// function binary that links it, and a Lambda's cold start grows with its
// binary. The adapters (s3packages, eventbus, awssecrets, mgmtapi,
// sqsqueue) build their requests on it.
package awsapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/checkstack/satellite-backend/shared/awspartition"
	"github.com/checkstack/satellite-backend/shared/phases"
)

// UnsignedPayload is the payload hash of a request whose body is not signed
// (S3 presigned URLs).
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// MaxIdleConnsPerHost is how many idle connections to one host the client
// keeps for reuse: more than a fan-out worker posts at once.
const MaxIdleConnsPerHost = 64

// Request is one API call.
type Request struct {
	// Service is the SigV4 signing name: "s3", "events", "secretsmanager",
	// "execute-api".
	Service string
	// ServiceID and Operation name the call the way the SDK does ("S3",
	// "GetObject"), for errors and observers.
	ServiceID, Operation string
	// Resource is what the call is about (an object key, a secret id, a
	// connection id), for observers; never a secret value.
	Resource string

	Method string
	URL    *url.URL
	Header http.Header
	Body   []byte
	// PayloadHash is the hex SHA-256 of Body, computed when empty.
	PayloadHash string
	// S3 signs the path as it is sent (S3 does not double-encode it) and
	// wants the payload hash in X-Amz-Content-Sha256.
	S3 bool
}

// Observer sees every call before it is sent, without its body (tests
// count them).
type Observer func(Request)

// Client signs and sends requests for one account and region.
type Client struct {
	http        aws.HTTPClient
	credentials aws.CredentialsProvider
	region      string
	retryer     aws.Retryer
	signer      *v4.Signer
	now         func() time.Time
	observe     Observer
}

// Options adjusts a Client; the zero value is production.
type Options struct {
	// Observe, when set, sees every call.
	Observe Observer
	// Now is the signing clock; time.Now when nil.
	Now func() time.Time
}

// New returns a client with cfg's region, credentials, HTTP client and
// retryer (the SDK's standard one when cfg has none).
func New(cfg aws.Config, opts Options) *Client {
	c := &Client{
		http:        cfg.HTTPClient,
		credentials: cfg.Credentials,
		region:      cfg.Region,
		signer:      v4.NewSigner(),
		now:         opts.Now,
		observe:     opts.Observe,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.http == nil {
		// A fan-out posts to one host from many goroutines at once: keep
		// a connection for each (the SDK's default keeps 10 per host and
		// closes the rest, so each post beyond 10 would open a TLS
		// connection of its own).
		c.http = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		})
	}
	if cfg.Retryer != nil {
		c.retryer = cfg.Retryer()
	} else {
		c.retryer = retry.NewStandard()
	}
	return c
}

// Region is the client's region.
func (c *Client) Region() string { return c.region }

// Endpoint returns override when set, else the regional endpoint of a
// service in the region's partition: https://{prefix}.{region}.{suffix}.
func (c *Client) Endpoint(prefix, override string) string {
	if override != "" {
		return strings.TrimRight(override, "/")
	}
	return fmt.Sprintf("https://%s.%s.%s", prefix, c.region, awspartition.DNSSuffix(c.region))
}

// Error is an error answer of an AWS API. It satisfies smithy.APIError, and
// the SDK's retryer reads its status code and error code.
type Error struct {
	ServiceID, Operation string
	StatusCode           int
	Code, Message        string
	RequestID            string
}

var _ smithy.APIError = (*Error)(nil)

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("%s %s: %d %s: %s (request id %s)", e.ServiceID, e.Operation, e.StatusCode, e.Code, msg, e.RequestID)
}

// ErrorCode is AWS's error code, e.g. "NoSuchKey", "ThrottlingException".
func (e *Error) ErrorCode() string { return e.Code }

// ErrorMessage is AWS's error message.
func (e *Error) ErrorMessage() string { return e.Message }

// ErrorFault says whether the caller or the service is at fault.
func (e *Error) ErrorFault() smithy.ErrorFault {
	if e.StatusCode >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

// HTTPStatusCode is the response's status.
func (e *Error) HTTPStatusCode() int { return e.StatusCode }

// Do sends r, retrying what the SDK's standard retryer retries (throttling,
// 5xx, broken connections) with its back-off, and returns the response of a
// 2xx answer with its body unread: the caller closes it. Any other answer is
// an *Error.
func (c *Client) Do(ctx context.Context, r Request) (*http.Response, error) {
	c.notify(r)
	defer phases.Since(ctx, phases.ForService(r.ServiceID), time.Now())
	if r.PayloadHash == "" {
		sum := sha256.Sum256(r.Body)
		r.PayloadHash = hex.EncodeToString(sum[:])
	}
	release := c.retryer.GetInitialToken()
	for attempt := 1; ; attempt++ {
		resp, err := c.send(ctx, r)
		if err == nil {
			_ = release(nil)
			return resp, nil
		}
		if ctx.Err() != nil || attempt >= c.retryer.MaxAttempts() || !c.retryer.IsErrorRetryable(err) {
			return nil, err
		}
		// Out of retry tokens (the retryer's guard against retry storms):
		// the call's own error stands.
		next, terr := c.retryer.GetRetryToken(ctx, err)
		if terr != nil {
			return nil, err
		}
		release = next
		delay, derr := c.retryer.RetryDelay(attempt, err)
		if derr != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
	}
}

// notify tells the observer about a call, without its body: a body can
// carry what a satellite must receive and nobody else see (run secrets).
func (c *Client) notify(r Request) {
	if c.observe != nil {
		r.Body = nil
		c.observe(r)
	}
}

func (c *Client) send(ctx context.Context, r Request) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL.String(), bytes.NewReader(r.Body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(r.Body))
	for k, vs := range r.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	creds, err := c.credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s %s: credentials: %w", r.ServiceID, r.Operation, err)
	}
	var opts []func(*v4.SignerOptions)
	if r.S3 {
		req.Header.Set("X-Amz-Content-Sha256", r.PayloadHash)
		opts = append(opts, func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	}
	if err := c.signer.SignHTTP(ctx, creds, req, r.PayloadHash, r.Service, c.region, c.now().UTC(), opts...); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &connectionError{op: r.ServiceID + " " + r.Operation, err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{ServiceID: r.ServiceID, Operation: r.Operation, StatusCode: resp.StatusCode, RequestID: requestID(resp.Header)}
	e.Code, e.Message = decodeError(resp.Header, body)
	if e.Code == "" {
		e.Code = http.StatusText(resp.StatusCode)
	}
	return nil, e
}

// connectionError is a request that got no answer (refused, reset, closed
// by the server while idle). Like the SDK's RequestSendError it says so to
// the retryer, which then retries it.
type connectionError struct {
	op  string
	err error
}

func (e *connectionError) Error() string         { return e.op + ": " + e.err.Error() }
func (e *connectionError) Unwrap() error         { return e.err }
func (e *connectionError) ConnectionError() bool { return true }

func requestID(h http.Header) string {
	for _, k := range []string{"X-Amzn-Requestid", "X-Amz-Request-Id", "X-Amzn-Request-Id"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// decodeError reads AWS's error code and message from a JSON body
// ({"__type": "ns#Code", "message": ...}), the X-Amzn-ErrorType header, or an
// XML body (<Error><Code>...</Code><Message>...</Message></Error>, S3).
func decodeError(h http.Header, body []byte) (code, message string) {
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '{':
		var v struct {
			Type     string `json:"__type"`
			Code     string `json:"code"`
			Message  string `json:"message"`
			Message2 string `json:"Message"`
		}
		_ = json.Unmarshal(trimmed, &v)
		code = v.Type
		if code == "" {
			code = v.Code
		}
		message = v.Message
		if message == "" {
			message = v.Message2
		}
	case len(trimmed) > 0 && trimmed[0] == '<':
		code, message = xmlText(trimmed, "Code"), xmlText(trimmed, "Message")
	}
	if t := h.Get("X-Amzn-Errortype"); t != "" {
		code = t
	}
	// "aws.protocol#Code:http://..." and "ns#Code" both name Code.
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	code, _, _ = strings.Cut(code, ":")
	return code, message
}

// xmlText returns the text of the first <name> element; S3's error bodies
// are flat, so this avoids linking an XML decoder for two fields.
func xmlText(b []byte, name string) string {
	_, rest, ok := bytes.Cut(b, []byte("<"+name+">"))
	if !ok {
		return ""
	}
	text, _, ok := bytes.Cut(rest, []byte("</"+name+">"))
	if !ok {
		return ""
	}
	return string(text)
}

// Presign returns a URL that performs r (a GET) without credentials until
// ttl has passed.
func (c *Client) Presign(ctx context.Context, r Request, ttl time.Duration) (string, error) {
	c.notify(r)
	u := *r.URL
	q := u.Query()
	q.Set("X-Amz-Expires", fmt.Sprint(int64(ttl/time.Second)))
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	if err != nil {
		return "", err
	}
	creds, err := c.credentials.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("%s presign: credentials: %w", r.ServiceID, err)
	}
	signed, _, err := c.signer.PresignHTTP(ctx, creds, req, UnsignedPayload, r.Service, c.region, c.now().UTC(),
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = r.S3 })
	return signed, err
}

// IsStatus reports whether err is an AWS error answer with that HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == status
}

// EscapePath escapes a path the way AWS's REST APIs expect: everything but
// unreserved characters and "/" is percent-encoded.
func EscapePath(p string) string { return escape(p, true) }

// EscapeSegment escapes one path segment (a label such as a connection id):
// as EscapePath, and "/" too.
func EscapeSegment(s string) string { return escape(s, false) }

func escape(s string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if unreserved(ch) || ch == '/' && keepSlash {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}

func unreserved(ch byte) bool {
	return ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' ||
		ch == '-' || ch == '.' || ch == '_' || ch == '~'
}

// JoinURL returns base with an escaped path appended (base may carry a path
// of its own, such as an API stage).
func JoinURL(base, escapedPath string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + escapedPath)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// JSON11 calls an AWS JSON 1.1 operation (EventBridge, Secrets Manager):
// in is marshalled as the body and the answer unmarshalled into out.
func (c *Client) JSON11(ctx context.Context, service, serviceID, endpoint, target string, resource string, in, out any) error {
	return c.callJSON(ctx, "application/x-amz-json-1.1", service, serviceID, endpoint, target, resource, in, out)
}

// JSON10 calls an AWS JSON 1.0 operation (SQS), as JSON11 does.
func (c *Client) JSON10(ctx context.Context, service, serviceID, endpoint, target string, resource string, in, out any) error {
	return c.callJSON(ctx, "application/x-amz-json-1.0", service, serviceID, endpoint, target, resource, in, out)
}

func (c *Client) callJSON(ctx context.Context, contentType, service, serviceID, endpoint, target string, resource string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	u, err := url.Parse(endpoint + "/")
	if err != nil {
		return err
	}
	operation := target[strings.LastIndexByte(target, '.')+1:]
	resp, err := c.Do(ctx, Request{
		Service: service, ServiceID: serviceID, Operation: operation, Resource: resource,
		Method: http.MethodPost, URL: u, Body: body,
		Header: http.Header{"Content-Type": {contentType}, "X-Amz-Target": {target}},
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", serviceID, operation, err)
	}
	return nil
}
