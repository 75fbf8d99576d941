package wshandler_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
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

// grant is one IAM action on one resource, named symbolically so that the
// template's ARNs and the requests the code makes can be compared.
type grant struct{ action, resource string }

func (g grant) String() string { return g.action + " on " + g.resource }

// TestTemplatePoliciesGrantExactlyWhatFunctionsCall runs every behaviour of
// the three WebSocket functions, records each SDK request they make, and
// checks each function's IAM policy in template.yaml grants those actions on
// those resources and nothing else.
func TestTemplatePoliciesGrantExactlyWhatFunctionsCall(t *testing.T) {
	sm := testenv.NewSecretsManager(t, map[string]string{secretsPrefix + "API_TOKEN": "v"})
	eb := testenv.NewEventBridge(t)
	h := newHarness(t, withAWSAdapters(sm, eb))

	tok := h.satellite("sat-iam", assignment(t, "cfg-1", "sys-1", collector("col", "http", map[string]any{"A": "API_TOKEN"})))
	small, large := h.publishBlob([]byte("x")), h.publishBlob(randomBytes(t, 200<<10))
	h.publishManifest("lock-1", nil)
	if err := h.env.Registry().SetDesiredLockfileHash(ctx, "lock-1"); err != nil {
		t.Fatal(err)
	}
	id := h.authenticate("sat-iam", tok)
	for _, m := range []struct {
		name   string
		fields map[string]any
	}{
		{"heartbeat", nil}, {"result", map[string]any{"configId": "cfg-1", "systemId": "sys-1"}},
		{"strategy-error", nil}, {"sync-state", nil}, {"manifest-request", map[string]any{"lockfileHash": "lock-1"}},
		{"blob-request", map[string]any{"integrity": small}}, {"blob-request", map[string]any{"integrity": large}},
		{"run-secrets", map[string]any{"configId": "cfg-1", "collectorId": "col"}},
	} {
		h.send(testenv.Message(t, m.name, id, m.fields))
	}
	unauthenticated := h.open()
	h.send(testenv.Message(t, "heartbeat", unauthenticated, nil)) // closes it
	second := h.authenticate("sat-iam", tok)
	h.mgmt.Drop(second)
	h.send(testenv.Message(t, "heartbeat", second, nil))
	h.send(testenv.Message(t, "manifest-request", second, nil)) // Gone: cleanup from the message function
	third := h.authenticate("sat-iam", tok)
	h.close(third)
	if len(sm.Requests()) == 0 || len(eb.Requests()) == 0 {
		t.Fatal("scenario did not reach Secrets Manager and EventBridge")
	}

	tables := map[string]string{}
	for logical, name := range h.env.TableNames {
		tables[name] = logical
	}
	tpl := testenv.Template(t)
	for fn, function := range map[string]string{"connect": "ConnectFunction", "message": "MessageFunction", "disconnect": "DisconnectFunction"} {
		t.Run(function, func(t *testing.T) {
			used := usedGrants(t, h.calls[fn], tables)
			granted := templateGrants(t, tpl, function)
			for _, g := range used {
				if !slices.Contains(granted, g) {
					t.Errorf("code calls %s but the template does not grant it", g)
				}
			}
			for _, g := range granted {
				if !slices.Contains(used, g) {
					t.Errorf("template grants %s but the code never calls it", g)
				}
			}
			t.Logf("%s: %v", function, used)
		})
	}
}

func usedGrants(t *testing.T, calls *testenv.Calls, tables map[string]string) []grant {
	t.Helper()
	set := map[grant]bool{}
	for _, a := range calls.DynamoDBActions() {
		set[grant{a.Action, "table/" + tables[a.Table]}] = true
	}
	for _, c := range calls.All() {
		switch c.Service {
		case "DynamoDB":
		case "S3":
			in, ok := c.Input.(*s3.GetObjectInput)
			if !ok {
				t.Fatalf("unexpected S3 request %s", c.Operation)
			}
			prefix, _, _ := strings.Cut(aws.ToString(in.Key), "/")
			set[grant{"s3:GetObject", "ScriptPackagesBucket/" + prefix + "/*"}] = true
		case "ApiGatewayManagementApi":
			set[grant{"execute-api:ManageConnections", "WebSocketApi/stage/@connections"}] = true
		case "Secrets Manager":
			id := aws.ToString(c.Input.(*secretsmanager.GetSecretValueInput).SecretId)
			if !strings.HasPrefix(id, secretsPrefix) {
				t.Errorf("secret %s read outside the configured prefix", id)
			}
			set[grant{"secretsmanager:GetSecretValue", "secret/${SecretsPrefix}*"}] = true
		case "EventBridge":
			set[grant{"events:PutEvents", "event-bus/${EventBusName}"}] = true
		default:
			t.Errorf("unexpected %s %s request", c.Service, c.Operation)
		}
	}
	return sortedGrants(set)
}

func templateGrants(t *testing.T, tpl *samtemplate.Template, function string) []grant {
	t.Helper()
	stmts, err := tpl.PolicyStatements(function)
	if err != nil {
		t.Fatal(err)
	}
	set := map[grant]bool{}
	for _, s := range stmts {
		if s.Effect != "Allow" {
			t.Errorf("%s: statement with effect %s", function, s.Effect)
		}
		for _, action := range s.Actions {
			if strings.Contains(action, "*") {
				t.Errorf("%s: wildcard action %s", function, action)
			}
			for _, r := range s.Resources {
				set[grant{action, symbolicResource(t, r)}] = true
			}
		}
	}
	return sortedGrants(set)
}

// symbolicResource names a template resource the way usedGrants does, and
// fails on anything broader than this project's own resources.
func symbolicResource(t *testing.T, r any) string {
	t.Helper()
	if res, attr, ok := samtemplate.GetAtt(r); ok && attr == "Arn" {
		return "table/" + res
	}
	sub, ok := samtemplate.Sub(r)
	if !ok {
		t.Fatalf("resource %v is neither a table ARN nor a Fn::Sub", r)
	}
	switch {
	case strings.HasPrefix(sub, "${ScriptPackagesBucket.Arn}/"):
		return "ScriptPackagesBucket/" + strings.TrimPrefix(sub, "${ScriptPackagesBucket.Arn}/")
	case strings.HasSuffix(sub, ":${WebSocketApi}/${StageName}/*/@connections/*"):
		return "WebSocketApi/stage/@connections"
	case strings.HasSuffix(sub, ":secret:${SecretsPrefix}*"):
		return "secret/${SecretsPrefix}*"
	case strings.HasSuffix(sub, ":event-bus/${EventBusName}"):
		return "event-bus/${EventBusName}"
	}
	t.Fatalf("resource %q is broader than, or unknown to, this project", sub)
	return ""
}

func sortedGrants(set map[grant]bool) []grant {
	out := make([]grant, 0, len(set))
	for g := range set {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}
