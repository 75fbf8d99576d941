package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/infra/testenv"
)

// projectFront is the CloudFront front template.yaml deploys (through its
// nested satellite endpoint stack).
func projectFront(t *testing.T) *gateway.Front {
	t.Helper()
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "template.yaml")
	tpl, err := samtemplate.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	api, err := gateway.LoadAPI(tpl)
	if err != nil {
		t.Fatal(err)
	}
	front, err := gateway.LoadFront(tpl, path, api)
	if err != nil {
		t.Fatal(err)
	}
	if front == nil {
		t.Fatal("template.yaml has no CloudFront distribution in front of its WebSocket API")
	}
	return front
}

func TestLoadFrontFromTheProjectTemplate(t *testing.T) {
	f := projectFront(t)
	if f.Distribution != "SatelliteDistribution" || f.OriginPath != "/prod" || f.AllViewer {
		t.Errorf("front = %+v", f)
	}
	if f.Function == nil || f.Function.Name != "SatelliteEndpointFunction" || f.Function.Runtime != "cloudfront-js-2.0" {
		t.Fatalf("viewer-request function = %+v", f.Function)
	}
	for _, h := range []string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Cloudfront-Viewer-Address", "User-Agent"} {
		if !strings.Contains(strings.Join(f.Headers, " "), h) {
			t.Errorf("origin request policy does not forward %s: %v", h, f.Headers)
		}
	}
	for _, h := range f.Headers {
		if h == "Host" {
			t.Errorf("origin request policy forwards Host (execute-api answers 403)")
		}
	}
}

// TestSatelliteEndpointFunction runs the deployed function's code with the
// events CloudFront passes it.
func TestSatelliteEndpointFunction(t *testing.T) {
	fn := projectFront(t).Function
	for name, tc := range map[string]struct {
		uri    string
		passes bool
	}{
		"the satellite path":    {"/api/ws/satellite", true},
		"the root":              {"/", false},
		"a trailing slash":      {"/api/ws/satellite/", false},
		"a longer path":         {"/api/ws/satellite/x", false},
		"another case":          {"/API/WS/SATELLITE", false},
		"the stage":             {"/prod", false},
		"an admin route":        {"/satellites", false},
		"the path as a prefix":  {"/api/ws/satellites", false},
		"another plugin socket": {"/api/ws/other", false},
	} {
		t.Run(name, func(t *testing.T) {
			var ev gateway.CFEvent
			ev.Version = "1.0"
			ev.Context.EventType = "viewer-request"
			ev.Viewer.IP = "198.51.100.7"
			ev.Request = gateway.CFRequest{
				Method: "GET", URI: tc.uri,
				Querystring: map[string]gateway.CFValue{"a": {Value: "1"}},
				Headers:     map[string]gateway.CFValue{"sec-websocket-key": {Value: "k"}, "upgrade": {Value: "websocket"}},
				Cookies:     map[string]gateway.CFValue{},
			}
			req, resp, err := fn.Run(ev)
			if err != nil {
				t.Fatal(err)
			}
			if tc.passes {
				if resp != nil || req == nil || req.URI != "/" || req.Querystring["a"].Value != "1" || req.Headers["sec-websocket-key"].Value != "k" {
					t.Errorf("request = %+v, response = %+v; want the request rewritten to /", req, resp)
				}
				return
			}
			if req != nil || resp == nil || resp.StatusCode != http.StatusNotFound {
				t.Fatalf("request = %+v, response = %+v; want 404", req, resp)
			}
			var body map[string]string
			if err := json.Unmarshal(resp.Body, &body); err != nil || !strings.Contains(body["message"], simulator.SatellitePath) {
				t.Errorf("404 body %q does not say where satellites connect", resp.Body)
			}
		})
	}
}

// startFronted is the test API with the project's front before it (its
// origin path moved to the test API's stage).
func startFronted(t *testing.T) *fixture {
	t.Helper()
	front := projectFront(t)
	front.OriginPath = "/dev"
	return start(t, gateway.Config{Front: front})
}

// dialFrom opens a WebSocket from a given loopback address, so a test can
// tell the viewer's address from the edge's.
func dialFrom(t *testing.T, local, url string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	c, resp, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPClient: client, HTTPHeader: header})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

