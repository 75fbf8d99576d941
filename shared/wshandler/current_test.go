package wshandler_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// The current protocol's additions (PROTOCOL-CURRENT), through the real
// handlers against DynamoDB Local and the S3 server.

// framesOf returns the frames posted to id of one type.
func framesOf(t *testing.T, h *harness, id, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, f := range h.mgmt.Frames(t, id) {
		if f["type"] == typ {
			out = append(out, f)
		}
	}
	return out
}

// authenticateWith authenticates with extra authenticate fields and returns
// the connection id; it does not look at what was sent back.
func (h *harness) authenticateWith(satelliteID, tok string, extra map[string]any) string {
	h.t.Helper()
	id := h.open()
	fields := map[string]any{"clientId": satelliteID, "token": tok}
	for k, v := range extra {
		fields[k] = v
	}
	h.send(testenv.Message(h.t, "authenticate", id, fields))
	if got := framesOf(h.t, h, id, "authenticated"); len(got) != 1 {
		h.t.Fatalf("authenticate %s: frames %v", satelliteID, h.mgmt.Frames(h.t, id))
	}
	return id
}

// satelliteWrites lists the update expressions of the writes of the
// satellite item a recorder saw.
func satelliteWrites(h *harness, calls *testenv.Calls) []string {
	var out []string
	for _, c := range calls.All() {
		if in, ok := c.Input.(*dynamodb.UpdateItemInput); ok && aws.ToString(in.TableName) == h.env.Tables.Satellites {
			out = append(out, aws.ToString(in.UpdateExpression))
		}
	}
	return out
}

func TestCapabilitiesAreStoredWhenTheyChange(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-caps")
	id := h.authenticateWith("sat-caps", tok, map[string]any{"capabilities": []string{"telemetry", "scrape"}})
	if got := h.stored("sat-caps").Capabilities; strings.Join(got, ",") != "scrape,telemetry" {
		t.Fatalf("after authenticate: %v", got)
	}

	heartbeat := func(caps any) []string {
		t.Helper()
		h.calls["message"].Reset()
		fields := map[string]any{}
		if caps != nil {
			fields["capabilities"] = caps
		}
		h.send(testenv.Message(t, "heartbeat", id, fields))
		if n := h.calls["message"].Count("DynamoDB"); n != 1 {
			t.Errorf("heartbeat made %d DynamoDB requests, want its one write", n)
		}
		return satelliteWrites(h, h.calls["message"])
	}
	if writes := heartbeat([]string{"telemetry", "scrape"}); len(writes) != 1 || strings.Contains(writes[0], "capabilities") {
		t.Errorf("a heartbeat repeating the capabilities wrote %v, want liveness only", writes)
	}
	if writes := heartbeat([]string{"telemetry", "scrape", "syslog"}); len(writes) != 1 || !strings.Contains(writes[0], "capabilities") {
		t.Errorf("a heartbeat changing them wrote %v, want them in its one write", writes)
	}
	if got := h.stored("sat-caps").Capabilities; strings.Join(got, ",") != "scrape,syslog,telemetry" {
		t.Errorf("after the change: %v", got)
	}
	heartbeat(nil) // an agent that sends none in heartbeats changes nothing
	if got := h.stored("sat-caps").Capabilities; len(got) != 3 {
		t.Errorf("a heartbeat without capabilities changed them to %v", got)
	}
	// A cold instance does not know what the connection reported: it writes
	// them again, in the heartbeat's one request.
	cold := h.build("message-cold")
	if _, err := cold.WebSocket.Message(ctx, testenv.Message(t, "heartbeat", id, map[string]any{"capabilities": []string{"scrape"}})); err != nil {
		t.Fatal(err)
	}
	if got := h.stored("sat-caps").Capabilities; strings.Join(got, ",") != "scrape" {
		t.Errorf("from another instance: %v", got)
	}
	// An older agent reconnecting without capabilities keeps them.
	h.authenticate("sat-caps", tok)
	if got := h.stored("sat-caps").Capabilities; strings.Join(got, ",") != "scrape" {
		t.Errorf("after an authenticate without capabilities: %v", got)
	}
}

