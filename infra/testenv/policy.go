package testenv

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// Grant is one IAM action on one resource, named symbolically so that the
// template's ARNs and the requests the code makes can be compared, with the
// condition it is granted under ("" for none; see conditionString).
type Grant struct{ Action, Resource, Condition string }

func (g Grant) String() string {
	if g.Condition == "" {
		return g.Action + " on " + g.Resource
	}
	return g.Action + " on " + g.Resource + " if " + g.Condition
}

// CheckPolicy compares the SDK calls a function made (recorded by calls, run
// against the tables named in tableNames, logical id -> name), and what
// Lambda does with the function's role (LambdaGrants), with the IAM policy
// template.yaml gives it: every call must be granted, and every grant must
// have been used. secretsPrefix is the SECRETS_PREFIX the function ran
// with.
func CheckPolicy(t *testing.T, tpl *samtemplate.Template, function string, calls *Calls, tableNames map[string]string, secretsPrefix string) {
	t.Helper()
	logical := map[string]string{}
	for id, name := range tableNames {
		logical[name] = id
	}
	used := append(UsedGrants(t, calls, logical, secretsPrefix), LambdaGrants(t, tpl, function)...)
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
	scanned := tableScanCondition(t, calls)
	for _, a := range calls.DynamoDBActions() {
		resource := "table/" + logicalTables[a.Table]
		if a.Index != "" {
			resource += "/index/" + a.Index
		}
		g := Grant{Action: a.Action, Resource: resource}
		if a.Action == "dynamodb:Scan" && a.Index == "" {
			g.Condition = scanned[a.Table]
		}
		set[g] = true
	}
	sources := map[string]bool{}
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
				// Listing is granted under the prefix listed only.
				set[Grant{Action: action, Resource: "bucket/" + bucket, Condition: conditionString(map[string]any{
					"StringLike": map[string]any{"s3:prefix": prefix + "/*"},
				})}] = true
				continue
			}
			set[Grant{Action: action, Resource: bucket + "/" + prefix + "/*"}] = true
		case "ApiGatewayManagementApi":
			// ManageConnections is scoped by HTTP method: POST posts to a
			// connection, DELETE closes it, GET reads its details.
			method, ok := map[string]string{"PostToConnection": "POST", "DeleteConnection": "DELETE", "GetConnection": "GET"}[c.Operation]
			if !ok {
				t.Fatalf("unexpected Management API request %s", c.Operation)
			}
			set[Grant{Action: "execute-api:ManageConnections", Resource: "WebSocketApi/stage/" + method + "/@connections"}] = true
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
			set[Grant{Action: "secretsmanager:BatchGetSecretValue", Resource: "*"}] = true
			set[Grant{Action: "secretsmanager:GetSecretValue", Resource: "secret/${SecretsPrefix}*"}] = true
		case "EventBridge":
			in, ok := c.Input.(*eventbridge.PutEventsInput)
			if !ok {
				t.Fatalf("unexpected EventBridge request %s", c.Operation)
			}
			for _, e := range in.Entries {
				sources[aws.ToString(e.Source)] = true
			}
		case "SQS":
			if c.Operation != "SendMessageBatch" {
				t.Fatalf("unexpected SQS request %s", c.Operation)
			}
			// The tests name a queue by its logical id (the last part of
			// its URL).
			set[Grant{Action: "sqs:SendMessage", Resource: "queue/" + c.Resource[strings.LastIndexByte(c.Resource, '/')+1:]}] = true
		case "Lambda":
			if c.Operation != "Invoke" {
				t.Fatalf("unexpected Lambda request %s", c.Operation)
			}
			// The tests invoke functions by their logical id.
			set[Grant{Action: "lambda:InvokeFunction", Resource: "function/" + c.Resource}] = true
		default:
			t.Errorf("unexpected %s %s request", c.Service, c.Operation)
		}
	}
	if len(sources) > 0 {
		// PutEvents is granted only for the sources the code emits.
		set[Grant{Action: "events:PutEvents", Resource: "event-bus/${EventBusName}", Condition: conditionString(map[string]any{
			"StringEquals": map[string]any{"events:source": slices.Sorted(maps.Keys(sources))},
		})}] = true
	}
	return sortedGrants(set)
}

