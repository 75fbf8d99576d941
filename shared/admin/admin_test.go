package admin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/s3packages"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

type harness struct {
	t     *testing.T
	env   *testenv.Env
	mgmt  *testenv.ManagementAPI
	a     *app.App
	calls *testenv.Calls
	now   time.Time
	// headers are the last answer's.
	headers map[string]string
}

func newHarness(t *testing.T, options ...func(*app.Config)) *harness {
	t.Helper()
	h := &harness{t: t, env: testenv.New(t), mgmt: testenv.NewManagementAPI(t), now: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}
	cfg := h.env.Config(h.mgmt.URL)
	for _, o := range options {
		o(&cfg)
	}
	log, _ := testenv.LogBuffer()
	h.a, h.calls = h.env.App(t, cfg, app.Options{Now: func() time.Time { return h.now }, Log: log})
	return h
}

// call sends one HTTP API request through the admin handler, as API Gateway
// builds it (payload 2.0), and decodes the JSON answer.
func (h *harness) call(method, route string, params map[string]string, query map[string]string, body any) (int, map[string]any) {
	h.t.Helper()
	path := route
	for k, v := range params {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	req := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: method + " " + route, RawPath: path, PathParameters: params, QueryStringParameters: query,
		Headers: map[string]string{"content-type": "application/json"},
	}
	req.RequestContext.HTTP.Method, req.RequestContext.HTTP.Path = method, path
	switch b := body.(type) {
	case nil:
	case string:
		req.Body = b
	default:
		raw, _ := json.Marshal(b)
		req.Body = string(raw)
	}
	resp, err := h.a.Admin.Handle(ctx, req)
	if err != nil {
		h.t.Fatalf("%s %s: Lambda error %v", method, path, err)
	}
	h.headers = resp.Headers
	var out map[string]any
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
			h.t.Fatalf("%s %s: body %q is not JSON", method, path, resp.Body)
		}
	}
	if resp.StatusCode >= 400 {
		e, _ := out["error"].(map[string]any)
		if e == nil || e["code"] == "" || e["message"] == "" {
			h.t.Errorf("%s %s: error body %s is not {error:{code,message}}", method, path, resp.Body)
		}
	}
	return resp.StatusCode, out
}

func (h *harness) create(name string) (string, string) {
	h.t.Helper()
	code, out := h.call("POST", "/satellites", nil, nil, map[string]any{"name": name, "region": "eu-central-1", "tags": map[string]string{"site": "ber"}})
	if code != http.StatusCreated {
		h.t.Fatalf("create: %d %v", code, out)
	}
	return out["satellite"].(map[string]any)["satelliteId"].(string), out["token"].(string)
}