// TestCapabilitiesAbsentKeepEmptyClears checks capabilities as upstream
// stores them: a frame without the field (an older agent build) keeps the
// stored list, an explicit list replaces it, an empty one clears it.
func TestCapabilitiesAbsentKeepEmptyClears(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-keep")
	stored := func(when string, want string) {
		t.Helper()
		got := h.stored("sat-keep").Capabilities
		if strings.Join(got, ",") != want || got == nil {
			t.Errorf("%s: stored %#v, want [%s]", when, got, want)
		}
	}
	heartbeat := func(id string, caps any) {
		t.Helper()
		h.send(testenv.Message(t, "heartbeat", id, map[string]any{"capabilities": caps}))
	}

	h.authenticateWith("sat-keep", tok, map[string]any{"capabilities": []string{"a", "b"}})
	stored("authenticate with [a b]", "a,b")
	h.authenticateWith("sat-keep", tok, nil)
	stored("reconnected without the field", "a,b")
	id := h.authenticateWith("sat-keep", tok, map[string]any{"capabilities": nil})
	stored("reconnected with null", "a,b")
	heartbeat(id, testenv.Absent)
	stored("a heartbeat without the field", "a,b")
	// The instance that bound the connection without capabilities knows
	// nothing it reported: an empty list is written, not taken for a repeat.
	heartbeat(id, []string{})
	stored("a heartbeat with []", "")
	heartbeat(id, []string{"b", "a"})
	stored("a heartbeat with [b a]", "a,b")

	h.authenticateWith("sat-keep", tok, map[string]any{"capabilities": []string{}})
	stored("reconnected with []", "")
	h.authenticateWith("sat-keep", tok, nil)
	stored("then without the field", "")
	h.authenticateWith("sat-keep", tok, map[string]any{"capabilities": []string{"a"}})
	stored("then with [a]", "a")

	// A satellite that never said (null in its view) and authenticates with
	// [] said it offers nothing: [] is stored.
	fresh := h.satellite("sat-none")
	h.authenticateWith("sat-none", fresh, nil)
	if got := h.stored("sat-none").Capabilities; got != nil {
		t.Errorf("never said: %#v, want nil", got)
	}
	h.authenticateWith("sat-none", fresh, map[string]any{"capabilities": []string{}})
	if got := h.stored("sat-none").Capabilities; got == nil || len(got) != 0 {
		t.Errorf("said []: %#v, want []", got)
	}
}

