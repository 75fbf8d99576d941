package wshandler_test

import (
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/protocol"
)

func collector(id, collectorID string, secretEnv any) map[string]any {
	cfg := map[string]any{"path": "/health"}
	if secretEnv != nil {
		cfg["secretEnv"] = secretEnv
	}
	return map[string]any{"id": id, "collectorId": collectorID, "config": cfg}
}

func TestRunSecrets(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-sec",
		assignment(t, "cfg-1", "sys-1",
			collector("col-api", "http-collector", map[string]any{"API_TOKEN": "${{ secrets.API_TOKEN }}", "DB_PASS": "DB-PASSWORD"}),
			collector("col-plain", "ping-collector", nil),
			collector("col-missing", "http-collector", map[string]any{"X": "${{secrets.NOT_THERE}}"}),
			collector("col-bad", "http-collector", map[string]any{"X": "$(cat /etc/passwd)"}),
		),
	)
	h.satellite("sat-other", assignment(t, "cfg-2", "sys-2", collector("col-other", "http-collector", map[string]any{"API_TOKEN": "API_TOKEN"})))
	id := h.authenticate("sat-sec", tok)

	request := func(configID, collectorID string) map[string]any {
		t.Helper()
		h.send(testenv.Message(t, "run-secrets", id, map[string]any{"requestId": "req-" + collectorID, "configId": configID, "collectorId": collectorID}))
		got := lastFrame(t, h, id)
		if got["type"] != "run_secrets" || got["requestId"] != "req-"+collectorID {
			t.Fatalf("reply = %v", got)
		}
		_, hasEnv := got["env"]
		_, hasErr := got["error"]
		if hasEnv == hasErr {
			t.Fatalf("reply %v has env %v and error %v, want exactly one", got, hasEnv, hasErr)
		}
		return got
	}

	t.Run("declared collector gets its env", func(t *testing.T) {
		got := request("cfg-1", "col-api")
		env, _ := got["env"].(map[string]any)
		if len(env) != 2 || env["API_TOKEN"] != "s3cr3t-api-token-value" || env["DB_PASS"] != "pa55-value-never-logged" {
			t.Errorf("env = %v", env)
		}
	})
	t.Run("collector found by collectorId", func(t *testing.T) {
		h.send(testenv.Message(t, "run-secrets", id, map[string]any{"requestId": "r2", "configId": "cfg-1", "collectorId": "http-collector"}))
		if got := lastFrame(t, h, id); got["env"] == nil {
			t.Errorf("reply = %v, want the first http-collector's env", got)
		}
	})
	for _, tc := range []struct{ name, configID, collectorID, want string }{
		{"collector without secretEnv", "cfg-1", "col-plain", "declares no secretEnv"},
		{"unknown collector", "cfg-1", "col-nope", "No collector col-nope"},
		{"config not assigned to this satellite", "cfg-2", "col-other", "No assignment for configId cfg-2"},
		{"secret that cannot be resolved", "cfg-1", "col-missing", "Secret NOT_THERE could not be resolved"},
		{"malformed reference", "cfg-1", "col-bad", "neither ${{ secrets.NAME }} nor a bare NAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := request(tc.configID, tc.collectorID)
			if msg, _ := got["error"].(string); !strings.Contains(msg, tc.want) {
				t.Errorf("error = %q, want it to contain %q", msg, tc.want)
			}
		})
	}
	if h.mgmt.Closed(id) {
		t.Errorf("refused secrets closed the connection")
	}
	for _, value := range []string{"s3cr3t-api-token-value", "pa55-value-never-logged"} {
		if strings.Contains(h.logs.String(), value) {
			t.Errorf("secret value %q reached the logs", value)
		}
	}
}

func TestRunSecretsWithoutSource(t *testing.T) {
	h := newHarness(t, withoutSecrets)
	tok := h.satellite("sat-nosrc", assignment(t, "cfg-1", "sys-1", collector("col-api", "http", map[string]any{"A": "API_TOKEN"})))
	id := h.authenticate("sat-nosrc", tok)
	h.send(testenv.Message(t, "run-secrets", id, map[string]any{"configId": "cfg-1", "collectorId": "col-api"}))
	got := lastFrame(t, h, id)
	if got["error"] != protocol.SecretsUnavailable || got["requestId"] != "req-7f3a" {
		t.Errorf("reply = %v, want error %q", got, protocol.SecretsUnavailable)
	}
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