// tableScanCondition returns, per table scanned whole (not an index), the
// condition a grant of its Scan must carry: the attributes the requests
// name (projection and filter, through ExpressionAttributeNames), each
// asked for as SPECIFIC_ATTRIBUTES. A Scan of a table that asks for whole
// items fails the test: its grant could not be narrowed.
func tableScanCondition(t *testing.T, calls *Calls) map[string]string {
	t.Helper()
	attrs := map[string]map[string]bool{}
	for _, c := range calls.All() {
		in, ok := c.Input.(*dynamodb.ScanInput)
		if !ok || in.IndexName != nil {
			continue
		}
		table := aws.ToString(in.TableName)
		if in.Select != types.SelectSpecificAttributes || aws.ToString(in.ProjectionExpression) == "" {
			t.Errorf("a Scan of table %s asks for %q with projection %q: a whole-table Scan must ask for SPECIFIC_ATTRIBUTES, so that its grant can be narrowed to them", table, in.Select, aws.ToString(in.ProjectionExpression))
		}
		if attrs[table] == nil {
			attrs[table] = map[string]bool{}
		}
		for _, expr := range []*string{in.ProjectionExpression, in.FilterExpression} {
			for _, name := range expressionNames(aws.ToString(expr), in.ExpressionAttributeNames) {
				attrs[table][name] = true
			}
		}
	}
	out := map[string]string{}
	for table, names := range attrs {
		out[table] = conditionString(map[string]any{
			"ForAllValues:StringEquals": map[string]any{"dynamodb:Attributes": slices.Sorted(maps.Keys(names))},
			"StringEquals":              map[string]any{"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
		})
	}
	return out
}

// expressionNames returns the top-level attribute names a DynamoDB
// expression refers to: each #placeholder resolved, and each bare name.
func expressionNames(expr string, placeholders map[string]string) []string {
	var out []string
	for _, tok := range regexp.MustCompile(`[#:]?[A-Za-z_][A-Za-z0-9_]*`).FindAllString(expr, -1) {
		switch {
		case strings.HasPrefix(tok, ":"):
		case strings.HasPrefix(tok, "#"):
			out = append(out, placeholders[tok])
		case !expressionWords[strings.ToUpper(tok)]:
			out = append(out, tok)
		}
	}
	return out
}

// expressionWords are the keywords and functions of DynamoDB expressions.
var expressionWords = map[string]bool{
	"AND": true, "OR": true, "NOT": true, "BETWEEN": true, "IN": true, "SIZE": true,
	"ATTRIBUTE_EXISTS": true, "ATTRIBUTE_NOT_EXISTS": true, "ATTRIBUTE_TYPE": true,
	"BEGINS_WITH": true, "CONTAINS": true,
}

// conditionString renders a policy condition block canonically: operators,
// keys and values sorted, "Operator key=v1,v2; ...". Template values that
// are not strings (a !Ref) are rendered as ${Name}.
func conditionString(c map[string]any) string {
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(c)) {
		keys, _ := c[op].(map[string]any)
		for _, key := range slices.Sorted(maps.Keys(keys)) {
			values := asStrings(keys[key])
			slices.Sort(values)
			parts = append(parts, op+" "+key+"="+strings.Join(values, ","))
		}
	}
	return strings.Join(parts, "; ")
}

func asStrings(v any) []string {
	switch v := v.(type) {
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, asStrings(x)...)
		}
		return out
	case []string:
		return v
	}
	if ref, ok := samtemplate.Ref(v); ok {
		return []string{"${" + ref + "}"}
	}
	return []string{fmt.Sprint(v)}
}

// LambdaGrants names what Lambda itself does with a function's role, as the
// function's template properties ask: write its logs to its own log group
// (LoggingConfig.LogGroup), send a failed asynchronous invocation to its
// EventInvokeConfig destination, and read the DynamoDB stream of an event
// source mapping and send what it gave up on to the mapping's destination.
func LambdaGrants(t *testing.T, tpl *samtemplate.Template, function string) []Grant {
	t.Helper()
	p := tpl.Resources[function].Properties
	set := map[Grant]bool{}
	lc, _ := p["LoggingConfig"].(map[string]any)
	group, ok := samtemplate.Ref(lc["LogGroup"])
	if !ok || tpl.Resources[group].Type != "AWS::Logs::LogGroup" {
		t.Fatalf("%s logs to %v, not a log group of the template", function, lc["LogGroup"])
	}
	for _, action := range []string{"logs:CreateLogStream", "logs:PutLogEvents"} {
		set[Grant{Action: action, Resource: "log-group/" + group}] = true
	}
	destinations := func(cfg any) {
		dc, _ := cfg.(map[string]any)["DestinationConfig"].(map[string]any)
		for _, kind := range []string{"OnSuccess", "OnFailure"} {
			d, ok := dc[kind].(map[string]any)
			if !ok {
				continue
			}
			queue, attr, _ := samtemplate.GetAtt(d["Destination"])
			if d["Type"] != "SQS" || attr != "Arn" || tpl.Resources[queue].Type != "AWS::SQS::Queue" {
				t.Fatalf("%s: destination %v is not a queue of the template", function, d)
			}
			set[Grant{Action: "sqs:SendMessage", Resource: "queue/" + queue}] = true
		}
	}
	if cfg, ok := p["EventInvokeConfig"].(map[string]any); ok {
		destinations(cfg)
	}
	events, _ := p["Events"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(events)) {
		ev, _ := events[name].(map[string]any)
		if ev["Type"] != "DynamoDB" {
			continue
		}
		props, _ := ev["Properties"].(map[string]any)
		table, attr, _ := samtemplate.GetAtt(props["Stream"])
		if attr != "StreamArn" {
			t.Fatalf("%s: event %s reads %v, not a table's stream", function, name, props["Stream"])
		}
		for _, action := range []string{"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"} {
			set[Grant{Action: action, Resource: "stream/" + table}] = true
		}
		destinations(props)
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
				g := Grant{Action: action, Resource: resource}
				if s.Condition != nil {
					g.Condition = conditionString(s.Condition)
				}
				set[g] = true
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
	if table, attr, ok := samtemplate.GetAtt(r); ok && attr == "StreamArn" {
		return "stream/" + table
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
	// A log group by name, with its streams (":*"), and no other.
	if group, ok := strings.CutPrefix(sub, "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${"); ok {
		if group, ok := strings.CutSuffix(group, "}:*"); ok && tpl.Resources[group].Type == "AWS::Logs::LogGroup" {
			return "log-group/" + group
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
