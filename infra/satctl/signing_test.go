package satctl_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/checkstack/satellite-backend/infra/satctl"
)

// TestRequestsToADeployedAPIAreSigned checks what a non-local endpoint
// receives: a SigV4 Authorization for execute-api in the API's region, and
// the payload hash.
func TestRequestsToADeployedAPIAreSigned(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"satelliteIds":[]}`))
	}))
	defer srv.Close()
	c := &satctl.Client{
		BaseURL:     srv.URL,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "session"),
		Region:      "eu-west-1",
		Now:         func() time.Time { return time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC) },
	}
	if err := c.Do(context.Background(), "POST", "/satellites", nil, map[string]any{"name": "x"}, nil); err != nil {
		t.Fatal(err)
	}
	auth := got.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/eu-west-1/execute-api/aws4_request") ||
		got.Header.Get("X-Amz-Security-Token") != "session" || got.Header.Get("X-Amz-Date") != "20261127T080000Z" {
		t.Errorf("headers = %v", got.Header)
	}
	if satctl.IsLocal("https://abc.execute-api.eu-west-1.amazonaws.com") || !satctl.IsLocal("http://127.0.0.1:8765") || !satctl.IsLocal("http://localhost:1") {
		t.Error("IsLocal misjudges")
	}
}