func TestFrontServesTheSatellitePathAsCloudFrontDoes(t *testing.T) {
	f := startFronted(t)
	core := f.gw.CoreURL()
	if core == "" {
		t.Fatal("a gateway with a front has no core URL")
	}
	header := http.Header{"User-Agent": {"checkstack-satellite/1.0"}, "X-Satellite": {"v1"}, "X-Forwarded-For": {"203.0.113.1"}}
	c, _, err := dialFrom(t, "127.0.0.2", simulator.SatelliteURL(core), header)
	if err != nil {
		t.Fatalf("a satellite configured with the core URL cannot connect: %v", err)
	}
	write(t, c, `{"type":"heartbeat"}`)
	testenv.Eventually(t, "$default", func() bool { return len(f.rec.byRoute("$default")) == 1 })

	conn := f.rec.byRoute("$connect")[0]
	h := func(name string) string {
		for k, v := range conn.Headers {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return ""
	}
	// API Gateway sees the edge, not the viewer, as the source.
	if got := conn.RequestContext.Identity.SourceIP; got != "127.0.0.1" {
		t.Errorf("identity.sourceIp = %s, want the edge's 127.0.0.1", got)
	}
	if got := h("CloudFront-Viewer-Address"); !strings.HasPrefix(got, "127.0.0.2:") {
		t.Errorf("CloudFront-Viewer-Address = %q, want the viewer's address and port", got)
	}
	if got := h("X-Forwarded-For"); got != "203.0.113.1, 127.0.0.2" {
		t.Errorf("X-Forwarded-For = %q, want the viewer appended", got)
	}
	if h("Via") == "" || h("X-Amz-Cf-Id") == "" {
		t.Errorf("no Via or X-Amz-Cf-Id: %v", conn.Headers)
	}
	if h("User-Agent") != "checkstack-satellite/1.0" || conn.RequestContext.Identity.UserAgent != "checkstack-satellite/1.0" {
		t.Errorf("user agent not forwarded: %v", conn.Headers)
	}
	if h("X-Satellite") != "" {
		t.Errorf("a header outside the origin request policy reached the API: %v", conn.Headers)
	}
	if got, want := h("Host"), strings.TrimPrefix(core, "http://"); got != want {
		t.Errorf("Host = %q, want the origin's %q", got, want)
	}
}

func TestFrontRefusesEveryOtherPath(t *testing.T) {
	f := startFronted(t)
	core := f.gw.CoreURL()
	for path, want := range map[string]int{
		"/":                       http.StatusNotFound, // the function's answer
		"/api/ws/satellite/":      http.StatusNotFound,
		"/api/ws/other":           http.StatusNotFound,
		"/dev/api/ws/satellite":   http.StatusForbidden, // execute-api past the stage
		"/dev/@connections/x/y/z": http.StatusForbidden,
	} {
		resp, err := http.Get(core + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
	// The satellite path without an upgrade reaches the API, which wants one.
	resp, err := http.Get(core + simulator.SatellitePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("GET %s without an upgrade: %d, want 426", simulator.SatellitePath, resp.StatusCode)
	}
	if _, _, err := dialFrom(t, "127.0.0.1", "ws"+strings.TrimPrefix(core, "http")+"/api/ws/satellite/", nil); err == nil {
		t.Errorf("a WebSocket to a path the function refuses was accepted")
	}
	// The stage itself still serves, with or without the trailing slash
	// CloudFront's origin path gives it.
	dial(t, f.url, nil)
	dial(t, f.url+"/", nil)
	if n := len(f.rec.byRoute("$connect")); n != 2 {
		t.Errorf("%d $connect invocations, want 2 (the refused paths must not reach the API)", n)
	}
}

func TestFailingViewerFunctionAnswers503(t *testing.T) {
	fn, err := gateway.NewViewerFunction("Broken", "cloudfront-js-2.0", `function handler(event) { return event.request.nope.uri; }`)
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, gateway.Config{Front: &gateway.Front{Distribution: "D", OriginPath: "/dev", Function: fn}})
	resp, err := http.Get(f.gw.CoreURL() + simulator.SatellitePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
	if _, err := gateway.NewViewerFunction("Node", "nodejs20.x", "function handler(e) { return e.request; }"); err == nil {
		t.Errorf("a runtime that is not CloudFront Functions' was accepted")
	}
}

func TestViewerFunctionResponseBodies(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"text":   {`{encoding: 'text', data: 'gone'}`, "gone"},
		"base64": {`{encoding: 'base64', data: 'Z29uZQ=='}`, "gone"},
		"string": {`'gone'`, "gone"},
		"none":   {`undefined`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			fn, err := gateway.NewViewerFunction("F", "cloudfront-js-2.0", `function handler(event) { return {statusCode: 410, statusDescription: 'Gone', body: `+tc.body+`}; }`)
			if err != nil {
				t.Fatal(err)
			}
			_, resp, err := fn.Run(gateway.CFEvent{Request: gateway.CFRequest{URI: "/"}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 410 || string(resp.Body) != tc.want {
				t.Errorf("response %d %q, want 410 %q", resp.StatusCode, resp.Body, tc.want)
			}
		})
	}
}
