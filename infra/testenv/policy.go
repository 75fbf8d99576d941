package testenv

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// Grant is one IAM action on one resource, named symbolically so that the
// template's ARNs and the requests the code makes can be compared.
type Grant struct{ Action, Resource string }

func (g Grant) String() string { return g.Action + " on " + g.Resource }

// CheckPolicy compares the SDK calls a function made (recorded by calls, run
// against the tables named in tableNames, logical id -> name) with the IAM
// policy template.yaml gives it: every call must be granted, and every grant
// must have been used. secretsPrefix is the SECRETS_PREFIX the function ran
// with.
func CheckPolicy(t *testing.T, tpl *samtemplate.Template, function string, calls *Calls, tableNames map[string]string, secretsPrefix string) {
	t.Helper()
	logical := map[string]string{}
	for id, name := range tableNames {
		logical[name] = id
	}
	used := UsedGrants(t, calls, logical, secretsPrefix)
	granted := TemplateGrants(t, tpl, function)
	for _, g := range used {
		if !slices.Contains(granted, g) {
			t.Errorf("%s calls %s but the template does not grant it", function, g)
		}
	}
	for _, g := range granted {
		if !slices.Contains(used, g) {
			t.Errorf("template grants %s %s but the code never calls it", function, g)
		}
	}
}

// UsedGrants names the grants the recorded calls needed.
func UsedGrants(t *testing.T, calls *Calls, logicalTables map[string]string, secretsPrefix string) []Grant {
	t.Helper()
	set := map[Grant]bool{}
	for _, a := range calls.DynamoDBActions() {
		resource := "table/" + logicalTables[a.Table]
		if a.Index != "" {
			resource += "/index/" + a.Index
		}
		set[Grant{a.Action, resource}] = true
	}
	for _, c := range calls.All() {
		switch c.Service {
		case "DynamoDB":
		case "S3":
			action := map[string]string{
				"GetObject": "s3:GetObject", "PutObject": "s3:PutObject",
				// HEAD is authorised as a GET of the object.
				"HeadObject": "s3:GetObject",
				// A presigned URL carries the function's authority.
				"PresignGetObject": "s3:GetObject",
				"ListObjectsV2":    "s3:ListBucket",
			}[c.Operation]
			if action == "" {
				t.Fatalf("unexpected S3 request %s", c.Operation)
			}
			// Telemetry keys live in the telemetry bucket, everything else
			// in the script-package bucket.
			prefix, _, _ := strings.Cut(c.Resource, "/")
			bucket := "ScriptPackagesBucket"
			if prefix == "telemetry" {
				bucket = "TelemetryBucket"
			}
			if action == "s3:ListBucket" {
				set[Grant{action, "bucket/" + bucket}] = true
				continue
			}
			set[Grant{action, bucket + "/" + prefix + "/*"}] = true
		case "ApiGatewayManagementApi":
			// ManageConnections is scoped by HTTP method: POST posts to a
			// connection, DELETE closes it, GET reads its details.
			method, ok := map[string]string{"PostToConnection": "POST", "DeleteConnection": "DELETE", "GetConnection": "GET"}[c.Operation]
			if !ok {
				t.Fatalf("unexpected Management API request %s", c.Operation)
			}
			set[Grant{"execute-api:ManageConnections", "WebSocketApi/stage/" + method + "/@connections"}] = true
		case "Secrets Manager":
			if c.Operation != "BatchGetSecretValue" {
				t.Fatalf("unexpected Secrets Manager request %s", c.Operation)
			}
			// BatchGetSecretValue has no resource type of its own (it is
			// granted on "*"); each secret it reads needs GetSecretValue on
			// that secret. The call's resource lists the secret ids.
			for _, id := range strings.Split(c.Resource, ",") {
				if !strings.HasPrefix(id, secretsPrefix) || id == secretsPrefix {
					t.Errorf("secret %q read outside the configured prefix", id)
				}
			}
			set[Grant{"secretsmanager:BatchGetSecretValue", "*"}] = true
			set[Grant{"secretsmanager:GetSecretValue", "secret/${SecretsPrefix}*"}] = true
		case "EventBridge":
			set[Grant{"events:PutEvents", "event-bus/${EventBusName}"}] = true
		case "SQS":
			if c.Operation != "SendMessageBatch" {
				t.Fatalf("unexpected SQS request %s", c.Operation)
			}
			// The tests name a queue by its logical id (the last part of
			// its URL).
			set[Grant{"sqs:SendMessage", "queue/" + c.Resource[strings.LastIndexByte(c.Resource, '/')+1:]}] = true
		case "Lambda":
			if c.Operation != "Invoke" {
				t.Fatalf("unexpected Lambda request %s", c.Operation)
			}
			// The tests invoke functions by their logical id.
			set[Grant{"lambda:InvokeFunction", "function/" + c.Resource}] = true
		default:
			t.Errorf("unexpected %s %s request", c.Service, c.Operation)
		}
	}
	return sortedGrants(set)
}