// connect binds a live connection to a satellite, as authenticate would (on
// the test's own registry: these are not the admin function's requests).
func (h *harness) connect(id, _ string) string {
	h.t.Helper()
	reg := h.env.Registry()
	sat, _, err := reg.Satellite(ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	conn := testenv.NewConnectionID()
	h.mgmt.Open(conn)
	if err := reg.OpenConnection(ctx, satellite.Connection{ID: conn, ConnectedAt: h.now, ExpiresAt: h.now.Add(satellite.ConnectionRecordTTL)}); err != nil {
		h.t.Fatal(err)
	}
	edge, err := reg.BindConnection(ctx, conn, sat, sat.TokenHash, nil, h.now)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := reg.ConfirmEdge(ctx, id, edge.ID); err != nil {
		h.t.Fatal(err)
	}
	return conn
}

// fanout follows a fan-out job an answer started (202 with its Location)
// until it is done, and returns it as its route shows it.
func (h *harness) fanout(code int, started map[string]any) map[string]any {
	h.t.Helper()
	location := h.headers["Location"]
	if code != http.StatusAccepted || !strings.HasPrefix(location, "/fan-outs/") {
		h.t.Fatalf("answer %d with Location %q, want 202 naming the fan-out job: %v", code, location, started)
	}
	id := strings.TrimPrefix(location, "/fan-outs/")
	var job map[string]any
	testenv.Eventually(h.t, "fan-out job "+id+" done", func() bool {
		var code int
		code, job = h.call("GET", "/fan-outs/{jobId}", map[string]string{"jobId": id}, nil, nil)
		if code != http.StatusOK {
			h.t.Fatalf("GET %s: %d %v", location, code, job)
		}
		return job["state"] == "done"
	})
	return job
}

func errorMessage(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func TestCreateReturnsTheTokenOnceAndStoresOnlyItsHash(t *testing.T) {
	h := newHarness(t)
	code, out := h.call("POST", "/satellites", nil, nil, map[string]any{"name": "Berlin edge", "region": "eu-central-1", "offlineThresholdMs": 300000})
	if code != http.StatusCreated {
		t.Fatalf("status %d %v", code, out)
	}
	tok := out["token"].(string)
	sat := out["satellite"].(map[string]any)
	id := sat["satelliteId"].(string)
	if !strings.HasPrefix(tok, "csat_") || len(tok) != len("csat_")+43 {
		t.Errorf("token %q is not csat_ + 32 bytes base64url", tok)
	}
	if sat["status"] != "offline" || sat["offlineThresholdMs"] != float64(300000) || sat["name"] != "Berlin edge" {
		t.Errorf("satellite = %v", sat)
	}
	stored, _, err := h.a.Registry.Satellite(ctx, id)
	if err != nil || !strings.HasPrefix(stored.TokenHash, "$2a$10$") || strings.Contains(stored.TokenHash, tok) {
		t.Errorf("stored hash %q (%v), want bcrypt cost 10", stored.TokenHash, err)
	}
	_, got := h.call("GET", "/satellites/{satelliteId}", map[string]string{"satelliteId": id}, nil, nil)
	raw, _ := json.Marshal(got)
	if strings.Contains(string(raw), "csat_") || strings.Contains(string(raw), "$2a$") {
		t.Errorf("GET shows the token or its hash: %s", raw)
	}
}

func TestValidationNamesTheField(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		body   any
		status int
		want   string
	}{
		{`{"name":`, 400, "JSON object"},
		{`[]`, 400, "JSON object"},
		{map[string]any{"region": "eu-central-1"}, 422, "name is required"},
		{map[string]any{"name": "", "region": "eu-central-1"}, 422, "name must be 1 to 128"},
		{map[string]any{"name": 5, "region": "eu-central-1"}, 422, "name must be a string"},
		{map[string]any{"name": "x"}, 422, "region is required"},
		{map[string]any{"name": "x", "region": "EU Central"}, 422, "region must be lower-case"},
		{map[string]any{"name": "x", "region": "r", "tags": []string{"a"}}, 422, "tags must be an object"},
		{map[string]any{"name": "x", "region": "r", "offlineThresholdMs": 1000}, 422, "offlineThresholdMs must be between 15000"},
		{map[string]any{"name": "x", "region": "r", "offlineThresholdMs": 90000000}, 422, "offlineThresholdMs must be between"},
		{map[string]any{"name": "x", "region": "r", "offlineThresholdMs": "2m"}, 422, "offlineThresholdMs must be a whole number"},
		{map[string]any{"name": "x", "region": "r", "token": "mine"}, 422, `unknown field "token"`},
		// 18446744273710 ms wraps to 200000 ms once converted to a duration.
		{`{"name":"x","region":"r","offlineThresholdMs":18446744273710}`, 422, "offlineThresholdMs must be between"},
		{`{"name":"x","region":"r","offlineThresholdMs":1e300}`, 422, "offlineThresholdMs must be between"},
		{map[string]any{"name": "Berlin\x00edge", "region": "r"}, 422, "name must not contain control characters"},
		{map[string]any{"name": "Berlin \u202eegde", "region": "r"}, 422, "name must not contain invisible or direction-changing characters"},
		{map[string]any{"name": "x", "region": "r", "tags": map[string]string{"site": "ber\u2066-1"}}, 422, "tags.site must not contain"},
		{map[string]any{"name": "x", "region": "r", "tags": map[string]string{"si\x07te": "b"}}, 422, "tags key must not contain"},
	}
	for _, tc := range cases {
		code, out := h.call("POST", "/satellites", nil, nil, tc.body)
		if code != tc.status || !strings.Contains(errorMessage(out), tc.want) {
			t.Errorf("POST %v: %d %q, want %d containing %q", tc.body, code, errorMessage(out), tc.status, tc.want)
		}
	}
	id, _ := h.create("ok")
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{}, "at least one of"},
		{map[string]any{"region": "Bad Region"}, "region must be"},
		{map[string]any{"offlineThresholdMs": 1}, "offlineThresholdMs must be between"},
	} {
		code, out := h.call("PATCH", "/satellites/{satelliteId}", map[string]string{"satelliteId": id}, nil, tc.body)
		if code != 422 || !strings.Contains(errorMessage(out), tc.want) {
			t.Errorf("PATCH %v: %d %q", tc.body, code, errorMessage(out))
		}
	}
	for _, q := range []map[string]string{{}, {"configId": "c"}, {"configId": "c", "systemId": "s", "limit": "0"}, {"configId": "c", "systemId": "s", "limit": "x"}} {
		if code, out := h.call("GET", "/results", nil, q, nil); code != 422 {
			t.Errorf("GET /results %v: %d %v", q, code, out)
		}
	}
}

// TestOfflineThresholdBounds checks the range upstream Checkstack accepts
// (OfflineThresholdMsSchema: one heartbeat interval to 24 h, both ends
// included), on create and on update.
func TestOfflineThresholdBounds(t *testing.T) {
	h := newHarness(t)
	id, _ := h.create("Bounds")
	p := map[string]string{"satelliteId": id}
	for _, tc := range []struct {
		ms   int64
		want int
	}{
		{15000, http.StatusCreated},
		{14999, http.StatusUnprocessableEntity},
		{86400000, http.StatusCreated},
		{86400001, http.StatusUnprocessableEntity},
		{30000, http.StatusCreated},
		{60000, http.StatusCreated},
	} {
		code, out := h.call("POST", "/satellites", nil, nil, map[string]any{"name": "x", "region": "r", "offlineThresholdMs": tc.ms})
		if code != tc.want {
			t.Errorf("POST offlineThresholdMs %d: %d %v, want %d", tc.ms, code, out, tc.want)
		}
		if code == http.StatusCreated && out["satellite"].(map[string]any)["offlineThresholdMs"] != float64(tc.ms) {
			t.Errorf("POST offlineThresholdMs %d: stored %v", tc.ms, out["satellite"])
		}
		if code == http.StatusUnprocessableEntity && !strings.Contains(errorMessage(out), "offlineThresholdMs must be between 15000 (15 s) and 86400000 (24 h)") {
			t.Errorf("POST offlineThresholdMs %d: %q", tc.ms, errorMessage(out))
		}
		want := tc.want
		if want == http.StatusCreated {
			want = http.StatusOK
		}
		code, out = h.call("PATCH", "/satellites/{satelliteId}", p, nil, map[string]any{"offlineThresholdMs": tc.ms})
		if code != want {
			t.Errorf("PATCH offlineThresholdMs %d: %d %v, want %d", tc.ms, code, out, want)
		}
		if code == http.StatusOK && out["offlineThresholdMs"] != float64(tc.ms) {
			t.Errorf("PATCH offlineThresholdMs %d: answered %v", tc.ms, out["offlineThresholdMs"])
		}
	}
}

