package admin_test

import (
	"encoding/json"
	"testing"

	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"net/http"
	"strings"
	"time"
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
