package admin_test

import (
	"encoding/json"
	"testing"

	"github.com/checkstack/satellite-backend/shared/app"
)

// TestSandboxPolicySaysWhatIsInForce: GET /sandbox-policy shows the policy
// satellites are sent and whether it is the deployment's default or one
// that was set; a stored policy that cannot be read is shown as set but
// not in force, never as the default.
func TestSandboxPolicySaysWhatIsInForce(t *testing.T) {
	const def = `{"enabled":true,"network":{"allow":[],"mode":"allowlist"}}`
	h := newHarness(t, func(c *app.Config) { c.DefaultSandboxPolicy = json.RawMessage(def) })
	policyOf := func(out map[string]any) string {
		b, _ := json.Marshal(out["policy"])
		return string(b)
	}

	code, out := h.call("GET", "/sandbox-policy", nil, nil, nil)
	if code != 200 || out["source"] != "default" || policyOf(out) != def || out["updatedAt"] != nil {
		t.Errorf("never set: %d %v, want the default in force", code, out)
	}

	set := map[string]any{"enabled": true, "network": map[string]any{"allow": []any{"10.0.0.0/8"}, "mode": "allowlist"}}
	code, out = h.call("PUT", "/sandbox-policy", nil, nil, set)
	if code != 202 || out["source"] != "set" {
		t.Errorf("PUT: %d %v", code, out)
	}
	h.fanout(code, out)
	code, out = h.call("GET", "/sandbox-policy", nil, nil, nil)
	if code != 200 || out["source"] != "set" || policyOf(out) != `{"enabled":true,"network":{"allow":["10.0.0.0/8"],"mode":"allowlist"}}` || out["updatedAt"] == nil {
		t.Errorf("set: %d %v", code, out)
	}

	if err := h.a.Registry.SetSandboxPolicy(ctx, json.RawMessage(`"allow-all"`), h.now); err != nil {
		t.Fatal(err)
	}
	code, out = h.call("GET", "/sandbox-policy", nil, nil, nil)
	if code != 200 || out["source"] != "set" || out["policy"] != nil || out["warning"] == nil || out["updatedAt"] == nil {
		t.Errorf("unreadable: %d %v, want set, no policy in force, and a warning", code, out)
	}

	// Without a default (the parameter empty): none until one is set.
	bare := newHarness(t)
	code, out = bare.call("GET", "/sandbox-policy", nil, nil, nil)
	if code != 200 || out["source"] != "none" || out["policy"] != nil {
		t.Errorf("no default: %d %v", code, out)
	}
}