func TestUnknownSatelliteIs404(t *testing.T) {
	h := newHarness(t)
	p := map[string]string{"satelliteId": "0b7c1c2e-0000-4000-8000-000000000000"}
	for _, c := range []struct {
		method, route string
		body          any
	}{
		{"GET", "/satellites/{satelliteId}", nil},
		{"PATCH", "/satellites/{satelliteId}", map[string]any{"name": "x"}},
		{"DELETE", "/satellites/{satelliteId}", nil},
		{"POST", "/satellites/{satelliteId}/token", nil},
		{"PUT", "/satellites/{satelliteId}/assignments", map[string]any{"assignments": []any{}}},
	} {
		if code, out := h.call(c.method, c.route, p, nil, c.body); code != 404 {
			t.Errorf("%s %s: %d %v, want 404", c.method, c.route, code, out)
		}
	}
}

func TestListGetAndOnline(t *testing.T) {
	h := newHarness(t)
	on, onTok := h.create("Online one")
	off, _ := h.create("Offline one")
	h.connect(on, onTok)
	lockfile := "lock-1"
	if err := h.a.Registry.SaveSyncState(ctx, on, satellite.SyncState{LockfileHash: &lockfile, Status: satellite.SyncReady, ReportedAt: h.now}); err != nil {
		t.Fatal(err)
	}
	_, list := h.call("GET", "/satellites", nil, nil, nil)
	sats := list["satellites"].([]any)
	if len(sats) != 2 {
		t.Fatalf("list = %v", list)
	}
	byID := map[string]map[string]any{}
	for _, s := range sats {
		byID[s.(map[string]any)["satelliteId"].(string)] = s.(map[string]any)
	}
	if s := byID[on]; s["status"] != "online" || s["lastSeenAt"] == nil || s["lastConnectionEvent"] != "connected" || s["syncState"].(map[string]any)["status"] != "ready" {
		t.Errorf("online satellite = %v", s)
	}
	if s := byID[off]; s["status"] != "offline" || s["lastSeenAt"] != nil {
		t.Errorf("offline satellite = %v", s)
	}
	_, online := h.call("GET", "/satellites/online", nil, nil, nil)
	if ids := online["satelliteIds"].([]any); len(ids) != 1 || ids[0] != on {
		t.Errorf("online = %v, want [%s]", online, on)
	}
	h.now = h.now.Add(46 * time.Second)
	_, online = h.call("GET", "/satellites/online", nil, nil, nil)
	if ids := online["satelliteIds"].([]any); len(ids) != 0 {
		t.Errorf("online after the threshold = %v", ids)
	}
	_, got := h.call("GET", "/satellites/{satelliteId}", map[string]string{"satelliteId": on}, nil, nil)
	if got["status"] != "offline" || got["assignments"] == nil {
		t.Errorf("get = %v, want computed status and an assignments array", got)
	}
}

func TestUpdateSatellite(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Old name")
	conn := h.connect(id, tok)
	p := map[string]string{"satelliteId": id}
	code, out := h.call("PATCH", "/satellites/{satelliteId}", p, nil, map[string]any{"name": "New name", "offlineThresholdMs": 600000, "tags": map[string]string{"a": "b"}})
	if code != 200 || out["name"] != "New name" || out["offlineThresholdMs"] != float64(600000) || out["tags"].(map[string]any)["a"] != "b" || out["region"] != "eu-central-1" {
		t.Fatalf("update: %d %v", code, out)
	}
	c, _ := h.a.Registry.Connection(ctx, conn, h.now)
	if c.SatelliteName != "New name" {
		t.Errorf("live connection still labels results %q", c.SatelliteName)
	}
	_, out = h.call("PATCH", "/satellites/{satelliteId}", p, nil, map[string]any{"offlineThresholdMs": nil})
	if out["offlineThresholdMs"] != nil {
		t.Errorf("null did not clear the threshold: %v", out["offlineThresholdMs"])
	}
}

func TestRotateTokenShutsDownAndRevokesAtOnce(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Rotating")
	conn := h.connect(id, tok)
	old, _, _ := h.a.Registry.Satellite(ctx, id)
	code, out := h.call("POST", "/satellites/{satelliteId}/token", map[string]string{"satelliteId": id}, nil, nil)
	if code != 200 || out["token"] == tok || !strings.HasPrefix(out["token"].(string), "csat_") {
		t.Fatalf("rotate: %d %v", code, out)
	}
	frames := h.mgmt.Frames(t, conn)
	if len(frames) != 1 || frames[0]["type"] != "shutdown" || frames[0]["reason"] != "token rotated" || !h.mgmt.Closed(conn) {
		t.Errorf("live connection got %v, closed %v; want shutdown then closed", frames, h.mgmt.Closed(conn))
	}
	// An authentication that verified the old token a moment ago loses.
	fresh := testenv.NewConnectionID()
	_ = h.a.Registry.OpenConnection(ctx, satellite.Connection{ID: fresh, ConnectedAt: h.now, ExpiresAt: h.now.Add(time.Hour)})
	if _, err := h.a.Registry.BindConnection(ctx, fresh, old, old.TokenHash, nil, h.now); satellite.ErrorCode(err) != satellite.EUNAUTHENTICATED {
		t.Errorf("bind with the old token's hash: %v, want refused", err)
	}
}

