package admin_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/s3telemetry"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestSandboxPolicy(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Sandboxed")
	conn := h.connect(id, tok)
	h.now = h.now.Add(time.Minute) // it authenticated well before the change

	if code, out := h.call("GET", "/sandbox-policy", nil, nil, nil); code != 200 || out["policy"] != nil || out["updatedAt"] != nil {
		t.Errorf("never set: %d %v", code, out)
	}
	policy := map[string]any{"egress": map[string]any{"allow": []any{"api.example.test:443"}}}
	code, out := h.call("PUT", "/sandbox-policy", nil, nil, policy)
	if out["policy"] == nil || out["updatedAt"] == nil || out["push"].(map[string]any)["kind"] != "sandbox_policy" {
		t.Fatalf("set: %d %v", code, out)
	}
	// The push runs as a fan-out job; it had no late authentication to
	// push to again.
	job := h.fanout(code, out)
	if job["sent"] != float64(1) || job["late"].(map[string]any)["sent"] != float64(0) {
		t.Fatalf("push = %v", job)
	}
	frames := h.mgmt.Frames(t, conn)
	if len(frames) != 1 || frames[0]["type"] != "sandbox_policy" {
		t.Fatalf("pushed %v", frames)
	}
	if got, _ := json.Marshal(frames[0]["policy"]); string(got) != `{"egress":{"allow":["api.example.test:443"]}}` {
		t.Errorf("pushed policy %s", got)
	}
	if code, out := h.call("GET", "/sandbox-policy", nil, nil, nil); code != 200 || out["policy"] == nil || out["updatedAt"] == nil {
		t.Errorf("read back: %d %v", code, out)
	}
	// A connection that authenticated around the change may have been
	// answered with the old policy after the push: it gets it a second time.
	late := h.connect(id, tok)
	code, out = h.call("PUT", "/sandbox-policy", nil, nil, map[string]any{"egress": "deny"})
	if job := h.fanout(code, out); job["sent"] != float64(2) || job["late"].(map[string]any)["sent"] != float64(1) {
		t.Errorf("second set's push: %v", job)
	}
	if got := h.mgmt.Frames(t, late); len(got) != 2 || got[1]["type"] != "sandbox_policy" {
		t.Errorf("the late connection got %v", got)
	}
	if got := h.mgmt.Frames(t, conn); len(got) != 2 {
		t.Errorf("the earlier connection got %d pushes, want one per change", len(got))
	}
	for _, tc := range []struct {
		body any
		code int
		want string
	}{
		{`["deny"]`, http.StatusBadRequest, "JSON object"},
		{`"deny"`, http.StatusBadRequest, "JSON object"},
		{`{"a":` + strings.Repeat(`"x`, 1) + strings.Repeat("x", satellite.MaxSandboxPolicyBytes) + `"}`, http.StatusRequestEntityTooLarge, "over the"},
		{`{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`, http.StatusUnprocessableEntity, "nests deeper"},
	} {
		code, out := h.call("PUT", "/sandbox-policy", nil, nil, tc.body)
		if code != tc.code || !strings.Contains(out["error"].(map[string]any)["message"].(string), tc.want) {
			t.Errorf("PUT %.40s: %d %v, want %d naming %q", tc.body, code, out, tc.code, tc.want)
		}
	}
}

