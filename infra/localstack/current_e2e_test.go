package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// currentCheck runs in two environments, references secrets in its
// strategy config and in a collector, and declares a run secret.
const currentCheck = `{"configId":"cfg-cur","systemId":"sys-cur","strategyId":"http","intervalSeconds":30,
 "config":{"url":"https://example.com","auth":{"user":"probe","password":"${{ secrets.DB_PASSWORD }}"}},
 "collectors":[{"id":"col-api","collectorId":"http-request","config":{"headers":[{"name":"X-Token","value":"${{ secrets.API_TOKEN }}"}],
   "secretEnv":{"API_TOKEN":"${{ secrets.API_TOKEN }}"}}}],
 "systemMetadata":{"owner":"team-e2e"},
 "environments":[{"id":"prod","name":"Production"},{"id":"staging","name":"Staging","fields":{"host":"staging.example.com"}}]}`

// admin calls the local admin HTTP API.
func admin(t *testing.T, s *localstack.Stack, method, path string, body any) map[string]any {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.AdminURL+path, r)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func TestCurrentProtocolInProcess(t *testing.T) { currentProtocol(t, localstack.InProcess) }

func TestCurrentProtocolUnderRuntimeEmulator(t *testing.T) { currentProtocol(t, localstack.RIE) }

// currentProtocol runs everything today's satellites add, over a real
// socket through the local gateway: capabilities, the sandbox policy (in
// authenticated and pushed), config and capability secrets, environments,
// telemetry batches in a credit window, and capability configs and statuses.
func currentProtocol(t *testing.T, mode localstack.Mode) {
	s, _ := startStackWithLogs(t, mode)
	tok := createSatellite(t, s, "sat-cur", currentCheck)
	if err := s.WriteSecrets(map[string]string{"API_TOKEN": "cur-api-token", "DB_PASSWORD": "cur-db-password", "SCRAPE_TOKEN": "cur-scrape-token"}); err != nil {
		t.Fatal(err)
	}
	admin(t, s, "PUT", "/sandbox-policy", map[string]any{"egress": map[string]any{"allow": []any{"example.com:443"}}})
	scrape := map[string]any{
		"payload": map[string]any{"targets": []any{map[string]any{"id": "node", "url": "http://10.0.0.5:9100/metrics"}}},
		"secrets": map[string]any{"node": map[string]any{"bearerToken": "${{ secrets.SCRAPE_TOKEN }}"}},
	}
	admin(t, s, "PUT", "/satellites/sat-cur/capabilities/scrape", scrape)

	var simLog testenv.SafeBuffer
	sim := simulator.New(simulator.Config{URL: satelliteURL(t, s), ClientID: "sat-cur", Token: tok, HeartbeatInterval: 200 * time.Millisecond,
		ResultInterval: 200 * time.Millisecond, TelemetryInterval: 100 * time.Millisecond, Log: &simLog})
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	go func() { _ = sim.Run(simCtx) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("simulator log:\n%s\nsimulator state: %+v", simLog.String(), sim.State())
		}
	})

	testenv.Eventually(t, "every current message exchanged", func() bool {
		st := sim.State()
		return st.Authenticated && st.SandboxPolicy != nil && st.ConfigSecretsReceived["cfg-cur"] == 3 && st.SecretsReceived["col-api"] == 1 &&
			st.ResultsByEnvironment["prod"] > 0 && st.ResultsByEnvironment["staging"] > 0 &&
			st.CapabilityConfigs["scrape"] == 1 && st.CapabilitySecrets["scrape/node"] == 1 && st.CapabilityStatusesSent > 0 &&
			st.TelemetryAccepted >= 3
	})
	if st := sim.State(); st.TelemetryDropped != 0 || st.ResultsByEnvironment[""] != 0 {
		t.Errorf("telemetry dropped %d, environment-less results %d", st.TelemetryDropped, st.ResultsByEnvironment[""])
	}

	// What the backend kept, as the operator sees it.
	view := admin(t, s, "GET", "/satellites/sat-cur", nil)
	if caps, _ := json.Marshal(view["capabilities"]); string(caps) != `["scrape","telemetry"]` {
		t.Errorf("capabilities = %s", caps)
	}
	statuses, _ := view["capabilityStatuses"].([]any)
	if len(statuses) != 1 || !strings.Contains(mustJSON(statuses[0]), `"node"`) {
		t.Errorf("capability statuses = %v", view["capabilityStatuses"])
	}
	prod := admin(t, s, "GET", "/results?configId=cfg-cur&systemId=sys-cur&environmentId=prod", nil)
	if rs, _ := prod["results"].([]any); len(rs) == 0 || rs[0].(map[string]any)["environmentId"] != "prod" {
		t.Errorf("prod results = %v", prod)
	}
	testenv.Eventually(t, "telemetry listed", func() bool {
		out := admin(t, s, "GET", "/telemetry?satelliteId=sat-cur&kind=logstream", nil)
		batches, _ := out["batches"].([]any)
		return len(batches) >= 3
	})

	// Operators change things; the satellite follows without reconnecting.
	admin(t, s, "PUT", "/sandbox-policy", map[string]any{"egress": map[string]any{"allow": []any{}}})
	scrape["payload"] = map[string]any{"targets": []any{}}
	admin(t, s, "PUT", "/satellites/sat-cur/capabilities/scrape", scrape)
	testenv.Eventually(t, "pushed policy and capability config applied", func() bool {
		st := sim.State()
		return string(st.SandboxPolicy) == `{"egress":{"allow":[]}}` && st.CapabilityConfigs["scrape"] >= 2
	})
	if connects := sim.State().Connects; connects != 1 {
		t.Errorf("the satellite reconnected %d times", connects-1)
	}
	for _, secret := range []string{"cur-api-token", "cur-db-password", "cur-scrape-token"} {
		if strings.Contains(simLog.String(), secret) {
			t.Errorf("a secret value reached the simulator's log")
		}
	}
	sat, _, _ := s.Registry.Satellite(ctx, "sat-cur")
	if sat.StatusAt(time.Now()) != satellite.StatusOnline {
		t.Errorf("status = %s", sat.StatusAt(time.Now()))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