func TestRotateTokenReturnsTheTokenEvenIfShutdownFails(t *testing.T) {
	h := newHarness(t, func(c *app.Config) { c.ManagementURL = "http://127.0.0.1:1" })
	id, tok := h.create("Unreachable")
	h.connect(id, tok)
	code, out := h.call("POST", "/satellites/{satelliteId}/token", map[string]string{"satelliteId": id}, nil, nil)
	if code != 200 || out["token"] == nil || out["token"] == tok {
		t.Errorf("rotate with the Management API down: %d %v, want the new token", code, out)
	}
}

func TestDeleteRemovesEverything(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Doomed")
	conn := h.connect(id, tok)
	p := map[string]string{"satelliteId": id}
	h.call("PUT", "/satellites/{satelliteId}/assignments", p, nil, map[string]any{"assignments": []any{assignment("cfg-1", "sys-1")}})
	if code, out := h.call("DELETE", "/satellites/{satelliteId}", p, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, out)
	}
	frames := h.mgmt.Frames(t, conn)
	if len(frames) == 0 || frames[len(frames)-1]["type"] != "shutdown" || !h.mgmt.Closed(conn) {
		t.Errorf("connection got %v, closed %v", frames, h.mgmt.Closed(conn))
	}
	if _, _, err := h.a.Registry.Satellite(ctx, id); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("satellite still there: %v", err)
	}
	if as, _ := h.a.Registry.AssignmentsForConfig(ctx, id, "cfg-1"); len(as) != 0 {
		t.Errorf("assignments left: %v", as)
	}
	if _, err := h.a.Registry.Connection(ctx, conn, h.now); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("connection record left: %v", err)
	}
	if code, _ := h.call("DELETE", "/satellites/{satelliteId}", p, nil, nil); code != 404 {
		t.Errorf("second delete: %d, want 404", code)
	}
}

func assignment(configID, systemID string) map[string]any {
	return map[string]any{"configId": configID, "systemId": systemID, "strategyId": "http", "config": map[string]any{"url": "https://example.com"}, "intervalSeconds": 60}
}

func TestReplaceAssignmentsPushesConfigUpdated(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Assigned")
	conn := h.connect(id, tok)
	p := map[string]string{"satelliteId": id}
	code, out := h.call("PUT", "/satellites/{satelliteId}/assignments", p, nil, map[string]any{"assignments": []any{assignment("cfg-1", "sys-1"), assignment("cfg-2", "sys-1")}})
	if code != 200 || len(out["assignments"].([]any)) != 2 {
		t.Fatalf("assign: %d %v", code, out)
	}
	frames := h.mgmt.Frames(t, conn)
	if len(frames) != 1 || frames[0]["type"] != "config_updated" || len(frames[0]["assignments"].([]any)) != 2 {
		t.Errorf("pushed %v, want config_updated with both", frames)
	}
	if _, ok := frames[0]["scriptPackagesLockfileHash"]; !ok {
		t.Errorf("config_updated without scriptPackagesLockfileHash although a store is configured")
	}
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{}, "assignments is required"},
		{map[string]any{"assignments": "x"}, "must be an array"},
		{map[string]any{"assignments": []any{assignment("c", "s"), map[string]any{"configId": "c"}}}, "assignments[1]"},
		{map[string]any{"assignments": []any{assignment("c", "s"), assignment("c", "s")}}, "assigned twice"},
		{map[string]any{"assignments": []any{func() map[string]any {
			a := assignment("c", "s")
			a["collectors"] = []any{map[string]any{"id": "k", "collectorId": "http", "config": map[string]any{"secretEnv": map[string]any{"A": "$(x)"}}}}
			return a
		}()}}, "collectors[0].config.secretEnv"},
	} {
		code, out := h.call("PUT", "/satellites/{satelliteId}/assignments", p, nil, tc.body)
		if code != 422 || !strings.Contains(errorMessage(out), tc.want) {
			t.Errorf("PUT %v: %d %q, want 422 containing %q", tc.body, code, errorMessage(out), tc.want)
		}
	}
	var many []any
	for i := 0; i < 40; i++ {
		a := assignment(fmt.Sprintf("cfg-%d", i), "s")
		a["config"] = map[string]any{"script": strings.Repeat("x", 4000)}
		many = append(many, a)
	}
	if code, out := h.call("PUT", "/satellites/{satelliteId}/assignments", p, nil, map[string]any{"assignments": many}); code != 422 || !strings.Contains(errorMessage(out), "one message") {
		t.Errorf("assignments over one message: %d %q", code, errorMessage(out))
	}
	// Clearing is allowed.
	if code, out := h.call("PUT", "/satellites/{satelliteId}/assignments", p, nil, map[string]any{"assignments": []any{}}); code != 200 || len(out["assignments"].([]any)) != 0 {
		t.Errorf("clear: %d %v", code, out)
	}
}