func TestSandboxPolicyRidesAuthenticated(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-sandbox")
	authenticated := func() map[string]any {
		t.Helper()
		id := h.authenticateWith("sat-sandbox", tok, nil)
		return framesOf(t, h, id, "authenticated")[0]
	}
	if got := authenticated(); got["sandboxPolicy"] != nil {
		t.Errorf("never set: authenticated carries %v, want no sandboxPolicy (fail-closed)", got["sandboxPolicy"])
	}
	if _, hasField := authenticated()["sandboxPolicy"]; hasField {
		t.Error("never set: the field is present, want it omitted")
	}
	policy := json.RawMessage(`{"egress":{"allow":["api.example.test:443"]},"fs":"read-only"}`)
	if err := h.env.Registry().SetSandboxPolicy(ctx, policy, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(authenticated()["sandboxPolicy"]); string(got) != `{"egress":{"allow":["api.example.test:443"]},"fs":"read-only"}` {
		t.Errorf("set: authenticated carries %s", got)
	}
	// A stored policy that is not an object is never sent.
	if err := h.env.Registry().SetSandboxPolicy(ctx, json.RawMessage(`"allow-all"`), h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := authenticated(); got["sandboxPolicy"] != nil {
		t.Errorf("corrupt: authenticated carries %v", got["sandboxPolicy"])
	}
	if len(h.logLines("stored sandbox policy is not a JSON object; omitted")) == 0 {
		t.Error("a corrupt stored policy was not logged")
	}
}

func TestSandboxPolicyReadFailureSendsNothingWeaker(t *testing.T) {
	fault := &testenv.Fault{Match: func(op string, input any) bool {
		in, ok := input.(*dynamodb.QueryInput)
		if op != "Query" || !ok {
			return false
		}
		pk, _ := in.ExpressionAttributeValues[":pk"].(*types.AttributeValueMemberS)
		return pk != nil && pk.Value == "SCRIPT_PACKAGES" // the fleet settings
	}}
	h := newHarness(t, withFault(fault))
	if err := h.env.Registry().SetSandboxPolicy(ctx, json.RawMessage(`{"egress":"deny"}`), h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	tok := h.satellite("sat-fault")
	id := h.open()
	_, err := h.message.WebSocket.Message(ctx, testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-fault", "token": tok}))
	if fault.Fired() != 1 {
		t.Fatalf("the settings read was not failed (fired %d)", fault.Fired())
	}
	if err == nil {
		t.Error("a failed settings read did not fail the invocation")
	}
	if got := framesOf(t, h, id, "authenticated"); len(got) != 0 {
		t.Fatalf("authenticated sent without the policy it should carry: %v", got)
	}
	// The attempt was given back: the satellite's retry authenticates, with
	// the policy.
	h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-fault", "token": tok}))
	got := framesOf(t, h, id, "authenticated")
	if len(got) != 1 || got[0]["sandboxPolicy"] == nil {
		t.Errorf("retry: %v", h.mgmt.Frames(t, id))
	}
}

func mustMillis(t *testing.T, at string) int64 {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UnixMilli()
}

// strategyWithSecrets is an assignment whose strategy config and collectors
// hold secret references among plain values.
func strategyWithSecrets(t *testing.T, configID string, secret string) satellite.Assignment {
	t.Helper()
	raw := map[string]any{
		"configId": configID, "systemId": "sys-" + configID, "strategyId": "http", "intervalSeconds": 30,
		"config": map[string]any{
			"url":     "https://example.test",
			"auth":    map[string]any{"user": "bob", "password": "${{ secrets." + secret + " }}"},
			"headers": []any{map[string]any{"name": "X-Token", "value": "${{secrets.API_TOKEN}}"}, map[string]any{"name": "Accept", "value": "text/plain"}},
		},
		"collectors": []any{
			map[string]any{"id": "col-db", "collectorId": "sql", "config": map[string]any{"dsn": "postgres://db", "password": "${{ secrets.DB-PASSWORD }}"}},
			map[string]any{"id": "col-plain", "collectorId": "ping", "config": map[string]any{"host": "example.test"}},
		},
	}
	b, _ := json.Marshal(raw)
	a, err := satellite.ParseAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestConfigSecrets(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-cfgsec", strategyWithSecrets(t, "cfg-1", "API_TOKEN"), strategyWithSecrets(t, "cfg-missing", "NOT_THERE"))
	h.satellite("sat-other", strategyWithSecrets(t, "cfg-other", "API_TOKEN"))
	id := h.authenticate("sat-cfgsec", tok)
	request := func(configID string) map[string]any {
		t.Helper()
		h.send(testenv.Message(t, "config-secrets", id, map[string]any{"requestId": "req-" + configID, "configId": configID}))
		got := lastFrame(t, h, id)
		if got["type"] != "config_secrets" || got["requestId"] != "req-"+configID {
			t.Fatalf("reply = %v", got)
		}
		return got
	}

	got := request("cfg-1")
	strategy, _ := got["strategy"].(map[string]any)
	collectors, _ := got["collectors"].(map[string]any)
	db, _ := collectors["col-db"].(map[string]any)
	if len(strategy) != 2 || strategy["auth.password"] != "s3cr3t-api-token-value" || strategy["headers[0].value"] != "s3cr3t-api-token-value" {
		t.Errorf("strategy = %v", strategy)
	}
	if len(collectors) != 1 || len(db) != 1 || db["password"] != "pa55-value-never-logged" || got["error"] != nil {
		t.Errorf("collectors = %v (a collector without secrets is omitted)", collectors)
	}

	for _, tc := range []struct{ configID, want string }{
		{"cfg-unknown", "No assignment for configId cfg-unknown"},
		{"cfg-other", "No assignment for configId cfg-other"}, // another satellite's
		{"cfg-missing", "NOT_THERE"},
	} {
		got := request(tc.configID)
		msg, _ := got["error"].(string)
		if !strings.Contains(msg, tc.want) || got["strategy"] != nil || got["collectors"] != nil {
			t.Errorf("%s: reply %v, want only an error naming %q", tc.configID, got, tc.want)
		}
	}
	// A malformed request still gets an answer under its requestId.
	h.send(testenv.Raw(t, id, `{"type":"request_config_secrets","requestId":"req-bad","runId":"r"}`))
	if got := lastFrame(t, h, id); got["requestId"] != "req-bad" || !strings.Contains(got["error"].(string), "configId") {
		t.Errorf("malformed request: %v", got)
	}
	for _, secret := range []string{"s3cr3t-api-token-value", "pa55-value-never-logged"} {
		if strings.Contains(h.logs.String(), secret) {
			t.Errorf("a secret value reached the log")
		}
	}

	t.Run("no secret source", func(t *testing.T) {
		h := newHarness(t, withoutSecrets)
		tok := h.satellite("sat-nosec", strategyWithSecrets(t, "cfg-1", "API_TOKEN"), assignment(t, "cfg-plain", "sys-plain"))
		id := h.authenticate("sat-nosec", tok)
		// A config without references needs no secret source.
		h.send(testenv.Message(t, "config-secrets", id, map[string]any{"configId": "cfg-plain"}))
		if got := lastFrame(t, h, id); got["type"] != "config_secrets" || got["error"] != nil || got["strategy"] != nil {
			t.Errorf("config secrets of a config without references: %v", got)
		}
		h.send(testenv.Message(t, "config-secrets", id, map[string]any{"configId": "cfg-1"}))
		if got := lastFrame(t, h, id); got["error"] != "Secret delivery is not available on this core instance." {
			t.Errorf("config secrets: reply = %v", got)
		}
		h.send(testenv.Message(t, "capability-secret", id, nil))
		if got := lastFrame(t, h, id); got["type"] != "capability_secret_response" || got["error"] != "Secret delivery is not available on this core instance." {
			t.Errorf("capability secret: reply = %v", got)
		}
	})
	t.Run("rotated token", func(t *testing.T) {
		if err := h.env.Registry().SetTokenHash(ctx, "sat-cfgsec", "$2a$10$rotatedrotatedrotatedrotatedrotatedrotatedrotatedrota"); err != nil {
			t.Fatal(err)
		}
		h.send(testenv.Message(t, "config-secrets", id, map[string]any{"configId": "cfg-1"}))
		if got := lastFrame(t, h, id); got["type"] != "auth_failed" || !h.mgmt.Closed(id) {
			t.Errorf("after rotation: %v, closed %v", got, h.mgmt.Closed(id))
		}
	})
}

// withEnvironments is an assignment listing environments.
func withEnvironments(t *testing.T, configID, systemID string, envs ...string) satellite.Assignment {
	t.Helper()
	list := []any{}
	for _, e := range envs {
		list = append(list, map[string]any{"id": e, "name": strings.ToUpper(e), "fields": map[string]any{"host": e + ".example.test"}})
	}
	raw := map[string]any{
		"configId": configID, "systemId": systemID, "strategyId": "http", "intervalSeconds": 30,
		"config": map[string]any{"url": "https://example.test"}, "environments": list,
		"systemMetadata": map[string]any{"owner": "team-a", "tier": 1},
	}
	b, _ := json.Marshal(raw)
	a, err := satellite.ParseAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestEnvironments(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-env", withEnvironments(t, "cfg-1", "sys-1", "prod", "stage"))
	id := h.authenticate("sat-env", tok)
	// environments and systemMetadata reach the satellite unchanged.
	got, _ := json.Marshal(framesOf(t, h, id, "authenticated")[0]["assignments"])
	if !strings.Contains(string(got), `"environments":[{"fields":{"host":"prod.example.test"},"id":"prod","name":"PROD"}`) ||
		!strings.Contains(string(got), `"systemMetadata":{"owner":"team-a","tier":1}`) {
		t.Errorf("assignments = %s", got)
	}
	result := func(env any) {
		t.Helper()
		fields := map[string]any{"configId": "cfg-1", "systemId": "sys-1"}
		if env != nil {
			fields["environmentId"] = env
		}
		h.send(testenv.Message(t, "result", id, fields))
	}
	result("prod")
	result("stage")
	result(nil)
	result("dev") // not listed: dropped like an unassigned result
	reg := h.env.Registry()
	all, err := reg.LatestResults(ctx, "cfg-1", "sys-1", nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("stored %d results, want 3 (prod, stage, env-less)", len(all))
	}
	prod := "prod"
	only, err := reg.LatestResults(ctx, "cfg-1", "sys-1", &prod, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(only) != 1 || only[0].EnvironmentID == nil || *only[0].EnvironmentID != "prod" {
		t.Errorf("prod's results = %+v", only)
	}
	dropped := h.logLines("frame dropped")
	if len(dropped) != 1 || !strings.Contains(dropped[0]["reason"].(string), "does not list environment dev") {
		t.Errorf("dropped = %v", dropped)
	}
}

func TestCapabilityChannels(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-capch")
	reg := h.env.Registry()
	scrape := satellite.CapabilityConfig{
		Kind:    "scrape",
		Payload: json.RawMessage(`{"targets":[{"id":"node-exporter","url":"http://10.0.0.5:9100/metrics"},{"id":"app","url":"http://10.0.0.6/metrics"}]}`),
		Secrets: map[string]map[string]string{
			"node-exporter": {"bearerToken": "${{ secrets.API_TOKEN }}"},
			"app":           {"bearerToken": "${{ secrets.NOT_THERE }}"},
		},
		UpdatedAt: h.clock.Now(),
	}
	if err := reg.SetCapabilityConfig(ctx, "sat-capch", scrape); err != nil {
		t.Fatal(err)
	}
	id := h.authenticateWith("sat-capch", tok, map[string]any{"capabilities": []string{"scrape"}})

	t.Run("config follows authenticated, without secrets", func(t *testing.T) {
		frames := h.mgmt.Frames(t, id)
		if len(frames) != 2 || frames[0]["type"] != "authenticated" || frames[1]["type"] != "capability_config" || frames[1]["kind"] != "scrape" {
			t.Fatalf("frames = %v", frames)
		}
		if raw, _ := json.Marshal(frames[1]); strings.Contains(string(raw), "secrets") || strings.Contains(string(raw), "API_TOKEN") {
			t.Errorf("capability_config carries secrets: %s", raw)
		}
	})
	t.Run("status keeps the latest per kind", func(t *testing.T) {
		status := func(at string, payload string) {
			t.Helper()
			ev := testenv.Raw(t, id, `{"type":"capability_status","kind":"scrape","payload":`+payload+`}`)
			ev.RequestContext.RequestTimeEpoch = mustMillis(t, at)
			h.send(ev)
		}
		status("2026-11-27T08:00:10Z", `{"targets":{"node-exporter":{"error":null}}}`)
		status("2026-11-27T08:00:05Z", `{"targets":{"node-exporter":{"error":"stale"}}}`) // handled late: older
		statuses, err := reg.CapabilityStatuses(ctx, "sat-capch")
		if err != nil {
			t.Fatal(err)
		}
		if len(statuses) != 1 || string(statuses[0].Payload) != `{"targets":{"node-exporter":{"error":null}}}` {
			t.Errorf("statuses = %+v", statuses)
		}
	})
	request := func(kind, payload string) map[string]any {
		t.Helper()
		h.send(testenv.Raw(t, id, `{"type":"capability_secret_request","requestId":"req-1","kind":"`+kind+`","payload":`+payload+`}`))
		got := lastFrame(t, h, id)
		if got["type"] != "capability_secret_response" || got["requestId"] != "req-1" {
			t.Fatalf("reply = %v", got)
		}
		return got
	}
	t.Run("a bound resource's secrets", func(t *testing.T) {
		got := request("scrape", `{"targetId":"node-exporter"}`)
		payload, _ := got["payload"].(map[string]any)
		if len(payload) != 1 || payload["bearerToken"] != "s3cr3t-api-token-value" || got["error"] != nil {
			t.Errorf("reply = %v", got)
		}
	})
	for _, tc := range []struct{ name, kind, payload, want string }{
		{"unbound resource", "scrape", `{"targetId":"someone-elses"}`, "Resource someone-elses is not bound"},
		{"unknown kind", "syslog", `{"targetId":"node-exporter"}`, "No capability config of kind syslog"},
		{"unresolvable secret", "scrape", `{"targetId":"app"}`, "NOT_THERE"},
		{"no resource named", "scrape", `{"other":"x"}`, "names no resource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := request(tc.kind, tc.payload)
			msg, _ := got["error"].(string)
			if !strings.Contains(msg, tc.want) || got["payload"] != nil {
				t.Errorf("reply = %v, want only an error naming %q", got, tc.want)
			}
		})
	}
	t.Run("rotation takes the secrets away", func(t *testing.T) {
		if err := reg.SetTokenHash(ctx, "sat-capch", "$2a$10$rotatedrotatedrotatedrotatedrotatedrotatedrotatedrota"); err != nil {
			t.Fatal(err)
		}
		h.send(testenv.Raw(t, id, `{"type":"capability_secret_request","requestId":"req-2","kind":"scrape","payload":{"targetId":"node-exporter"}}`))
		if got := lastFrame(t, h, id); got["type"] != "auth_failed" {
			t.Errorf("after rotation: %v", got)
		}
	})
	if strings.Contains(h.logs.String(), "s3cr3t-api-token-value") {
		t.Error("a secret value reached the log")
	}
}

func TestCapabilityStatusesAreBounded(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-many")
	id := h.authenticate("sat-many", tok)
	for i := 0; i <= satellite.MaxStatusKinds; i++ {
		h.send(testenv.Raw(t, id, `{"type":"capability_status","kind":"k`+strings.Repeat("x", i)+`","payload":{}}`))
	}
	statuses, err := h.env.Registry().CapabilityStatuses(ctx, "sat-many")
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != satellite.MaxStatusKinds {
		t.Errorf("kept %d kinds, want %d", len(statuses), satellite.MaxStatusKinds)
	}
	if dropped := h.logLines("frame dropped"); len(dropped) != 1 || !strings.Contains(dropped[0]["reason"].(string), "already keeps statuses") {
		t.Errorf("dropped = %v", dropped)
	}
	// A deleted satellite's late status creates nothing.
	if _, err := h.env.Registry().DeleteSatellite(ctx, "sat-many", h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := h.env.Registry().SaveCapabilityStatus(ctx, "sat-many", satellite.CapabilityStatus{Kind: "late", Payload: json.RawMessage(`{}`), ReportedAt: h.clock.Now()}); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("status of a deleted satellite: %v, want ENOTFOUND", err)
	}
	if statuses, _ := h.env.Registry().CapabilityStatuses(ctx, "sat-many"); len(statuses) != 0 {
		t.Errorf("a deleted satellite has statuses %v", statuses)
	}
}

// TestSandboxPolicyThatDoesNotFitRidesItsOwnFrame checks a satellite whose
// assignments leave no room for the policy in authenticated still gets both:
// authenticated without it, then sandbox_policy.
func TestSandboxPolicyThatDoesNotFitRidesItsOwnFrame(t *testing.T) {
	h := newHarness(t)
	big := map[string]any{"configId": "cfg-big", "systemId": "sys-big", "strategyId": "http", "intervalSeconds": 30,
		"config": map[string]any{"body": strings.Repeat("x", 120_000)}}
	b, _ := json.Marshal(big)
	a, err := satellite.ParseAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	tok := h.satellite("sat-big", a)
	policy := `{"egress":{"allow":["` + strings.Repeat("a", satellite.MaxSandboxPolicyBytes-40) + `"]}}`
	if err := h.env.Registry().SetSandboxPolicy(ctx, json.RawMessage(policy), h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	id := h.authenticateWith("sat-big", tok, nil)
	frames := h.mgmt.Frames(t, id)
	if len(frames) != 2 || frames[0]["type"] != "authenticated" || frames[0]["sandboxPolicy"] != nil || frames[1]["type"] != "sandbox_policy" {
		t.Fatalf("frames: %d, types %v %v", len(frames), frames[0]["type"], frames[len(frames)-1]["type"])
	}
	if got, _ := json.Marshal(frames[1]["policy"]); string(got) != policy {
		t.Errorf("policy pushed = %.60s...", got)
	}
}

func TestCapabilitiesAnAgentGetsWrongAreCleanedNotRefused(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-oddcaps")
	h.authenticateWith("sat-oddcaps", tok, map[string]any{"capabilities": []string{"scrape", "log receivers"}})
	if got := h.stored("sat-oddcaps").Capabilities; strings.Join(got, ",") != "scrape" {
		t.Errorf("stored %v", got)
	}
	if lines := h.logLines("capabilities cleaned"); len(lines) != 1 {
		t.Errorf("cleaning logged %d times", len(lines))
	}
}