func TestCapabilityConfigsAndTheSatelliteView(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Scraper")
	conn := h.connect(id, tok)
	h.now = h.now.Add(time.Minute) // it authenticated well before the change
	p := map[string]string{"satelliteId": id, "kind": "scrape"}
	body := map[string]any{
		"payload": map[string]any{"targets": []any{map[string]any{"id": "node-exporter", "url": "http://10.0.0.5:9100/metrics"}}},
		"secrets": map[string]any{"node-exporter": map[string]any{"bearerToken": "${{ secrets.NODE_TOKEN }}"}},
	}
	code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", p, nil, body)
	if code != 200 || out["kind"] != "scrape" {
		t.Fatalf("set: %d %v", code, out)
	}
	frames := h.mgmt.Frames(t, conn)
	if len(frames) != 1 || frames[0]["type"] != "capability_config" || frames[0]["kind"] != "scrape" || frames[0]["secrets"] != nil {
		t.Fatalf("pushed %v", frames)
	}
	if err := h.a.Registry.SaveCapabilityStatus(ctx, id, satellite.CapabilityStatus{Kind: "scrape", Payload: json.RawMessage(`{"ok":true}`), ReportedAt: h.now}); err != nil {
		t.Fatal(err)
	}
	sat, _, _ := h.a.Registry.Satellite(ctx, id)
	if _, err := h.a.Registry.BindConnection(ctx, h.connectOnly(), sat, sat.TokenHash, []string{"scrape", "telemetry"}, h.now); err != nil {
		t.Fatal(err)
	}
	code, view := h.call("GET", "/satellites/{satelliteId}", map[string]string{"satelliteId": id}, nil, nil)
	got, _ := json.Marshal(map[string]any{"capabilities": view["capabilities"], "configs": view["capabilityConfigs"], "statuses": view["capabilityStatuses"]})
	want := `{"capabilities":["scrape","telemetry"],` +
		`"configs":[{"kind":"scrape","payload":{"targets":[{"id":"node-exporter","url":"http://10.0.0.5:9100/metrics"}]},"secrets":{"node-exporter":{"bearerToken":"${{ secrets.NODE_TOKEN }}"}},"updatedAt":"2026-11-27T08:01:00Z"}],` +
		`"statuses":[{"kind":"scrape","payload":{"ok":true},"reportedAt":"2026-11-27T08:01:00Z"}]}`
	if code != 200 || string(got) != want {
		t.Errorf("view:\n got %s\nwant %s", got, want)
	}

	for _, tc := range []struct {
		kind string
		body any
		code int
		want string
	}{
		{"scrape", map[string]any{}, 422, "payload is required"},
		{"scrape", map[string]any{"payload": 1, "secrets": map[string]any{"t": map[string]any{"token": "plain-value"}}}, 422, "must be a secret reference"},
		{"scrape", map[string]any{"payload": 1, "secrets": map[string]any{"t": map[string]any{}}}, 422, "must bind 1 to"},
		{"scrape", map[string]any{"payload": 1, "secrets": []any{}}, 422, "secrets must be an object"},
		{"scrape", map[string]any{"payload": 1, "extra": 1}, 422, "unknown field"},
		{"bad kind!", map[string]any{"payload": 1}, 422, "not a capability kind"},
		{"scrape", map[string]any{"payload": strings.Repeat("x", satellite.MaxCapabilityPayloadBytes)}, 413, "over the"},
		{"scrape", map[string]any{"payload": 1, "secrets": map[string]any{"t": map[string]any{"f": "${{ secrets.X" + strings.Repeat("x", satellite.MaxCapabilityPayloadBytes) + " }}"}}}, 413, "secrets is"},
	} {
		code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": tc.kind}, nil, tc.body)
		if code != tc.code || !strings.Contains(out["error"].(map[string]any)["message"].(string), tc.want) {
			t.Errorf("PUT %s %v: %d %v, want %d naming %q", tc.kind, tc.body, code, out, tc.code, tc.want)
		}
	}
	if code, _ := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": "nobody", "kind": "scrape"}, nil, map[string]any{"payload": 1}); code != 404 {
		t.Errorf("unknown satellite: %d", code)
	}
	if code, _ := h.call("DELETE", "/satellites/{satelliteId}/capabilities/{kind}", p, nil, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, _ := h.call("DELETE", "/satellites/{satelliteId}/capabilities/{kind}", p, nil, nil); code != 404 {
		t.Errorf("delete again: %d", code)
	}
}

func TestCapabilityConfigsAreBounded(t *testing.T) {
	h := newHarness(t)
	id, _ := h.create("Many")
	for i := 0; i <= satellite.MaxCapabilityConfigs; i++ {
		code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": "k" + strings.Repeat("x", i)}, nil, map[string]any{"payload": 1})
		switch {
		case i < satellite.MaxCapabilityConfigs && code != 200:
			t.Fatalf("config %d: %d %v", i, code, out)
		case i == satellite.MaxCapabilityConfigs && code != 422:
			t.Errorf("config %d over the bound: %d %v", i, code, out)
		}
	}
	// Replacing an existing kind is always possible.
	if code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": "k"}, nil, map[string]any{"payload": 2}); code != 200 {
		t.Errorf("replace at the bound: %d %v", code, out)
	}
}