func TestPublishScriptPackages(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Syncing")
	conn := h.connect(id, tok)
	lib, util := []byte("export const lib = 1;\n"), []byte("export const util = 2;\n")
	code, out := h.call("POST", "/script-packages", nil, nil, map[string]any{"packages": []any{
		map[string]any{"name": "lib", "version": "1.0.0", "integrity": scriptpkg.Integrity(lib), "data": base64.StdEncoding.EncodeToString(lib)},
		map[string]any{"name": "@acme/util", "version": "2.1.0", "data": base64.StdEncoding.EncodeToString(util)},
	}})
	if code != http.StatusAccepted {
		t.Fatalf("publish: %d %v", code, out)
	}
	hash := out["lockfileHash"].(string)
	// The answer names the refresh as started; it runs on its own.
	if refresh := out["refresh"].(map[string]any); refresh["state"] != "running" || refresh["kind"] != "refresh_script_packages" ||
		refresh["subject"] != hash || refresh["jobId"] == "" || refresh["segments"] != float64(2) {
		t.Errorf("refresh = %v, want the job started", refresh)
	}
	job := h.fanout(code, out)
	if job["total"] != float64(1) || job["sent"] != float64(1) || job["remaining"] != float64(0) || job["segmentsDone"] != float64(2) || job["finishedAt"] == nil {
		t.Errorf("refresh job = %v, want sent to the one connection", job)
	}
	frames := h.mgmt.Frames(t, conn)
	if len(frames) != 1 || frames[0]["type"] != "refresh_script_packages" || frames[0]["lockfileHash"] != hash {
		t.Errorf("pushed %v", frames)
	}
	// Blobs are content-addressed with their sha256 and size.
	key, _ := s3packages.BlobKey(scriptpkg.Integrity(util))
	head, err := h.env.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(h.env.Bucket), Key: aws.String(key)})
	if err != nil || aws.ToInt64(head.ContentLength) != int64(len(util)) || head.Metadata["sha256"] == "" {
		t.Errorf("blob %s: %+v, %v", key, head, err)
	}
	desired, _ := h.a.Registry.DesiredLockfileHash(ctx)
	if desired == nil || *desired != hash {
		t.Errorf("desired hash = %v, want %s", desired, hash)
	}
	// The same set again has the same hash.
	_, again := h.call("POST", "/script-packages", nil, nil, map[string]any{"packages": []any{
		map[string]any{"name": "@acme/util", "version": "2.1.0", "data": base64.StdEncoding.EncodeToString(util)},
		map[string]any{"name": "lib", "version": "1.0.0", "data": base64.StdEncoding.EncodeToString(lib)},
	}})
	if again["lockfileHash"] != hash {
		t.Errorf("republishing the same set gave %v, want %s", again["lockfileHash"], hash)
	}
	lockfile := hash
	_ = h.a.Registry.SaveSyncState(ctx, id, satellite.SyncState{LockfileHash: &lockfile, Status: satellite.SyncReady, ReportedAt: h.now})
	_, view := h.call("GET", "/script-packages", nil, nil, nil)
	if view["lockfileHash"] != hash || len(view["entries"].([]any)) != 2 {
		t.Errorf("package view = %v", view)
	}
	if s := view["satellites"].([]any)[0].(map[string]any); s["upToDate"] != true {
		t.Errorf("satellite sync = %v", s)
	}
	// An empty set only when asked for: it removes every package.
	if code, out := h.call("POST", "/script-packages", nil, nil, map[string]any{"packages": []any{}, "allowEmpty": true}); code != http.StatusAccepted || out["lockfileHash"] == hash {
		t.Errorf("explicitly empty publish: %d %v", code, out)
	}
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"packages": []any{map[string]any{"name": "Bad Name", "version": "1", "data": ""}}}, "packages[0].name"},
		{map[string]any{"packages": []any{map[string]any{"name": "a", "data": ""}}}, "packages[0].version"},
		{map[string]any{"packages": []any{map[string]any{"name": "a", "version": "1"}}}, "packages[0].data is required"},
		{map[string]any{"packages": []any{map[string]any{"name": "a", "version": "1", "data": "!!"}}}, "not base64"},
		{map[string]any{"packages": []any{map[string]any{"name": "a", "version": "1", "data": "YQ==", "integrity": scriptpkg.Integrity(lib)}}}, "does not match"},
		{map[string]any{"packages": []any{map[string]any{"name": "a", "version": "1.0/../../x", "data": "YQ=="}}}, "packages[0].version"},
		{map[string]any{"packages": []any{map[string]any{"name": "a", "version": "1..0", "data": "YQ=="}}}, "packages[0].version"},
		{map[string]any{"packages": []any{map[string]any{"name": "a", "version": "../1", "data": "YQ=="}}}, "packages[0].version"},
		{map[string]any{"packages": []any{}}, "packages is empty"},
	} {
		code, out := h.call("POST", "/script-packages", nil, nil, tc.body)
		if code != 422 || !strings.Contains(errorMessage(out), tc.want) {
			t.Errorf("publish %v: %d %q", tc.body, code, errorMessage(out))
		}
	}
}

func TestPublishWithoutStoreIs501(t *testing.T) {
	h := newHarness(t, func(c *app.Config) { c.ScriptPackagesBucket = "" })
	code, out := h.call("POST", "/script-packages", nil, nil, map[string]any{"packages": []any{map[string]any{"name": "a", "version": "1", "data": "YQ=="}}})
	if code != http.StatusNotImplemented || !strings.Contains(errorMessage(out), "SCRIPT_PACKAGES_BUCKET") {
		t.Errorf("publish without a store: %d %v", code, out)
	}
}

