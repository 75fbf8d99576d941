package mgmtapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"

	"github.com/checkstack/satellite-backend/shared/mgmtapi"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

type seen struct {
	method, rawPath, auth, body string
}

// managementAPI answers like API Gateway's @connections: 200 for the open
// connection, 410 GoneException for any other.
func managementAPI(t *testing.T, open string) (string, func() []seen) {
	var (
		mu       sync.Mutex
		requests []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		requests = append(requests, seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), string(body)})
		mu.Unlock()
		if r.URL.EscapedPath() != "/prod/@connections/"+open {
			w.Header().Set("X-Amzn-ErrorType", "GoneException")
			w.WriteHeader(http.StatusGone)
			_, _ = io.WriteString(w, `{"message":null}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/prod", func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), requests...)
	}
}

func client() *mgmtapi.Client {
	cfg := aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")}
	return mgmtapi.New(apigatewaymanagementapi.NewFromConfig(cfg))
}

// TestPostAndCloseSpeakTheManagementAPI checks the requests: each sent to
// the stage given with the call (the SDK client has no endpoint of its
// own), the connection id escaped as one path segment under the stage ("="
// as %3D), signed for execute-api in the region, the frame as the body;
// 410 is EGONE for a post and nothing for a close.
func TestPostAndCloseSpeakTheManagementAPI(t *testing.T) {
	endpoint, requests := managementAPI(t, "Ab1%3D")
	c := client()
	ctx := context.Background()
	if err := c.Post(ctx, endpoint, "Ab1=", []byte(`{"type":"shutdown"}`)); err != nil {
		t.Fatalf("post: %v", err)
	}
	if err := c.Post(ctx, endpoint, "gone/id=", []byte(`{}`)); satellite.ErrorCode(err) != satellite.EGONE {
		t.Errorf("post to a gone connection: %v, want EGONE", err)
	}
	if err := c.Close(ctx, endpoint, "Ab1="); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := c.Close(ctx, endpoint, "gone="); err != nil {
		t.Errorf("close of a gone connection: %v, want nil", err)
	}
	got := requests()
	if len(got) != 4 {
		t.Fatalf("%d requests: %+v", len(got), got)
	}
	want := []seen{
		{method: "POST", rawPath: "/prod/@connections/Ab1%3D", body: `{"type":"shutdown"}`},
		{method: "POST", rawPath: "/prod/@connections/gone%2Fid%3D", body: `{}`},
		{method: "DELETE", rawPath: "/prod/@connections/Ab1%3D"},
		{method: "DELETE", rawPath: "/prod/@connections/gone%3D"},
	}
	for i, w := range want {
		g := got[i]
		if g.method != w.method || g.rawPath != w.rawPath || g.body != w.body {
			t.Errorf("request %d = %s %s %q, want %s %s %q", i, g.method, g.rawPath, g.body, w.method, w.rawPath, w.body)
		}
		if !strings.HasPrefix(g.auth, "AWS4-HMAC-SHA256 Credential=AKID/") || !strings.Contains(g.auth, "/eu-west-1/execute-api/aws4_request") {
			t.Errorf("request %d is not signed for execute-api in eu-west-1: %q", i, g.auth)
		}
	}
}

func TestOversizedFramesAreRefusedBeforePosting(t *testing.T) {
	endpoint, requests := managementAPI(t, "a")
	err := client().Post(context.Background(), endpoint, "a", make([]byte, protocol.MaxMessageBytes+1))
	if satellite.ErrorCode(err) != satellite.ETOOLARGE || len(requests()) != 0 {
		t.Errorf("oversized post: %v, %d requests; want ETOOLARGE and none", err, len(requests()))
	}
}
