package wshandler_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// The deployment's default sandbox policy (DEFAULT_SANDBOX_POLICY), through
// the real handlers against DynamoDB Local.

// defaultPolicy stands for the DefaultSandboxPolicy parameter.
const defaultPolicy = `{"enabled":true,"network":{"mode":"allowlist","allow":[]}}`

func withDefaultPolicy(c *app.Config, _ *app.Options) {
	c.DefaultSandboxPolicy = json.RawMessage(defaultPolicy)
}

// policyOf authenticates satelliteID and returns the sandboxPolicy its
// authenticated carried, as sent ("" when none).
func policyOf(t *testing.T, h *harness, satelliteID, tok string) string {
	t.Helper()
	id := h.authenticateWith(satelliteID, tok, nil)
	var frame struct {
		SandboxPolicy json.RawMessage `json:"sandboxPolicy"`
	}
	if err := json.Unmarshal(h.mgmt.Posts(id)[0], &frame); err != nil {
		t.Fatal(err)
	}
	return string(frame.SandboxPolicy)
}

// TestDefaultSandboxPolicyUntilOneIsSet: a fresh stack sends the default in
// authenticated exactly where a set policy would go; once a policy is set
// it wins, and a stored policy that cannot be read never gives way to the
// default (it may be looser than what was set).
func TestDefaultSandboxPolicyUntilOneIsSet(t *testing.T) {
	h := newHarness(t, withDefaultPolicy)
	tok := h.satellite("sat-default")
	if got := policyOf(t, h, "sat-default", tok); got != defaultPolicy {
		t.Fatalf("never set: authenticated carries %q, want the default %s", got, defaultPolicy)
	}

	set := `{"enabled":true,"network":{"mode":"allowlist","allow":["10.0.0.0/8"]}}`
	if err := h.env.Registry().SetSandboxPolicy(ctx, json.RawMessage(set), h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := policyOf(t, h, "sat-default", tok); got != set {
		t.Errorf("set: authenticated carries %q, want the policy set", got)
	}

	// A stored policy that is not an object: none is sent, not the default.
	if err := h.env.Registry().SetSandboxPolicy(ctx, json.RawMessage(`"allow-all"`), h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := policyOf(t, h, "sat-default", tok); got != "" {
		t.Errorf("corrupt: authenticated carries %s, want none", got)
	}
	// Nor when the stored item's policy is not even a string.
	_, err := h.env.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(h.env.Tables.Satellites),
		Item: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "SCRIPT_PACKAGES"}, "sk": &types.AttributeValueMemberS{Value: "SANDBOX_POLICY"},
			"policy": &types.AttributeValueMemberN{Value: "1"}, "updatedAt": &types.AttributeValueMemberN{Value: "1795766400000"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := policyOf(t, h, "sat-default", tok); got != "" {
		t.Errorf("mistyped: authenticated carries %s, want none", got)
	}
	if n := len(h.logLines("stored sandbox policy is not a JSON object; omitted")); n != 2 {
		t.Errorf("%d unreadable stored policies logged, want 2", n)
	}
}

// TestDefaultSandboxPolicyThatDoesNotFitRidesItsOwnFrame: the default
// follows authenticated in sandbox_policy when the assignments leave no
// room, as a set policy does.
func TestDefaultSandboxPolicyThatDoesNotFitRidesItsOwnFrame(t *testing.T) {
	big := `{"network":{"mode":"allowlist","allow":["` + strings.Repeat("a", satellite.MaxSandboxPolicyBytes-60) + `"]}}`
	h := newHarness(t, func(c *app.Config, _ *app.Options) { c.DefaultSandboxPolicy = json.RawMessage(big) })
	b, _ := json.Marshal(map[string]any{"configId": "cfg-big", "systemId": "sys-big", "strategyId": "http", "intervalSeconds": 30,
		"config": map[string]any{"body": strings.Repeat("x", 120_000)}})
	a, err := satellite.ParseAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	tok := h.satellite("sat-big-default", a)
	id := h.authenticateWith("sat-big-default", tok, nil)
	frames := h.mgmt.Frames(t, id)
	if len(frames) != 2 || frames[0]["sandboxPolicy"] != nil || frames[1]["type"] != "sandbox_policy" {
		t.Fatalf("frames: %d, the last %v", len(frames), frames[len(frames)-1]["type"])
	}
	var push struct {
		Policy json.RawMessage `json:"policy"`
	}
	if err := json.Unmarshal(h.mgmt.Posts(id)[1], &push); err != nil || string(push.Policy) != big {
		t.Errorf("default pushed = %.60s... (%v)", push.Policy, err)
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