func TestResultsNewestFirst(t *testing.T) {
	h := newHarness(t)
	id, _ := h.create("Reporter")
	h.call("PUT", "/satellites/{satelliteId}/assignments", map[string]string{"satelliteId": id}, nil, map[string]any{"assignments": []any{assignment("cfg-1", "sys-1")}})
	for i := 0; i < 3; i++ {
		latency := float64(10 + i)
		err := h.a.Registry.RecordResult(ctx, satellite.Result{
			ID: "r" + string(rune('0'+i)), ConfigID: "cfg-1", SystemID: "sys-1", SatelliteID: id, Source: "Reporter (eu-central-1)",
			Status: satellite.CheckHealthy, LatencyMs: &latency, Detail: []byte(`{"status":"healthy"}`),
			ExecutedAt: h.now.Add(time.Duration(i) * time.Minute), ReceivedAt: h.now, ExpiresAt: h.now.Add(time.Hour),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out := h.call("GET", "/results", nil, map[string]string{"configId": "cfg-1", "systemId": "sys-1", "limit": "2"}, nil)
	rs, _ := out["results"].([]any)
	if code != 200 || len(rs) != 2 {
		t.Fatalf("results: %d %v", code, out)
	}
	first := rs[0].(map[string]any)
	if first["latencyMs"] != float64(12) || first["source"] != "Reporter (eu-central-1)" || first["result"].(map[string]any)["status"] != "healthy" {
		t.Errorf("newest = %v", first)
	}
}

// TestAdminPolicyGrantsExactlyWhatItCalls runs every operation and checks
// AdminFunction's IAM policy against the requests it made.
func TestAdminPolicyGrantsExactlyWhatItCalls(t *testing.T) {
	eb := testenv.NewEventBridge(t)
	h := newHarness(t, func(c *app.Config) { c.EventBusName = "default" })
	log, _ := testenv.LogBuffer()
	cfg := h.env.Config(h.mgmt.URL)
	cfg.EventBusName = "default"
	a, calls := h.env.App(t, cfg, app.Options{Now: func() time.Time { return h.now }, Log: log, Endpoints: app.Endpoints{EventBridge: eb.URL}})
	h.a = a
	id, tok := h.create("Everything")
	p := map[string]string{"satelliteId": id}
	h.connect(id, tok)
	gone := h.connect(id, tok)
	h.mgmt.Drop(gone) // a fan-out finds it gone and cleans up
	steps := []struct {
		method, route string
		params, query map[string]string
		body          any
	}{
		{"GET", "/satellites", nil, nil, nil},
		{"GET", "/satellites/online", nil, nil, nil},
		{"GET", "/satellites/{satelliteId}", p, nil, nil},
		{"PATCH", "/satellites/{satelliteId}", p, nil, map[string]any{"name": "Renamed"}},
		{"PUT", "/satellites/{satelliteId}/assignments", p, nil, map[string]any{"assignments": []any{assignment("c", "s")}}},
		{"POST", "/script-packages", nil, nil, map[string]any{"packages": []any{map[string]any{"name": "a", "version": "1", "data": "YQ=="}}}},
		{"GET", "/script-packages", nil, nil, nil},
		{"GET", "/results", nil, map[string]string{"configId": "c", "systemId": "s"}, nil},
		{"GET", "/results", nil, map[string]string{"configId": "c", "systemId": "s", "environmentId": "prod"}, nil},
		{"PUT", "/sandbox-policy", nil, nil, map[string]any{"egress": "deny"}},
		{"GET", "/sandbox-policy", nil, nil, nil},
		{"PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": "scrape"}, nil, map[string]any{"payload": map[string]any{}}},
		{"DELETE", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": "scrape"}, nil, nil},
		{"GET", "/telemetry", nil, map[string]string{"satelliteId": id}, nil},
		{"POST", "/satellites/{satelliteId}/token", p, nil, nil},
		{"DELETE", "/satellites/{satelliteId}", p, nil, nil},
	}
	for _, st := range steps {
		code, out := h.call(st.method, st.route, st.params, st.query, st.body)
		if code >= 300 {
			t.Fatalf("%s %s: %d %v", st.method, st.route, code, out)
		}
		if code == http.StatusAccepted {
			// A fan-out job started: its progress is read back.
			h.fanout(code, out)
		}
	}
	// A fan-out that cannot start is recorded as failed.
	h.env.Lambda.RefuseInvocations(1)
	if code, out := h.call("POST", "/script-packages", nil, nil, map[string]any{"packages": []any{map[string]any{"name": "b", "version": "1", "data": "Yg=="}}}); code != http.StatusInternalServerError {
		t.Fatalf("publish with the fan-out function refusing: %d %v", code, out)
	}
	if len(eb.Requests()) == 0 {
		t.Fatal("scenario published no lifecycle event")
	}
	testenv.CheckPolicy(t, testenv.Template(t), "AdminFunction", calls, h.env.TableNames, "")
}

// TestPublishWhoseRefreshCannotStart: the set is published all the same (a
// satellite gets it when it next authenticates), the answer says so, and
// the job says why it failed.
func TestPublishWhoseRefreshCannotStart(t *testing.T) {
	h := newHarness(t)
	h.env.Lambda.RefuseInvocations(1)
	code, out := h.call("POST", "/script-packages", nil, nil, map[string]any{"packages": []any{map[string]any{"name": "a", "version": "1", "data": "YQ=="}}})
	msg := errorMessage(out)
	if code != http.StatusInternalServerError || !strings.Contains(msg, "is published, but its refresh_script_packages push did not start") ||
		!strings.Contains(msg, "next authenticate") {
		t.Fatalf("publish: %d %q", code, msg)
	}
	if h.env.Lambda.Refused() != 1 {
		t.Fatalf("%d invocations refused, want 1", h.env.Lambda.Refused())
	}
	hash, _ := h.a.Registry.DesiredLockfileHash(ctx)
	if hash == nil || !strings.Contains(msg, *hash) {
		t.Errorf("desired lockfile %v, answer %q: the set must be published and named", hash, msg)
	}
	// The job records the failure; its other segment ran to its end.
	items := testenv.ScanAll(t, h.env.DB, h.env.JobsTable)
	if len(items) != 1 {
		t.Fatalf("%d jobs stored, want 1", len(items))
	}
	id := items[0]["jobId"].(*types.AttributeValueMemberS).Value
	var job map[string]any
	testenv.Eventually(t, "the started segment done", func() bool {
		_, job = h.call("GET", "/fan-outs/{jobId}", map[string]string{"jobId": id}, nil, nil)
		return job["segmentsDone"] == float64(1)
	})
	if job["state"] != "failed" || !strings.Contains(job["error"].(string), "Function not found") {
		t.Errorf("job = %v, want failed naming why", job)
	}
	for _, bad := range []string{"no-such-job", "00000000-0000-0000-0000-000000000000"} {
		if code, out := h.call("GET", "/fan-outs/{jobId}", map[string]string{"jobId": bad}, nil, nil); code != http.StatusNotFound {
			t.Errorf("GET /fan-outs/%s: %d %v, want 404", bad, code, out)
		}
	}
}

// TestCreateFixture invokes the handler with events/admin-create-satellite.json,
// the event API Gateway's HTTP API sends (usable with sam local invoke -e).
func TestCreateFixture(t *testing.T) {
	h := newHarness(t)
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "events", "admin-create-satellite.json"))
	if err != nil {
		t.Fatal(err)
	}
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	resp, err := h.a.Admin.Handle(ctx, req)
	if err != nil || resp.StatusCode != http.StatusCreated || !strings.Contains(resp.Body, `"name":"Berlin edge"`) {
		t.Errorf("fixture: %d %s %v", resp.StatusCode, resp.Body, err)
	}
}

// TestThresholdChangesAgreeEverywhereAtOnce checks that after a PATCH of
// offlineThresholdMs the satellite's status, the online listing and the
// sweep tell the same story at once, lowering and raising.
func TestThresholdChangesAgreeEverywhereAtOnce(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Quiet")
	p := map[string]string{"satelliteId": id}
	if code, out := h.call("PATCH", "/satellites/{satelliteId}", p, nil, map[string]any{"offlineThresholdMs": 600000}); code != 200 {
		t.Fatalf("patch: %d %v", code, out)
	}
	h.connect(id, tok) // heartbeat at h.now
	views := func() (status string, listed bool, stale int) {
		_, got := h.call("GET", "/satellites/{satelliteId}", p, nil, nil)
		_, online := h.call("GET", "/satellites/online", nil, nil, nil)
		for _, o := range online["satelliteIds"].([]any) {
			listed = listed || o == id
		}
		found, err := h.a.Registry.StaleSatellites(ctx, h.now)
		if err != nil {
			t.Fatal(err)
		}
		return got["status"].(string), listed, len(found)
	}
	h.now = h.now.Add(3 * time.Minute) // silent for 3 min: within 10 min

	if status, listed, stale := views(); status != "online" || !listed || stale != 0 {
		t.Fatalf("before: %s, listed %v, %d stale; want online, listed, none", status, listed, stale)
	}
	// Lowered below the silence: offline everywhere, and the sweep sees it.
	h.call("PATCH", "/satellites/{satelliteId}", p, nil, map[string]any{"offlineThresholdMs": 120000})
	if status, listed, stale := views(); status != "offline" || listed || stale != 1 {
		t.Errorf("lowered: %s, listed %v, %d stale; want offline, not listed, stale", status, listed, stale)
	}
	// Raised again before a sweep: online everywhere.
	h.call("PATCH", "/satellites/{satelliteId}", p, nil, map[string]any{"offlineThresholdMs": 600000})
	if status, listed, stale := views(); status != "online" || !listed || stale != 0 {
		t.Errorf("raised: %s, listed %v, %d stale; want online, listed, none", status, listed, stale)
	}
	// Lowered, and this time the sweep marks it heartbeat_lost; raising the
	// threshold does not bring it back before it heartbeats.
	h.call("PATCH", "/satellites/{satelliteId}", p, nil, map[string]any{"offlineThresholdMs": 120000})
	if _, err := h.a.Sweep.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	h.call("PATCH", "/satellites/{satelliteId}", p, nil, map[string]any{"offlineThresholdMs": nil})
	if status, listed, stale := views(); status != "offline" || listed || stale != 0 {
		t.Errorf("after heartbeat_lost: %s, listed %v, %d stale; want offline, not listed, not stale again", status, listed, stale)
	}
}

// TestConcurrentAssignmentReplacementsDoNotMerge races two replacements
// with disjoint sets, round after round: the stored set is always exactly
// one of them (the loser is answered 409), never their union.
func TestConcurrentAssignmentReplacementsDoNotMerge(t *testing.T) {
	h := newHarness(t)
	id, _ := h.create("Contested")
	p := map[string]string{"satelliteId": id}
	sets := [2][]any{
		{assignment("cfg-a1", "sys"), assignment("cfg-a2", "sys")},
		{assignment("cfg-b1", "sys"), assignment("cfg-b2", "sys")},
	}
	conflicts := 0
	for round := range 20 {
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _ = h.call("PUT", "/satellites/{satelliteId}/assignments", p, nil, map[string]any{"assignments": sets[i]})
			}()
		}
		wg.Wait()
		for _, c := range codes {
			switch c {
			case http.StatusOK:
			case http.StatusConflict:
				conflicts++
			default:
				t.Fatalf("round %d: status %v", round, codes)
			}
		}
		_, sat, _ := h.a.Registry.Satellite(ctx, id)
		var got []string
		for _, a := range sat {
			got = append(got, a.ConfigID)
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"cfg-a1", "cfg-a2"}) && !slices.Equal(got, []string{"cfg-b1", "cfg-b2"}) {
			t.Fatalf("round %d (%v): stored %v, want exactly one of the two sets", round, codes, got)
		}
	}
	t.Logf("%d of 40 replacements lost a race and were answered 409", conflicts)
}

