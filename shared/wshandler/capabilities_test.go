package wshandler_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

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

func mustMillis(t *testing.T, at string) int64 {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UnixMilli()
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