func TestResultsByEnvironment(t *testing.T) {
	h := newHarness(t)
	id, _ := h.create("Environments")
	a := assignment("cfg-1", "sys-1")
	a["environments"] = []any{map[string]any{"id": "prod", "name": "Production"}, map[string]any{"id": "stage", "name": "Staging"}}
	if code, out := h.call("PUT", "/satellites/{satelliteId}/assignments", map[string]string{"satelliteId": id}, nil, map[string]any{"assignments": []any{a}}); code != 200 {
		t.Fatalf("assign: %d %v", code, out)
	}
	for i, env := range []string{"prod", "stage", "prod", ""} {
		r := satellite.Result{
			ID: string(rune('a' + i)), ConfigID: "cfg-1", SystemID: "sys-1", SatelliteID: id, Status: satellite.CheckHealthy,
			ExecutedAt: h.now.Add(time.Duration(i) * time.Minute), ReceivedAt: h.now, ExpiresAt: h.now.Add(time.Hour),
		}
		if env != "" {
			r.EnvironmentID = &env
		}
		if err := h.a.Registry.RecordResult(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	envs := func(query map[string]string) []any {
		t.Helper()
		code, out := h.call("GET", "/results", nil, query, nil)
		if code != 200 {
			t.Fatalf("results %v: %d %v", query, code, out)
		}
		var got []any
		for _, r := range out["results"].([]any) {
			got = append(got, r.(map[string]any)["environmentId"])
		}
		return got
	}
	if got := envs(map[string]string{"configId": "cfg-1", "systemId": "sys-1"}); len(got) != 4 || got[0] != nil || got[1] != "prod" {
		t.Errorf("every environment, newest first: %v", got)
	}
	if got := envs(map[string]string{"configId": "cfg-1", "systemId": "sys-1", "environmentId": "prod"}); len(got) != 2 || got[0] != "prod" || got[1] != "prod" {
		t.Errorf("prod only: %v", got)
	}
	if code, _ := h.call("GET", "/results", nil, map[string]string{"configId": "cfg-1", "systemId": "sys-1", "environmentId": ""}, nil); code != 422 {
		t.Errorf("empty environmentId: %d", code)
	}
}

func TestTelemetryListing(t *testing.T) {
	h := newHarness(t)
	store := s3telemetry.New(h.telemetryBucket())
	at := h.now.Add(-2 * time.Hour)
	for i, b := range []satellite.TelemetryBatch{
		{SatelliteID: "sat-a", ConnectionID: "c1=", Kind: "logstream", BatchID: json.RawMessage(`1`), Payload: json.RawMessage(`[1]`), ReceivedAt: at},
		{SatelliteID: "sat-a", ConnectionID: "c1=", Kind: "metricstream", BatchID: json.RawMessage(`2`), Payload: json.RawMessage(`[1]`), ReceivedAt: at.Add(time.Minute)},
		{SatelliteID: "sat-b", ConnectionID: "c2=", Kind: "logstream", BatchID: json.RawMessage(`"x/y"`), Payload: json.RawMessage(`[1]`), ReceivedAt: at.Add(2 * time.Minute)},
		{SatelliteID: "sat-a", ConnectionID: "c1=", Kind: "logstream", BatchID: json.RawMessage(`3`), Payload: json.RawMessage(`[1]`), ReceivedAt: h.now.Add(-49 * time.Hour)},
	} {
		if _, err := store.Store(ctx, b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	list := func(query map[string]string) []string {
		t.Helper()
		code, out := h.call("GET", "/telemetry", nil, query, nil)
		if code != 200 {
			t.Fatalf("telemetry %v: %d %v", query, code, out)
		}
		var got []string
		for _, b := range out["batches"].([]any) {
			m := b.(map[string]any)
			got = append(got, m["satelliteId"].(string)+"/"+m["kind"].(string))
		}
		return got
	}
	if got := strings.Join(list(nil), ","); got != "sat-b/logstream,sat-a/metricstream,sat-a/logstream" {
		t.Errorf("last day, newest first: %s", got)
	}
	if got := strings.Join(list(map[string]string{"satelliteId": "sat-a", "kind": "logstream"}), ","); got != "sat-a/logstream" {
		t.Errorf("sat-a's logstream: %s", got)
	}
	if got := list(map[string]string{"satelliteId": "sat-a", "since": h.now.Add(-72 * time.Hour).Format(time.RFC3339), "limit": "10"}); len(got) != 3 {
		t.Errorf("three days of sat-a: %v", got)
	}
	for _, q := range []map[string]string{
		{"kind": "traces"}, {"since": "yesterday"}, {"limit": "0"}, {"satelliteId": "../x"},
		{"since": h.now.Add(-40 * 24 * time.Hour).Format(time.RFC3339)},
	} {
		if code, _ := h.call("GET", "/telemetry", nil, q, nil); code != 422 {
			t.Errorf("telemetry %v: %d, want 422", q, code)
		}
	}
}

// connectOnly records an open, unauthenticated connection.
func (h *harness) connectOnly() string {
	h.t.Helper()
	conn := testenv.NewConnectionID()
	h.mgmt.Open(conn)
	if err := h.env.Registry().OpenConnection(ctx, satellite.Connection{ID: conn, ConnectedAt: h.now, ExpiresAt: h.now.Add(satellite.ConnectionRecordTTL)}); err != nil {
		h.t.Fatal(err)
	}
	return conn
}

// telemetryBucket is the test's telemetry bucket, as the functions reach it.
func (h *harness) telemetryBucket() *s3objects.Bucket {
	h.t.Helper()
	return localaws.Bucket(h.env.S3Endpoint, h.env.TelemetryBucket)
}

// TestCapabilityConfigReachesARecentAuthenticationLast checks a connection
// that authenticated around a config change, and so may have sent the
// config it read before the change after the change's push, gets the new
// config again once such answers are out.
func TestCapabilityConfigReachesARecentAuthenticationLast(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Fresh")
	conn := h.connect(id, tok)
	if code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": "syslog"}, nil,
		map[string]any{"payload": map[string]any{"port": 514}}); code != 200 {
		t.Fatalf("set: %d %v", code, out)
	}
	frames := h.mgmt.Frames(t, conn)
	if len(frames) != 2 || frames[0]["type"] != "capability_config" || frames[1]["type"] != "capability_config" {
		t.Errorf("pushed %v, want the config twice", frames)
	}
}

// TestResultsOfTheLongestIDsAreStoredAndFound checks ids at the protocol's
// bound, made of characters the key escapes, still fit DynamoDB's key
// limits, and one environment's results are found among the check's.
func TestResultsOfTheLongestIDsAreStoredAndFound(t *testing.T) {
	h := newHarness(t)
	id, _ := h.create("Long ids")
	long := func(c string) string { return strings.Repeat(c, 256) }
	configID, systemID, env := long("#"), long("%"), long("/")
	a := map[string]any{"configId": configID, "systemId": systemID, "strategyId": "http", "config": map[string]any{}, "intervalSeconds": 60,
		"environments": []any{map[string]any{"id": env, "name": "far"}}}
	if code, out := h.call("PUT", "/satellites/{satelliteId}/assignments", map[string]string{"satelliteId": id}, nil, map[string]any{"assignments": []any{a}}); code != 200 {
		t.Fatalf("assign: %d %v", code, out)
	}
	r := satellite.Result{ID: "r", ConfigID: configID, SystemID: systemID, SatelliteID: id, Status: satellite.CheckHealthy, EnvironmentID: &env,
		ExecutedAt: h.now, ReceivedAt: h.now, ExpiresAt: h.now.Add(time.Hour)}
	if err := h.a.Registry.RecordResult(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := h.a.Registry.LatestResults(ctx, configID, systemID, &env, 1)
	if err != nil || len(got) != 1 {
		t.Errorf("found %d, %v", len(got), err)
	}
}

// TestRotationStopsTelemetryAtOnce: as with a result, a telemetry batch of a
// connection whose token was rotated through the admin API (the shutdown
// could not be sent) is refused from the rotation on, by the very instance
// that trusts the connection from its cache: auth_failed, the close, and
// nothing stored.
func TestRotationStopsTelemetryAtOnce(t *testing.T) {
	h := newHarness(t, func(c *app.Config) { c.ManagementURL = "http://127.0.0.1:1" })
	msg := h.messageFunction()
	id, tok := h.create("Telemetry")
	conn := h.authenticateThrough(msg, id, tok)
	stored := func() int {
		t.Helper()
		listing, err := s3telemetry.New(h.telemetryBucket()).List(ctx, satellite.TelemetryQuery{
			SatelliteID: id, Kinds: []string{"logstream"}, Since: h.now.Add(-time.Hour), Until: h.now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return len(listing.Batches)
	}
	send := func(batchID int) {
		t.Helper()
		body := `{"type":"telemetry_batch","batchId":` + strconv.Itoa(batchID) + `,"kind":"logstream","payload":[{"line":"a"}]}`
		if _, err := msg.WebSocket.Message(ctx, testenv.Raw(t, conn, body)); err != nil {
			t.Fatal(err)
		}
	}
	send(1)
	if n := stored(); n != 1 {
		t.Fatalf("%d batches stored before the rotation, want 1", n)
	}
	if code, out := h.call("POST", "/satellites/{satelliteId}/token", map[string]string{"satelliteId": id}, nil, nil); code != 200 || out["shutdownComplete"] != false {
		t.Fatalf("rotate with the Management API down: %d %v", code, out)
	}
	send(2)
	if n := stored(); n != 1 {
		t.Errorf("%d batches stored, want 1: the revoked connection's batch was stored", n)
	}
	frames := h.mgmt.Frames(t, conn)
	if last := frames[len(frames)-1]; last["type"] != "auth_failed" || !h.mgmt.Closed(conn) {
		t.Errorf("revoked connection got %v (closed %v), want auth_failed and the close", last, h.mgmt.Closed(conn))
	}
}