// messageFunction is the message function of this harness's tables,
// replying through the harness's Management API server.
func (h *harness) messageFunction() *app.App {
	a, _ := h.env.App(h.t, h.env.Config(h.mgmt.URL), app.Options{Now: func() time.Time { return h.now }})
	return a
}

// authenticateThrough opens a connection and authenticates it through the
// message function a, as the satellite would.
func (h *harness) authenticateThrough(a *app.App, id, tok string) string {
	h.t.Helper()
	conn := testenv.NewConnectionID()
	h.mgmt.Open(conn)
	if _, err := a.WebSocket.Connect(ctx, testenv.Event(h.t, "connect", conn)); err != nil {
		h.t.Fatal(err)
	}
	if _, err := a.WebSocket.Message(ctx, testenv.Message(h.t, "authenticate", conn, map[string]any{"clientId": id, "token": tok})); err != nil {
		h.t.Fatal(err)
	}
	return conn
}

// TestRotationRevokesConnectionsAtOnceEvenIfShutdownFails: the old
// connection cannot be sent shutdown, but from the rotation on it has no
// authority: its result is refused and it is answered auth_failed, by the
// very instance that trusts it in its cache.
func TestRotationRevokesConnectionsAtOnceEvenIfShutdownFails(t *testing.T) {
	h := newHarness(t, func(c *app.Config) { c.ManagementURL = "http://127.0.0.1:1" })
	msg := h.messageFunction()
	id, tok := h.create("Revoked")
	h.call("PUT", "/satellites/{satelliteId}/assignments", map[string]string{"satelliteId": id}, nil, map[string]any{"assignments": []any{assignment("cfg-1", "sys-1")}})
	conn := h.authenticateThrough(msg, id, tok)

	code, out := h.call("POST", "/satellites/{satelliteId}/token", map[string]string{"satelliteId": id}, nil, nil)
	if code != 200 || out["shutdownComplete"] != false || out["token"] == nil {
		t.Fatalf("rotate with the Management API down: %d %v, want the token and shutdownComplete false", code, out)
	}
	if _, err := msg.WebSocket.Message(ctx, testenv.Message(t, "result", conn, map[string]any{"configId": "cfg-1", "systemId": "sys-1", "executedAt": h.now.Format(time.RFC3339)})); err != nil {
		t.Fatal(err)
	}
	if r, _ := h.a.Registry.LatestResults(ctx, "cfg-1", "sys-1", nil, 10); len(r) != 0 {
		t.Errorf("a revoked connection's result was stored")
	}
	frames := h.mgmt.Frames(t, conn)
	if last := frames[len(frames)-1]; last["type"] != "auth_failed" || !h.mgmt.Closed(conn) {
		t.Errorf("revoked connection got %v (closed %v), want auth_failed and the close", last, h.mgmt.Closed(conn))
	}
}

