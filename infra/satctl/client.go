// Package satctl is the operator CLI over the admin API: one Client that
// makes (SigV4-signed) requests, and the commands that print their results
// as tables or JSON.
package satctl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Client calls the admin API.
type Client struct {
	BaseURL string // https://<api>.execute-api.<region>.amazonaws.com or http://127.0.0.1:8765
	// Credentials and Region sign requests for execute-api; nil sends them
	// unsigned (the local stack does not check signatures).
	Credentials aws.CredentialsProvider
	Region      string
	HTTP        *http.Client
	Now         func() time.Time
}

// APIError is an error answer of the API: {"error": {"code", "message"}}.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
}

// IsLocal reports whether an endpoint is on this machine, where requests go
// unsigned.
func IsLocal(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Do sends one request and decodes a JSON answer into out (when not nil).
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	_, err := c.DoHeaders(ctx, method, path, query, body, out)
	return err
}

// DoHeaders is Do, also returning the answer's headers (a started fan-out
// job's Location).
func (c *Client) DoHeaders(ctx context.Context, method, path string, query url.Values, body, out any) (http.Header, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "satctl/1.0")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Credentials != nil {
		creds, err := c.Credentials.Retrieve(ctx)
		if err != nil {
			return nil, fmt.Errorf("AWS credentials for signing: %w", err)
		}
		sum := sha256.Sum256(payload)
		now := time.Now
		if c.Now != nil {
			now = c.Now
		}
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "execute-api", c.Region, now()); err != nil {
			return nil, fmt.Errorf("sign request: %w", err)
		}
	}
	client := c.HTTP
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
			// API Gateway's own answers (403 on a bad signature) carry message.
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &e)
		apiErr := &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		if apiErr.Message == "" {
			apiErr.Message = e.Message
		}
		if apiErr.Message == "" {
			apiErr.Message = strings.TrimSpace(string(raw))
		}
		if apiErr.Message == "" {
			apiErr.Message = http.StatusText(resp.StatusCode)
		}
		return resp.Header, apiErr
	}
	if out != nil && len(raw) > 0 {
		return resp.Header, json.Unmarshal(raw, out)
	}
	return resp.Header, nil
}
