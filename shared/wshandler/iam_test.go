package wshandler_test

import (
	"encoding/json"
	"testing"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

const secretsPrefix = "checkstack/satellite-secrets/"

// withAWSAdapters uses the Secrets Manager and EventBridge adapters against
// servers that decode what the SDK sends, instead of the file and log ones.
func withAWSAdapters(sm *testenv.SecretsManager, eb *testenv.EventBridge) harnessOption {
	return func(c *app.Config, o *app.Options) {
		c.SecretsPrefix, c.EventBusName = secretsPrefix, "default"
		o.Secrets, o.Lifecycle = nil, nil
		o.Endpoints.SecretsManager, o.Endpoints.EventBridge = sm.URL, eb.URL
	}
}

// TestTemplatePoliciesGrantExactlyWhatFunctionsCall runs every behaviour of
// the three WebSocket functions, records each SDK request they make, and
// checks each function's IAM policy in template.yaml grants those actions on
// those resources and nothing else.
func TestTemplatePoliciesGrantExactlyWhatFunctionsCall(t *testing.T) {
	sm := testenv.NewSecretsManager(t, map[string]string{secretsPrefix + "API_TOKEN": "v"})
	eb := testenv.NewEventBridge(t)
	h := newHarness(t, withAWSAdapters(sm, eb))

	tok := h.satellite("sat-iam", assignment(t, "cfg-1", "sys-1", collector("col", "http", map[string]any{"A": "API_TOKEN"})),
		strategyWithSecrets(t, "cfg-sec", "API_TOKEN"))
	if err := h.env.Registry().SetCapabilityConfig(ctx, "sat-iam", satellite.CapabilityConfig{
		Kind: "scrape", Payload: json.RawMessage(`{}`), Secrets: map[string]map[string]string{"node-exporter": {"token": "${{ secrets.API_TOKEN }}"}},
	}); err != nil {
		t.Fatal(err)
	}
	small, large := h.publishBlob([]byte("x")), h.publishBlob(randomBytes(t, 200<<10))
	lock := h.publishManifest(nil)
	if err := h.env.Registry().SetDesiredLockfileHash(ctx, lock); err != nil {
		t.Fatal(err)
	}
	id := h.authenticateWith("sat-iam", tok, nil)
	for _, m := range []struct {
		name   string
		fields map[string]any
	}{
		{"heartbeat", nil}, {"result", map[string]any{"configId": "cfg-1", "systemId": "sys-1"}},
		{"strategy-error", nil}, {"sync-state", nil}, {"manifest-request", map[string]any{"lockfileHash": lock}},
		{"blob-request", map[string]any{"integrity": small}}, {"blob-request", map[string]any{"integrity": large}},
		{"run-secrets", map[string]any{"configId": "cfg-1", "collectorId": "col"}},
		{"config-secrets", map[string]any{"configId": "cfg-sec"}},
		{"telemetry-batch", nil}, {"capability-status", nil}, {"capability-secret", nil},
	} {
		h.send(testenv.Message(t, m.name, id, m.fields))
	}
	// A telemetry batch whose storage fails is forgotten (its mark deleted).
	broken := h.build("message-broken", func(c *app.Config, _ *app.Options) { c.TelemetryBucket = "no-such-bucket" })
	if _, err := broken.WebSocket.Message(ctx, testenv.Message(t, "telemetry-batch", id, map[string]any{"batchId": 2})); err != nil {
		t.Fatal(err)
	}
	h.calls["message"].Add(h.calls["message-broken"])
	unauthenticated := h.open()
	h.send(testenv.Message(t, "heartbeat", unauthenticated, nil)) // closes it
	second := h.authenticateWith("sat-iam", tok, nil)
	h.mgmt.Drop(second)
	h.send(testenv.Message(t, "heartbeat", second, nil))
	h.send(testenv.Message(t, "manifest-request", second, nil)) // Gone: cleanup from the message function
	third := h.authenticateWith("sat-iam", tok, nil)
	h.close(third)
	if len(sm.Requests()) == 0 || len(eb.Requests()) == 0 {
		t.Fatal("scenario did not reach Secrets Manager and EventBridge")
	}

	tpl := testenv.Template(t)
	for fn, function := range map[string]string{"connect": "ConnectFunction", "message": "MessageFunction", "disconnect": "DisconnectFunction"} {
		t.Run(function, func(t *testing.T) {
			testenv.CheckPolicy(t, tpl, function, h.calls[fn], h.env.TableNames, secretsPrefix)
		})
	}
}