// TestDeleteLeavesNoWindowForAReconnect: a satellite that reconnects the
// moment it receives its shutdown finds its token already refused, so no
// connection survives the deletion with an orphaned record.
func TestDeleteLeavesNoWindowForAReconnect(t *testing.T) {
	h := newHarness(t)
	msg := h.messageFunction()
	id, tok := h.create("Doomed")
	conn := h.authenticateThrough(msg, id, tok)
	var again string
	// The satellite reconnects as soon as it is told to shut down: inside
	// the window between the shutdown and the deletion.
	h.a.Push.Sender.Connections = &onShutdown{ConnectionAPI: h.a.Push.Sender.Connections, then: func() {
		again = h.authenticateThrough(msg, id, tok)
	}}
	if code, out := h.call("DELETE", "/satellites/{satelliteId}", map[string]string{"satelliteId": id}, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, out)
	}
	if again == "" {
		t.Fatal("the reconnect did not happen")
	}
	if f := h.mgmt.Frames(t, again); len(f) != 1 || f[0]["type"] != "auth_failed" {
		t.Errorf("reconnect during the deletion got %v, want auth_failed", f)
	}
	for _, c := range []string{conn, again} {
		if rec, err := h.a.Registry.Connection(ctx, c, h.now); err == nil && rec.Authenticated() {
			t.Errorf("connection %s survived the deletion bound to the satellite", c)
		}
	}
}

// onShutdown runs then after it posts the first shutdown frame.
type onShutdown struct {
	satellite.ConnectionAPI
	once sync.Once
	then func()
}

func (o *onShutdown) Post(ctx context.Context, managementURL, connectionID string, data []byte) error {
	err := o.ConnectionAPI.Post(ctx, managementURL, connectionID, data)
	if strings.Contains(string(data), `"shutdown"`) {
		o.once.Do(o.then)
	}
	return err
}