// unscopedActions are the actions the functions call that IAM cannot scope
// to a resource: only they may be granted on "*".
var unscopedActions = map[string]bool{"secretsmanager:BatchGetSecretValue": true}

// TemplateGrants names the grants of a function's policy in the template.
func TemplateGrants(t *testing.T, tpl *samtemplate.Template, function string) []Grant {
	t.Helper()
	stmts, err := tpl.PolicyStatements(function)
	if err != nil {
		t.Fatal(err)
	}
	set := map[Grant]bool{}
	for _, s := range stmts {
		if s.Effect != "Allow" {
			t.Errorf("%s: statement with effect %s", function, s.Effect)
		}
		for _, action := range s.Actions {
			if strings.Contains(action, "*") {
				t.Errorf("%s: wildcard action %s", function, action)
			}
			for _, r := range s.Resources {
				resource := symbolicResource(t, tpl, r)
				if resource == "*" && !unscopedActions[action] {
					t.Errorf("%s: %s granted on every resource", function, action)
				}
				set[Grant{action, resource}] = true
			}
		}
	}
	return sortedGrants(set)
}

// symbolicResource names a template resource the way UsedGrants does, and
// fails on anything broader than this project's own resources.
func symbolicResource(t *testing.T, tpl *samtemplate.Template, r any) string {
	t.Helper()
	if r == "*" {
		return "*"
	}
	if res, attr, ok := samtemplate.GetAtt(r); ok && attr == "Arn" {
		switch {
		case strings.HasSuffix(res, "Bucket"):
			return "bucket/" + res
		case tpl.Resources[res].Type == "AWS::Serverless::Function":
			return "function/" + res
		case tpl.Resources[res].Type == "AWS::SQS::Queue":
			return "queue/" + res
		}
		return "table/" + res
	}
	sub, ok := samtemplate.Sub(r)
	if !ok {
		t.Fatalf("resource %v is neither a table ARN nor a Fn::Sub", r)
	}
	// A function's ARN built from the name it sets (how a function names
	// itself without depending on itself).
	for _, fn := range tpl.ResourcesOfType("AWS::Serverless::Function") {
		if name, ok := samtemplate.Sub(tpl.Resources[fn].Properties["FunctionName"]); ok &&
			sub == "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"+name {
			return "function/" + fn
		}
	}
	switch {
	case strings.HasPrefix(sub, "${ScriptPackagesBucket.Arn}/"):
		return "ScriptPackagesBucket/" + strings.TrimPrefix(sub, "${ScriptPackagesBucket.Arn}/")
	case strings.HasPrefix(sub, "${TelemetryBucket.Arn}/"):
		return "TelemetryBucket/" + strings.TrimPrefix(sub, "${TelemetryBucket.Arn}/")
	case strings.HasPrefix(sub, "${") && strings.Contains(sub, ".Arn}/index/") && !strings.Contains(sub, "*"):
		table, index, _ := strings.Cut(strings.TrimPrefix(sub, "${"), ".Arn}/index/")
		return "table/" + table + "/index/" + index
	case strings.HasPrefix(sub, "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/"):
		// One method per grant: a function that only posts may not close
		// connections, nor read their details.
		method, ok := strings.CutSuffix(strings.TrimPrefix(sub, "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/"), "/@connections/*")
		if ok && (method == "POST" || method == "DELETE" || method == "GET") {
			return "WebSocketApi/stage/" + method + "/@connections"
		}
	case strings.HasSuffix(sub, ":secret:${SecretsPrefix}*"):
		return "secret/${SecretsPrefix}*"
	case strings.HasSuffix(sub, ":event-bus/${EventBusName}"):
		return "event-bus/${EventBusName}"
	}
	t.Fatalf("resource %q is broader than, or unknown to, this project", sub)
	return ""
}

func sortedGrants(set map[Grant]bool) []Grant {
	out := make([]Grant, 0, len(set))
	for g := range set {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}
