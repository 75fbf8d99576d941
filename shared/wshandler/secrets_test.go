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
