package wshandler_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

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
