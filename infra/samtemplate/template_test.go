package samtemplate_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/admin"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/fanout"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

func load(t *testing.T) (*samtemplate.Template, string) {
	t.Helper()
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl, root
}

// routes maps each WebSocket route to the function it must reach.
var routes = map[string]string{"$connect": "ConnectFunction", "$default": "MessageFunction", "$disconnect": "DisconnectFunction"}

func TestFunctionsBuildFromTheMakefile(t *testing.T) {
	tpl, root := load(t)
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	functions := tpl.ResourcesOfType("AWS::Serverless::Function")
	if len(functions) == 0 {
		t.Fatal("no functions")
	}
	for _, fn := range functions {
		r := tpl.Resources[fn]
		if r.Metadata["BuildMethod"] != "makefile" || r.Properties["CodeUri"] != "." {
			t.Errorf("%s: BuildMethod %v CodeUri %v, want makefile from the repository root", fn, r.Metadata["BuildMethod"], r.Properties["CodeUri"])
		}
		target := regexp.MustCompile(`(?m)^build-` + fn + `:.*\n\t.*-o \$\(ARTIFACTS_DIR\)/bootstrap \./functions/(\w+)$`).FindSubmatch(makefile)
		if target == nil {
			t.Errorf("Makefile has no build-%s target that writes $(ARTIFACTS_DIR)/bootstrap", fn)
			continue
		}
		dir := filepath.Join(root, "functions", string(target[1]))
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 || entries[0].Name() != "main.go" {
			t.Errorf("%s: functions/%s must hold only main.go (%v)", fn, target[1], err)
		}
	}
}

func TestGlobalsRunGoOnArm(t *testing.T) {
	tpl, _ := load(t)
	g := tpl.Globals["Function"].(map[string]any)
	if g["Runtime"] != "provided.al2023" || g["Handler"] != "bootstrap" || !slices.Equal(g["Architectures"].([]any), []any{"arm64"}) {
		t.Errorf("globals = %v", g)
	}
	if g["LoggingConfig"].(map[string]any)["LogFormat"] != "JSON" {
		t.Errorf("log format is not JSON")
	}
}

func TestEveryRouteReachesItsFunctionWithScopedPermission(t *testing.T) {
	tpl, _ := load(t)
	apis := tpl.ResourcesOfType("AWS::ApiGatewayV2::Api")
	if len(apis) != 1 {
		t.Fatalf("%d APIs, want 1", len(apis))
	}
	api := apis[0]
	p := tpl.Resources[api].Properties
	if p["ProtocolType"] != "WEBSOCKET" || p["RouteSelectionExpression"] != "$request.body.type" {
		t.Errorf("API %s = %v", api, p)
	}
	seen := map[string]bool{}
	for _, id := range tpl.ResourcesOfType("AWS::ApiGatewayV2::Route") {
		rp := tpl.Resources[id].Properties
		key, _ := rp["RouteKey"].(string)
		want, ok := routes[key]
		if !ok {
			t.Errorf("unexpected route %s", key)
			continue
		}
		seen[key] = true
		if ref, _ := samtemplate.Ref(rp["ApiId"]); ref != api {
			t.Errorf("route %s belongs to %v", key, rp["ApiId"])
		}
		target, _ := samtemplate.Sub(rp["Target"])
		integration := strings.TrimSuffix(strings.TrimPrefix(target, "integrations/${"), "}")
		ip := tpl.Resources[integration].Properties
		uri, _ := samtemplate.Sub(ip["IntegrationUri"])
		if ip["IntegrationType"] != "AWS_PROXY" || !strings.Contains(uri, "${"+want+".Arn}") {
			t.Errorf("route %s -> integration %s (%v, %s), want AWS_PROXY to %s", key, integration, ip["IntegrationType"], uri, want)
		}
		if !hasPermission(tpl, want, api, key) {
			t.Errorf("no Lambda permission for %s scoped to %s route %s", want, api, key)
		}
	}
	for key := range routes {
		if !seen[key] {
			t.Errorf("route %s missing", key)
		}
	}
	for _, id := range tpl.ResourcesOfType("AWS::Lambda::Permission") {
		src, ok := samtemplate.Sub(tpl.Resources[id].Properties["SourceArn"])
		if !ok || !strings.Contains(src, "${"+api+"}/") {
			t.Errorf("permission %s has no SourceArn scoped to the API: %v", id, tpl.Resources[id].Properties["SourceArn"])
		}
	}
	stages := tpl.ResourcesOfType("AWS::ApiGatewayV2::Stage")
	if len(stages) != 1 {
		t.Fatalf("%d stages", len(stages))
	}
	if ref, _ := samtemplate.Ref(tpl.Resources[stages[0]].Properties["StageName"]); ref != "StageName" {
		t.Errorf("stage name is not the StageName parameter")
	}
}

func hasPermission(tpl *samtemplate.Template, function, api, route string) bool {
	for _, id := range tpl.ResourcesOfType("AWS::Lambda::Permission") {
		p := tpl.Resources[id].Properties
		fn, _ := samtemplate.Ref(p["FunctionName"])
		src, _ := samtemplate.Sub(p["SourceArn"])
		if fn == function && p["Principal"] == "apigateway.amazonaws.com" && p["Action"] == "lambda:InvokeFunction" &&
			strings.HasSuffix(src, ":${"+api+"}/*/"+route) {
			return true
		}
	}
	return false
}

func TestTablesMatchTheAdapter(t *testing.T) {
	tpl, _ := load(t)
	cases := []struct {
		logical string
		keys    []string
		indexes map[string][]string
		ttl     string
	}{
		{"SatellitesTable", []string{dynamo.SatellitesPartitionKey, dynamo.SatellitesSortKey},
			map[string][]string{
				dynamo.LiveIndex:   {dynamo.LiveIndexPartKey, dynamo.LiveIndexSortKey},
				dynamo.OutboxIndex: {dynamo.OutboxIndexPartKey, dynamo.OutboxIndexSortKey},
				dynamo.FleetIndex:  {dynamo.FleetIndexPartKey, dynamo.FleetIndexSortKey},
			}, dynamo.SatellitesTTLAttribute},
		{"ConnectionsTable", []string{dynamo.ConnectionsPartitionKey},
			map[string][]string{
				dynamo.BySatelliteIndex:     {dynamo.BySatelliteIndexPartKey},
				dynamo.UnauthenticatedIndex: {dynamo.UnauthenticatedIndexPartKey, dynamo.UnauthenticatedIndexSortKey},
				dynamo.ExpiryIndex:          {dynamo.ExpiryIndexPartKey, dynamo.ExpiryIndexSortKey},
			}, dynamo.ConnectionsTTLAttribute},
		{"ResultsTable", []string{dynamo.ResultsPartitionKey, dynamo.ResultsSortKey},
			nil, dynamo.ResultsTTLAttribute},
		{"TelemetryTable", []string{dynamo.TelemetryPartitionKey}, nil, dynamo.TelemetryTTLAttribute},
		{"JobsTable", []string{dynamo.JobsPartitionKey}, nil, dynamo.JobsTTLAttribute},
	}
	tables, err := tpl.Tables()
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != len(cases) {
		t.Errorf("%d tables in the template, the adapter uses %d", len(tables), len(cases))
	}
	for _, tc := range cases {
		tb, err := tpl.Table(tc.logical)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tb.Keys(), tc.keys) {
			t.Errorf("%s keys = %v, adapter uses %v", tc.logical, tb.Keys(), tc.keys)
		}
		if len(tb.GlobalSecondaryIndexes) != len(tc.indexes) {
			t.Errorf("%s has %d indexes, adapter uses %d", tc.logical, len(tb.GlobalSecondaryIndexes), len(tc.indexes))
		}
		for name, keys := range tc.indexes {
			if got, ok := tb.IndexKeys(name); !ok || !slices.Equal(got, keys) {
				t.Errorf("%s index %s keys = %v (exists %v), adapter uses %v", tc.logical, name, got, ok, keys)
			}
		}
		if tb.TTLAttribute != tc.ttl {
			t.Errorf("%s TTL attribute = %q, adapter uses %q", tc.logical, tb.TTLAttribute, tc.ttl)
		}
		if tb.BillingMode != "PAY_PER_REQUEST" || !tb.PointInTimeRecovery || !tb.SSE {
			t.Errorf("%s: billing %s, PITR %v, SSE %v; want on-demand with both on", tc.logical, tb.BillingMode, tb.PointInTimeRecovery, tb.SSE)
		}
	}
}

func TestFunctionEnvironmentNamesTablesAndKnownVariables(t *testing.T) {
	tpl, _ := load(t)
	known := map[string]bool{}
	for _, v := range app.Variables {
		known[v.Name] = true
	}
	for _, fn := range tpl.ResourcesOfType("AWS::Serverless::Function") {
		env := tpl.Environment(fn)
		for name := range env {
			if !known[name] {
				t.Errorf("%s sets %s, which no code reads", fn, name)
			}
		}
		for variable, table := range map[string]string{"SATELLITES_TABLE": "SatellitesTable", "CONNECTIONS_TABLE": "ConnectionsTable", "RESULTS_TABLE": "ResultsTable"} {
			if ref, _ := samtemplate.Ref(env[variable]); ref != table {
				t.Errorf("%s: %s = %v, want !Ref %s", fn, variable, env[variable], table)
			}
		}
	}
	msg := tpl.Environment("MessageFunction")
	for variable, ref := range map[string]string{"SCRIPT_PACKAGES_BUCKET": "ScriptPackagesBucket", "SECRETS_PREFIX": "SecretsPrefix", "EVENT_BUS_NAME": "EventBusName", "RESULT_RETENTION_DAYS": "ResultRetentionDays", "BLOB_URL_TTL_SECONDS": "BlobURLTTLSeconds"} {
		if got, _ := samtemplate.Ref(msg[variable]); got != ref {
			t.Errorf("MessageFunction %s = %v, want !Ref %s", variable, msg[variable], ref)
		}
	}
}

// TestSecretsPrefixCannotReachSiblingSecrets checks the SecretsPrefix
// parameter ends in "/" (or is empty: no secret source, no grant): the
// message function may read secret:<prefix>*, and a prefix such as
// "checkstack/prod" would match "checkstack/prod-admin" too.
func TestSecretsPrefixCannotReachSiblingSecrets(t *testing.T) {
	tpl, _ := load(t)
	p := tpl.Parameters["SecretsPrefix"]
	pattern, err := regexp.Compile(p.AllowedPattern)
	if p.AllowedPattern == "" || err != nil {
		t.Fatalf("SecretsPrefix AllowedPattern %q: %v", p.AllowedPattern, err)
	}
	for value, want := range map[string]bool{
		"": true, fmt.Sprint(p.Default): true, "team/prod/": true, "a/": true,
		"checkstack/satellite-secrets": false, "prod": false, "/": false, "//": false,
		"prod/*": false, "prod /": false,
	} {
		t.Run(fmt.Sprintf("%q", value), func(t *testing.T) {
			if got := pattern.MatchString(value); got != want {
				t.Errorf("AllowedPattern %q matches %q: %v, want %v", p.AllowedPattern, value, got, want)
			}
		})
	}
	granted := false
	stmts, err := tpl.PolicyStatements("MessageFunction")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stmts {
		if slices.Contains(st.Actions, "secretsmanager:GetSecretValue") {
			arn, _ := samtemplate.Sub(st.Resources[0])
			granted = len(st.Resources) == 1 && strings.HasSuffix(arn, ":secret:${SecretsPrefix}*")
		}
	}
	if !granted {
		t.Errorf("GetSecretValue is not granted on secret:${SecretsPrefix}* alone")
	}
}

// TestDurableTablesAreProtected checks the tables whose items the stack
// cannot rebuild (satellites with their tokens and assignments; results)
// survive the stack's deletion and a replacement (Retain), can be restored
// (point-in-time recovery: always for satellites; for results by default,
// ResultsPointInTimeRecovery, as the core has them from the feed), and
// refuse a DeleteTable from anyone while deletion protection is on.
func TestDurableTablesAreProtected(t *testing.T) {
	tpl, _ := load(t)
	if p := tpl.Parameters["ResultsPointInTimeRecovery"]; p.Default != "true" || !slices.Equal(p.AllowedValues, []any{"true", "false"}) {
		t.Errorf("ResultsPointInTimeRecovery default %v, allowed %v; want true of true, false", p.Default, p.AllowedValues)
	}
	for _, tc := range []struct {
		table  string
		values map[string]string
		pitr   bool
	}{
		{"SatellitesTable", nil, true},
		{"SatellitesTable", map[string]string{"ResultsPointInTimeRecovery": "false"}, true},
		{"ResultsTable", nil, true},
		{"ResultsTable", map[string]string{"ResultsPointInTimeRecovery": "false"}, false},
	} {
		t.Run(fmt.Sprintf("%s %v", tc.table, tc.values), func(t *testing.T) {
			r := tpl.Resources[tc.table]
			if r.DeletionPolicy != "Retain" || r.UpdateReplacePolicy != "Retain" {
				t.Errorf("DeletionPolicy %q, UpdateReplacePolicy %q; want Retain", r.DeletionPolicy, r.UpdateReplacePolicy)
			}
			if got := r.Properties["DeletionProtectionEnabled"]; got != true {
				t.Errorf("DeletionProtectionEnabled = %v, want true", got)
			}
			p := deploy(t, tpl, tc.values).pick(t, r.Properties).(map[string]any)
			if pitr, _ := p["PointInTimeRecoverySpecification"].(map[string]any); pitr["PointInTimeRecoveryEnabled"] != tc.pitr {
				t.Errorf("point-in-time recovery %v, want %v", pitr, tc.pitr)
			}
		})
	}
}

func TestBucketIsPrivateEncryptedAndTLSOnly(t *testing.T) {
	tpl, _ := load(t)
	p := tpl.Resources["ScriptPackagesBucket"].Properties
	block := p["PublicAccessBlockConfiguration"].(map[string]any)
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if block[k] != true {
			t.Errorf("%s is not true", k)
		}
	}
	if p["BucketEncryption"] == nil {
		t.Error("bucket encryption is off")
	}
	doc := tpl.Resources["ScriptPackagesBucketPolicy"].Properties["PolicyDocument"].(map[string]any)
	found := false
	for _, s := range doc["Statement"].([]any) {
		st := s.(map[string]any)
		cond, _ := st["Condition"].(map[string]any)
		b, _ := cond["Bool"].(map[string]any)
		if st["Effect"] == "Deny" && st["Principal"] == "*" && b["aws:SecureTransport"] == "false" {
			found = true
		}
	}
	if !found {
		t.Error("no statement denies requests without TLS")
	}
}

// TestPackageBucketKeepsReplacedVersionsForAWhile checks the script-package
// bucket is versioned (a blob or manifest overwritten, by a publish or by
// anyone else with write access, can be restored) and that replaced
// versions, and the delete markers left when they expire, go away on their
// own, so that its cost stays bounded.
func TestPackageBucketKeepsReplacedVersionsForAWhile(t *testing.T) {
	tpl, _ := load(t)
	p := tpl.Resources["ScriptPackagesBucket"].Properties
	if v, _ := p["VersioningConfiguration"].(map[string]any); v["Status"] != "Enabled" {
		t.Errorf("VersioningConfiguration = %v, want Enabled", p["VersioningConfiguration"])
	}
	lc, _ := p["LifecycleConfiguration"].(map[string]any)
	expires, markers := false, false
	for _, r := range asList(lc["Rules"]) {
		r := r.(map[string]any)
		if r["Status"] != "Enabled" || r["Prefix"] != nil || r["Filter"] != nil {
			continue // a rule for part of the bucket only
		}
		if nve, _ := r["NoncurrentVersionExpiration"].(map[string]any); nve != nil {
			days, _ := nve["NoncurrentDays"].(float64)
			expires = days >= 1 && days <= 90
		}
		markers = markers || r["ExpiredObjectDeleteMarker"] == true
	}
	if !expires || !markers {
		t.Errorf("lifecycle rules %v: want replaced versions expired within 90 days (%v) and expired delete markers removed (%v), bucket-wide", lc["Rules"], expires, markers)
	}
}

func TestOutputsGiveBothURLs(t *testing.T) {
	tpl, _ := load(t)
	for name, want := range map[string]*regexp.Regexp{
		"WebSocketURL":  regexp.MustCompile(`^wss://\$\{WebSocketApi\}\.execute-api\.\$\{AWS::Region\}\.\$\{AWS::URLSuffix\}/\$\{StageName\}$`),
		"ManagementURL": regexp.MustCompile(`^https://\$\{WebSocketApi\}\.execute-api\.\$\{AWS::Region\}\.\$\{AWS::URLSuffix\}/\$\{StageName\}/@connections$`),
	} {
		out, _ := tpl.Outputs[name].(map[string]any)
		sub, _ := samtemplate.Sub(out["Value"])
		if !want.MatchString(sub) {
			t.Errorf("output %s = %q", name, sub)
		}
	}
}

func TestParseShortFormTags(t *testing.T) {
	tpl, err := samtemplate.Parse([]byte(`
Resources:
  R:
    Type: T
    Properties:
      A: !Ref X
      B: !GetAtt Y.Arn
      C: !Sub "${X}/z"
      D: !If [Cond, 1, !Ref AWS::NoValue]
      E: !Join ["", [a, b]]
`))
	if err != nil {
		t.Fatal(err)
	}
	p := tpl.Resources["R"].Properties
	if r, _ := samtemplate.Ref(p["A"]); r != "X" {
		t.Errorf("!Ref = %v", p["A"])
	}
	if r, a, _ := samtemplate.GetAtt(p["B"]); r != "Y" || a != "Arn" {
		t.Errorf("!GetAtt = %v", p["B"])
	}
	if s, _ := samtemplate.Sub(p["C"]); s != "${X}/z" || !slices.Equal(samtemplate.SubRefs(s), []string{"X"}) {
		t.Errorf("!Sub = %v", p["C"])
	}
	if _, ok := p["D"].(map[string]any)["Fn::If"]; !ok {
		t.Errorf("!If = %v", p["D"])
	}
	if _, ok := p["E"].(map[string]any)["Fn::Join"]; !ok {
		t.Errorf("!Join = %v", p["E"])
	}
}

func TestAdminRoutesMatchTheHandler(t *testing.T) {
	tpl, _ := load(t)
	var routes []string
	evs, _ := tpl.Resources["AdminFunction"].Properties["Events"].(map[string]any)
	for name, ev := range evs {
		e := ev.(map[string]any)
		if e["Type"] != "HttpApi" {
			t.Errorf("AdminFunction event %s is %v, want HttpApi", name, e["Type"])
			continue
		}
		p := e["Properties"].(map[string]any)
		if ref, _ := samtemplate.Ref(p["ApiId"]); ref != "AdminApi" {
			t.Errorf("route %s is not on AdminApi", name)
		}
		routes = append(routes, p["Method"].(string)+" "+p["Path"].(string))
	}
	want := append([]string(nil), admin.Routes...)
	slices.Sort(routes)
	slices.Sort(want)
	if !slices.Equal(routes, want) {
		t.Errorf("template routes %v, handler routes %v", routes, want)
	}
	// SAM accepts DefaultAuthorizer AWS_IAM only when the IAM authorizer is
	// enabled; without it `sam build` passes and the transform fails at
	// deploy time.
	auth := tpl.Resources["AdminApi"].Properties["Auth"].(map[string]any)
	if auth["DefaultAuthorizer"] != "AWS_IAM" || auth["EnableIamAuthorizer"] != true {
		t.Errorf("admin API auth = %v, want DefaultAuthorizer AWS_IAM with EnableIamAuthorizer true", auth)
	}
}

// TestSweepTimeoutCoversItsPasses checks the sweep's schedule and timeout
// against its passes: the schedule's rate is sweep.Passes passes of
// sweep.PassEvery, and the function's Timeout leaves the last pass its whole
// budget (it ends when the next invocation's first pass is due) and the
// DeadlineMargin after it, so the deadline never cuts a pass short.
func TestSweepTimeoutCoversItsPasses(t *testing.T) {
	tpl, _ := load(t)
	fn := tpl.Resources["SweepFunction"].Properties
	p := fn["Events"].(map[string]any)["EveryMinute"].(map[string]any)["Properties"].(map[string]any)
	expr, _ := p["Schedule"].(string)
	period := time.Duration(sweep.Passes) * sweep.PassEvery
	if expr != fmt.Sprintf("rate(%d minute)", int(period/time.Minute)) {
		t.Errorf("sweep schedule %q, want a rate of %d passes of %s", expr, sweep.Passes, sweep.PassEvery)
	}
	if got := tpl.Timeout("SweepFunction"); got < period+sweep.DeadlineMargin {
		t.Errorf("SweepFunction timeout %s, want at least %s: %d passes of %s and the deadline margin %s", got, period+sweep.DeadlineMargin, sweep.Passes, sweep.PassEvery, sweep.DeadlineMargin)
	}
}

// TestSweepFailuresAreNotRetriedByLambdaAndReachTheFailureQueue checks both
// retry layers of the scheduled sweep. The schedule's RetryPolicy and
// dead-letter queue cover only EventBridge failing to deliver; a sweep that
// returns an error is an asynchronous invocation failure, which Lambda would
// retry twice on its own (overlapping the next minute's sweep) unless
// EventInvokeConfig says otherwise, and which never reaches the schedule's
// dead-letter queue.
func TestSweepFailuresAreNotRetriedByLambdaAndReachTheFailureQueue(t *testing.T) {
	tpl, _ := load(t)
	sweep := tpl.Resources["SweepFunction"].Properties
	ev := sweep["Events"].(map[string]any)["EveryMinute"].(map[string]any)
	p := ev["Properties"].(map[string]any)
	if ev["Type"] != "Schedule" || p["Schedule"] != "rate(1 minute)" || p["RetryPolicy"] == nil {
		t.Errorf("sweep schedule = %v", ev)
	}
	queue := func(v any) string {
		r, attr, _ := samtemplate.GetAtt(v)
		if attr != "Arn" || tpl.Resources[r].Type != "AWS::SQS::Queue" {
			return ""
		}
		return r
	}
	dlq, _ := p["DeadLetterConfig"].(map[string]any)
	scheduleQueue := queue(dlq["Arn"])
	if scheduleQueue == "" {
		t.Errorf("schedule dead-letter config = %v, want the Arn of a queue of this stack", dlq)
	}

	invoke, _ := sweep["EventInvokeConfig"].(map[string]any)
	if invoke["MaximumRetryAttempts"] != float64(0) {
		t.Errorf("EventInvokeConfig.MaximumRetryAttempts = %v, want 0: the next scheduled sweep is the retry", invoke["MaximumRetryAttempts"])
	}
	if age, _ := invoke["MaximumEventAgeInSeconds"].(float64); age < 60 || age > 120 {
		t.Errorf("EventInvokeConfig.MaximumEventAgeInSeconds = %v, want a minute or two", invoke["MaximumEventAgeInSeconds"])
	}
	onFailure, _ := invoke["DestinationConfig"].(map[string]any)["OnFailure"].(map[string]any)
	if onFailure["Type"] != "SQS" || queue(onFailure["Destination"]) != scheduleQueue {
		t.Errorf("failed sweeps go to %v, want the schedule's dead-letter queue %s", onFailure, scheduleQueue)
	}

	// EventBridge may send to the queue only for this schedule.
	granted := false
	for _, id := range tpl.ResourcesOfType("AWS::SQS::QueuePolicy") {
		qp := tpl.Resources[id].Properties
		if ref, _ := samtemplate.Ref(qp["Queues"].([]any)[0]); ref != scheduleQueue {
			continue
		}
		for _, st := range qp["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := st.(map[string]any)
			source, _ := st["Condition"].(map[string]any)["ArnEquals"].(map[string]any)["aws:SourceArn"]
			rule, attr, _ := samtemplate.GetAtt(source)
			if st["Principal"].(map[string]any)["Service"] == "events.amazonaws.com" && st["Action"] == "sqs:SendMessage" && rule == "SweepFunctionEveryMinute" && attr == "Arn" {
				granted = true
			}
		}
	}
	if !granted {
		t.Errorf("no queue policy lets the sweep's schedule rule (only) send to %s", scheduleQueue)
	}

	// Someone hears about it.
	watched := false
	for _, id := range tpl.ResourcesOfType("AWS::CloudWatch::Alarm") {
		ap := tpl.Resources[id].Properties
		for _, d := range asList(ap["Dimensions"]) {
			if r, attr, _ := samtemplate.GetAtt(d.(map[string]any)["Value"]); r == scheduleQueue && attr == "QueueName" && ap["MetricName"] == "ApproximateNumberOfMessagesVisible" {
				watched = true
			}
		}
	}
	if !watched {
		t.Errorf("no alarm watches the sweep failure queue %s", scheduleQueue)
	}
}

// TestFanoutFunctionHandsOnToItselfWithoutACycle checks the fan-out
// wiring: the admin function starts jobs on the fan-out function, which
// hands the rest of a segment on to itself. Its policy names its own ARN
// from its FunctionName (a !GetAtt of itself would make the function depend
// on its role depend on the function: a circular dependency), its
// FANOUT_FUNCTION is that same name, and its asynchronous invocations are
// retried twice (each retry continues from the last checkpoint) before they
// reach a failure queue an alarm watches.
func TestFanoutFunctionHandsOnToItselfWithoutACycle(t *testing.T) {
	tpl, _ := load(t)
	fn := tpl.Resources["FanoutFunction"].Properties
	name, ok := samtemplate.Sub(fn["FunctionName"])
	if !ok || !strings.HasPrefix(name, "${AWS::StackName}") {
		t.Fatalf("FanoutFunction.FunctionName = %v, want a !Sub of the stack's name", fn["FunctionName"])
	}
	if got, _ := samtemplate.Sub(tpl.Environment("FanoutFunction")["FANOUT_FUNCTION"]); got != name {
		t.Errorf("FanoutFunction hands on to %q, its name is %q", got, name)
	}
	if ref, _ := samtemplate.Ref(tpl.Environment("AdminFunction")["FANOUT_FUNCTION"]); ref != "FanoutFunction" {
		t.Errorf("AdminFunction FANOUT_FUNCTION = %v, want !Ref FanoutFunction", tpl.Environment("AdminFunction")["FANOUT_FUNCTION"])
	}
	for _, ref := range refsIn(fn) {
		if ref == "FanoutFunction" {
			t.Errorf("FanoutFunction refers to itself: a circular dependency")
		}
	}
	stmts, err := tpl.PolicyStatements("FanoutFunction")
	if err != nil {
		t.Fatal(err)
	}
	self := false
	for _, st := range stmts {
		if slices.Contains(st.Actions, "lambda:InvokeFunction") {
			arn, _ := samtemplate.Sub(st.Resources[0])
			self = len(st.Resources) == 1 && arn == "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"+name
		}
	}
	if !self {
		t.Errorf("FanoutFunction may not invoke exactly itself: %+v", stmts)
	}
	invoke, _ := fn["EventInvokeConfig"].(map[string]any)
	if invoke["MaximumRetryAttempts"] != float64(2) {
		t.Errorf("EventInvokeConfig.MaximumRetryAttempts = %v, want Lambda's 2, stated", invoke["MaximumRetryAttempts"])
	}
	onFailure, _ := invoke["DestinationConfig"].(map[string]any)["OnFailure"].(map[string]any)
	queue, attr, _ := samtemplate.GetAtt(onFailure["Destination"])
	if onFailure["Type"] != "SQS" || attr != "Arn" || tpl.Resources[queue].Type != "AWS::SQS::Queue" {
		t.Fatalf("failed fan-out tasks go to %v, want a queue of this stack", onFailure)
	}
	watched := false
	for _, id := range tpl.ResourcesOfType("AWS::CloudWatch::Alarm") {
		ap := tpl.Resources[id].Properties
		for _, d := range asList(ap["Dimensions"]) {
			if r, _, _ := samtemplate.GetAtt(d.(map[string]any)["Value"]); r == queue && ap["MetricName"] == "ApproximateNumberOfMessagesVisible" {
				watched = true
			}
		}
	}
	if !watched {
		t.Errorf("no alarm watches the fan-out failure queue %s", queue)
	}
	// A task stops posting DefaultMargin before its deadline; the timeout
	// leaves it most of the invocation.
	if timeout, _ := fn["Timeout"].(float64); time.Duration(timeout)*time.Second < 4*fanout.DefaultMargin {
		t.Errorf("FanoutFunction.Timeout = %v s, want at least four margins of %v", fn["Timeout"], fanout.DefaultMargin)
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// walk calls fn with every string in the template data and the key path to
// it.
func walk(v any, path []string, fn func(path []string, s string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			walk(x, append(append([]string(nil), path...), k), fn)
		}
	case []any:
		for _, x := range v {
			walk(x, path, fn)
		}
	case string:
		fn(path, v)
	}
}

// TestNothingAssumesTheCommercialPartition checks the template works in
// every AWS partition (aws-cn's endpoints end in amazonaws.com.cn): DNS
// names come from ${AWS::URLSuffix} and ARNs from ${AWS::Partition}. Service
// principals are the one place amazonaws.com is right everywhere.
func TestNothingAssumesTheCommercialPartition(t *testing.T) {
	tpl, _ := load(t)
	all := map[string]any{"Resources": tpl.Resources, "Outputs": tpl.Outputs, "Globals": tpl.Globals}
	walk(all, nil, func(path []string, s string) {
		principal := slices.Contains(path, "Principal") && path[len(path)-1] != "SourceArn"
		if strings.Contains(s, "amazonaws.com") && !principal {
			t.Errorf("%s: %q names the commercial partition's domain; use ${AWS::URLSuffix}", strings.Join(path, "."), s)
		}
		if strings.Contains(s, "arn:aws:") {
			t.Errorf("%s: %q names the commercial partition in an ARN; use ${AWS::Partition}", strings.Join(path, "."), s)
		}
	})
}

// refsIn returns every logical id a piece of template data refers to (Ref,
// GetAtt, and ${...} in Sub).
func refsIn(v any) []string {
	var out []string
	var visit func(any)
	visit = func(v any) {
		if r, ok := samtemplate.Ref(v); ok {
			out = append(out, r)
			return
		}
		if r, _, ok := samtemplate.GetAtt(v); ok {
			out = append(out, r)
			return
		}
		if s, ok := samtemplate.Sub(v); ok {
			for _, r := range samtemplate.SubRefs(s) {
				name, _, _ := strings.Cut(r, ".")
				out = append(out, name)
			}
			return
		}
		switch v := v.(type) {
		case map[string]any:
			for _, x := range v {
				visit(x)
			}
		case []any:
			for _, x := range v {
				visit(x)
			}
		}
	}
	visit(v)
	return out
}

// TestEveryFunctionLogsToALogGroupTheStackCreatesFirst checks each function
// names its log group (LoggingConfig.LogGroup) and the group does not depend
// on the function. A group named after the function is created after it, and
// a scheduled invocation in between makes Lambda create the group first:
// the stack then fails with "already exists".
func TestEveryFunctionLogsToALogGroupTheStackCreatesFirst(t *testing.T) {
	tpl, _ := load(t)
	groups := map[string]string{}
	for _, fn := range allFunctions(tpl) {
		lc, _ := tpl.Resources[fn].Properties["LoggingConfig"].(map[string]any)
		group, _ := samtemplate.Ref(lc["LogGroup"])
		r := tpl.Resources[group]
		if r.Type != "AWS::Logs::LogGroup" {
			t.Errorf("%s logs to %v, want !Ref of a log group of this stack", fn, lc["LogGroup"])
			continue
		}
		if other, ok := groups[group]; ok {
			t.Errorf("%s and %s share log group %s", fn, other, group)
		}
		groups[group] = fn
		for _, ref := range refsIn(r.Properties) {
			if slices.Contains(allFunctions(tpl), ref) {
				t.Errorf("log group %s refers to function %s, so it is created after the function can write", group, ref)
			}
		}
		if ref, _ := samtemplate.Ref(r.Properties["RetentionInDays"]); ref != "LogRetentionDays" {
			t.Errorf("log group %s keeps logs %v, want the LogRetentionDays parameter", group, r.Properties["RetentionInDays"])
		}
	}
	// The functions filter their logs by LOG_LEVEL; Lambda's own filter
	// would file the EMF metric lines (no "level") as INFO and drop them
	// under WARN.
	lc := tpl.Globals["Function"].(map[string]any)["LoggingConfig"].(map[string]any)
	if lc["ApplicationLogLevel"] != "TRACE" {
		t.Errorf("Lambda filters application logs at %v; metric lines would be dropped above INFO", lc["ApplicationLogLevel"])
	}
}

// allFunctions returns the SAM functions and the plain Lambda functions
// (the custom resource's inline code).
func allFunctions(tpl *samtemplate.Template) []string {
	return append(tpl.ResourcesOfType("AWS::Serverless::Function"), tpl.ResourcesOfType("AWS::Lambda::Function")...)
}

// TestEveryFunctionRunsAsItsOwnRole checks each function names a role of
// this stack (SAM then generates none: the role it would generate always
// carries AWSLambdaBasicExecutionRole, which writes to any log group of the
// account), used by no other function, that only Lambda may assume, with
// no managed policy and no logs:CreateLogGroup. What each role grants is
// checked against the function's requests by the IAM policy tests
// (testenv.CheckPolicy), its log group included; the custom resource's by
// TestLoggingRoleSetterIsLeastPrivilege.
func TestEveryFunctionRunsAsItsOwnRole(t *testing.T) {
	tpl, _ := load(t)
	used := map[string]string{}
	for _, fn := range allFunctions(tpl) {
		t.Run(fn, func(t *testing.T) {
			role, ok := tpl.Role(fn)
			if !ok {
				t.Fatalf("Role = %v, want !GetAtt <role>.Arn of a role of this stack", tpl.Resources[fn].Properties["Role"])
			}
			if other, ok := used[role]; ok {
				t.Errorf("shares role %s with %s", role, other)
			}
			used[role] = fn
			if p, ok := tpl.Resources[fn].Properties["Policies"]; ok {
				t.Errorf("Policies %v beside a Role (SAM ignores them)", p)
			}
			rp := tpl.Resources[role].Properties
			if got, want := jsonOf(t, rp["AssumeRolePolicyDocument"]), `{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"}}],"Version":"2012-10-17"}`; got != want {
				t.Errorf("trust policy = %s, want %s", got, want)
			}
			if got := rp["ManagedPolicyArns"]; got != nil {
				t.Errorf("managed policies %v, want none", got)
			}
			stmts, err := tpl.PolicyStatements(fn)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range stmts {
				for _, a := range st.Actions {
					if strings.HasPrefix(a, "logs:") && a != "logs:CreateLogStream" && a != "logs:PutLogEvents" {
						t.Errorf("grants %s", a)
					}
				}
			}
		})
	}
}

// TestTheAccountsLoggingRoleIsLeftAloneByDefault checks the stack replaces
// the API Gateway CloudWatch Logs role of the account (one per account and
// region, which other APIs may rely on) only when asked to: by default an
// existing role is not replaced (auto sets one only where none is set:
// TestLoggingRoleIsSetOnlyWhenNoneIsSet).
func TestTheAccountsLoggingRoleIsLeftAloneByDefault(t *testing.T) {
	tpl, _ := load(t)
	d := deploy(t, tpl, nil)
	for _, id := range tpl.ResourcesOfType("AWS::ApiGateway::Account") {
		if d.exists(t, id) {
			t.Errorf("%s, which replaces the account's role, is created by default (condition %s)", id, tpl.Resources[id].Condition)
		}
	}
}

// TestReservedConcurrencyBoundsThePublicFunctions checks every reservation
// is a parameter that 0 turns off (Lambda's 0 would stop the function), and
// that the functions anyone can reach ($connect, $default: no authorizer,
// no WAF on a WebSocket API) reserve some by default: a reservation is also
// a ceiling, so a flood cannot take the account's concurrency from its
// other functions. The defaults together fit an account with the default
// quota of 1,000, of which Lambda keeps 100 unreserved; the others reserve
// none by default.
func TestReservedConcurrencyBoundsThePublicFunctions(t *testing.T) {
	tpl, _ := load(t)
	reserved := 0.0
	for _, fn := range tpl.ResourcesOfType("AWS::Serverless::Function") {
		v, ok := tpl.Resources[fn].Properties["ReservedConcurrentExecutions"]
		public := fn == "ConnectFunction" || fn == "MessageFunction"
		t.Run(fn, func(t *testing.T) {
			if !ok {
				if public || fn == "DisconnectFunction" || fn == "SweepFunction" {
					t.Errorf("cannot be given reserved concurrency")
				}
				return
			}
			branches, _ := v.(map[string]any)["Fn::If"].([]any)
			if len(branches) != 3 {
				t.Fatalf("reserves concurrency unconditionally: %v", v)
			}
			cond, _ := branches[0].(string)
			param, _ := samtemplate.Ref(branches[1])
			novalue, _ := samtemplate.Ref(branches[2])
			if got, want := jsonOf(t, tpl.Conditions[cond]), `{"Fn::Not":[{"Fn::Equals":[{"Ref":"`+param+`"},"0"]}]}`; got != want || novalue != "AWS::NoValue" {
				t.Errorf("reservation %v under %s = %s; want the parameter's value unless it is 0", v, cond, got)
			}
			def, _ := tpl.Parameters[param].Default.(float64)
			switch {
			case public && def <= 0:
				t.Errorf("%s defaults to %v: a public function reserves (and is bounded to) some concurrency by default", param, def)
			case !public && def != 0:
				t.Errorf("%s defaults to %v, want 0", param, def)
			}
			reserved += def
		})
	}
	if reserved > 900 {
		t.Errorf("the default reservations add up to %v; an account with the default quota of 1,000 can reserve 900", reserved)
	}
}

// alarmMetric is one metric an alarm reads.
type alarmMetric struct {
	Namespace, Name string
	Dimensions      map[string]any // dimension -> template value
}

func alarmMetrics(p map[string]any) []alarmMetric {
	dims := func(list any) map[string]any {
		out := map[string]any{}
		for _, d := range asList(list) {
			d := d.(map[string]any)
			out[d["Name"].(string)] = d["Value"]
		}
		return out
	}
	if name, ok := p["MetricName"].(string); ok {
		return []alarmMetric{{p["Namespace"].(string), name, dims(p["Dimensions"])}}
	}
	var out []alarmMetric
	for _, q := range asList(p["Metrics"]) {
		stat, ok := q.(map[string]any)["MetricStat"].(map[string]any)
		if !ok {
			continue
		}
		m := stat["Metric"].(map[string]any)
		out = append(out, alarmMetric{m["Namespace"].(string), m["MetricName"].(string), dims(m["Dimensions"])})
	}
	return out
}

func catalogMetric(name string) (metrics.Metric, bool) {
	for _, m := range metrics.All {
		if m.Name == name {
			return m, true
		}
	}
	return metrics.Metric{}, false
}

// checkCustomMetric fails when a reference to a metric of this backend's
// namespace names a metric the code does not emit, or dimensions it does not
// emit it with.
func checkCustomMetric(t *testing.T, where, name string, dims map[string]string) {
	t.Helper()
	m, ok := catalogMetric(name)
	if !ok {
		t.Errorf("%s reads %s/%s, which the code never emits", where, metrics.Namespace, name)
		return
	}
	for dim, value := range dims {
		switch {
		case dim == metrics.StackDimension:
			if value != "${AWS::StackName}" {
				t.Errorf("%s reads %s for Stack %q, want the stack's name", where, name, value)
			}
		case dim != m.Dimension:
			t.Errorf("%s reads %s with dimension %s; it is emitted with %q", where, name, dim, m.Dimension)
		case !slices.Contains(m.Values, value):
			t.Errorf("%s reads %s %s=%s; emitted values are %v", where, name, dim, value, m.Values)
		}
	}
	if _, ok := dims[metrics.StackDimension]; !ok {
		t.Errorf("%s reads %s without the Stack dimension: CloudWatch matches exact dimension sets", where, name)
	}
	if m.Dimension != "" {
		if _, ok := dims[m.Dimension]; !ok {
			t.Errorf("%s reads %s without its %s dimension", where, name, m.Dimension)
		}
	}
}

// TestAlarmsCoverTheBackendAndNotifyTheTopic checks the alarm set an
// operator needs: function errors and throttles, sweep failures, the failure
// queue, DynamoDB throttling, API Gateway errors on both APIs, failed
// authentications and a drop in satellites online; every alarm notifies the
// topic, and metrics of this backend's namespace exist as emitted.
func TestAlarmsCoverTheBackendAndNotifyTheTopic(t *testing.T) {
	tpl, _ := load(t)
	if tpl.Resources["AlarmTopic"].Type != "AWS::SNS::Topic" {
		t.Fatal("no AlarmTopic")
	}
	sub := tpl.Resources["AlarmEmailSubscription"]
	if ref, _ := samtemplate.Ref(sub.Properties["Endpoint"]); ref != "AlarmEmail" || sub.Condition != "HasAlarmEmail" || tpl.Parameters["AlarmEmail"].Default != "" {
		t.Errorf("email subscription %+v, want the AlarmEmail parameter, optional", sub)
	}
	covered := map[string]bool{}
	for _, id := range tpl.ResourcesOfType("AWS::CloudWatch::Alarm") {
		p := tpl.Resources[id].Properties
		for _, list := range []string{"AlarmActions", "OKActions"} {
			actions := asList(p[list])
			if len(actions) != 1 {
				t.Errorf("%s %s = %v, want the alarm topic", id, list, p[list])
				continue
			}
			if ref, _ := samtemplate.Ref(actions[0]); ref != "AlarmTopic" {
				t.Errorf("%s %s = %v, want the alarm topic", id, list, actions)
			}
		}
		for _, m := range alarmMetrics(p) {
			var targets []string
			for _, v := range m.Dimensions {
				if r, ok := samtemplate.Ref(v); ok {
					targets = append(targets, r)
				}
				if r, _, ok := samtemplate.GetAtt(v); ok {
					targets = append(targets, r)
				}
			}
			slices.Sort(targets)
			covered[m.Namespace+" "+m.Name+" "+strings.Join(targets, "+")] = true
			if m.Namespace == metrics.Namespace {
				dims := map[string]string{}
				for k, v := range m.Dimensions {
					if ref, ok := samtemplate.Ref(v); ok {
						v = "${" + ref + "}"
					}
					dims[k] = fmt.Sprint(v)
				}
				checkCustomMetric(t, id, m.Name, dims)
			}
		}
	}
	var want []string
	for _, fn := range tpl.ResourcesOfType("AWS::Serverless::Function") {
		want = append(want, "AWS/Lambda Errors "+fn, "AWS/Lambda Throttles "+fn)
	}
	// How near the public functions are to their reservations.
	want = append(want, "AWS/Lambda ConcurrentExecutions ConnectFunction", "AWS/Lambda ConcurrentExecutions MessageFunction")
	for _, table := range []string{"SatellitesTable", "ConnectionsTable", "ResultsTable"} {
		want = append(want, "AWS/DynamoDB ReadThrottleEvents "+table, "AWS/DynamoDB WriteThrottleEvents "+table)
	}
	want = append(want,
		"AWS/SQS ApproximateNumberOfMessagesVisible SweepFailureQueue",
		"AWS/ApiGateway IntegrationError StageName+WebSocketApi",
		"AWS/ApiGateway 5xx AdminApi",
		metrics.Namespace+" Authentications AWS::StackName",
		metrics.Namespace+" SatellitesOnline AWS::StackName",
		metrics.Namespace+" OversizedMessageCloses AWS::StackName",
	)
	for _, w := range want {
		if !covered[w] {
			t.Errorf("no alarm reads %s", w)
		}
	}
}

// TestAlarmTopicIsEncryptedWithAKeyCloudWatchMayUse checks the alarm
// topic is encrypted with a customer managed key of this stack, rotated
// yearly, that the account administers and CloudWatch may use to publish:
// with the AWS managed key (alias/aws/sns), whose policy cannot be
// changed, CloudWatch cannot publish and alarms notify nobody, silently.
func TestAlarmTopicIsEncryptedWithAKeyCloudWatchMayUse(t *testing.T) {
	tpl, _ := load(t)
	key, ok := samtemplate.Ref(tpl.Resources["AlarmTopic"].Properties["KmsMasterKeyId"])
	if !ok || tpl.Resources[key].Type != "AWS::KMS::Key" {
		t.Fatalf("AlarmTopic KmsMasterKeyId = %v, want !Ref of a KMS key of this stack", tpl.Resources["AlarmTopic"].Properties["KmsMasterKeyId"])
	}
	p := tpl.Resources[key].Properties
	if p["EnableKeyRotation"] != true {
		t.Errorf("%s EnableKeyRotation = %v, want true", key, p["EnableKeyRotation"])
	}
	grants := map[string]string{}
	for _, st := range asList(p["KeyPolicy"].(map[string]any)["Statement"]) {
		st := st.(map[string]any)
		if st["Effect"] != "Allow" || st["Resource"] != "*" {
			t.Errorf("key policy statement %v", st)
			continue
		}
		principal := jsonOf(t, st["Principal"])
		var actions []string
		for _, a := range asList(st["Action"]) {
			actions = append(actions, a.(string))
		}
		if a, ok := st["Action"].(string); ok {
			actions = append(actions, a)
		}
		slices.Sort(actions)
		grants[principal] = strings.Join(actions, ",")
	}
	for principal, want := range map[string]string{
		`{"AWS":{"Fn::Sub":"arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}`: "kms:*",
		`{"Service":"cloudwatch.amazonaws.com"}`:                                  "kms:Decrypt,kms:GenerateDataKey*",
	} {
		if got := grants[principal]; got != want {
			t.Errorf("key policy grants %s %q, want %q", principal, got, want)
		}
		delete(grants, principal)
	}
	if len(grants) != 0 {
		t.Errorf("key policy also grants %v", grants)
	}
}

// TestDashboardShowsTheFleetAtAGlance checks the dashboard body is valid
// JSON once CloudFormation substitutes it, refers only to things the stack
// has, reads only metrics the code emits, and shows every alarm.
func TestDashboardShowsTheFleetAtAGlance(t *testing.T) {
	tpl, _ := load(t)
	body, ok := samtemplate.Sub(tpl.Resources["Dashboard"].Properties["DashboardBody"])
	if !ok {
		t.Fatal("DashboardBody is not a !Sub string")
	}
	for _, ref := range samtemplate.SubRefs(body) {
		name, _, _ := strings.Cut(ref, ".")
		_, resource := tpl.Resources[name]
		_, param := tpl.Parameters[name]
		if !resource && !param && !strings.HasPrefix(name, "AWS::") {
			t.Errorf("dashboard refers to ${%s}, which the template does not have", ref)
		}
	}
	// Every ${...} stands inside a JSON string, so the body parses as it is.
	var dash struct {
		Widgets []struct {
			Type       string
			Properties struct {
				Title   string
				Metrics [][]any
				Alarms  []string
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &dash); err != nil {
		t.Fatalf("dashboard body is not JSON: %v", err)
	}
	titles := map[string]bool{}
	alarms := map[string]bool{}
	for _, w := range dash.Widgets {
		titles[w.Properties.Title] = true
		for _, a := range w.Properties.Alarms {
			alarms[strings.TrimSuffix(strings.TrimPrefix(a, "${"), ".Arn}")] = true
		}
		for _, m := range w.Properties.Metrics {
			if len(m) < 2 || m[0] != metrics.Namespace {
				continue
			}
			dims := map[string]string{}
			for i := 2; i+1 < len(m); i += 2 {
				k, _ := m[i].(string)
				v, _ := m[i+1].(string)
				dims[k] = v
			}
			checkCustomMetric(t, "dashboard widget "+w.Properties.Title, m[1].(string), dims)
		}
	}
	for _, title := range []string{"Satellites online", "Lifecycle edges per minute", "Frames per minute by type", "Function errors per minute", "Function duration p99 (ms)"} {
		if !titles[title] {
			t.Errorf("dashboard has no %q widget", title)
		}
	}
	for _, id := range tpl.ResourcesOfType("AWS::CloudWatch::Alarm") {
		if !alarms[id] {
			t.Errorf("dashboard does not show alarm %s", id)
		}
	}
}

// deployedIndexes are the global secondary indexes of the tables as the
// last released template created them (commit d76e4c2, the first one that
// passed the SAM transform): what a stack being updated has.
var deployedIndexes = []struct{ table, index, keys, projection, attributes string }{
	{"ConnectionsTable", "BySatellite", "satelliteId", "ALL", ""},
	{"ConnectionsTable", "Unauthenticated", "unauthShard,connectedAt", "KEYS_ONLY", ""},
	{"ConnectionsTable", "ByExpiry", "expiryShard,expiresAt", "KEYS_ONLY", ""},
	{"SatellitesTable", "LiveByStaleAt", "liveShard,staleAt", "INCLUDE", "satelliteId,name,region,lastHeartbeatAt"},
	{"SatellitesTable", "Outbox", "outboxShard,outboxAt", "INCLUDE", "satelliteId,name,region,pendingEdges,lastSeenAt"},
}

// deployedTables are the tables of that release.
var deployedTables = map[string]bool{"ConnectionsTable": true, "SatellitesTable": true, "ResultsTable": true}

// TestIndexChangesDeployAsOneUpdate checks that `sam deploy` can update a
// stack created from the last release in one go: DynamoDB (and so
// CloudFormation) creates or deletes at most one global secondary index of
// a table per update and cannot change an index's keys or projection.
// When an index must change, release it in steps and move deployedIndexes.
func TestIndexChangesDeployAsOneUpdate(t *testing.T) {
	tpl, _ := load(t)
	tables, err := tpl.Tables()
	if err != nil {
		t.Fatal(err)
	}
	now := map[string]map[string]string{}
	for _, tb := range tables {
		now[tb.LogicalID] = map[string]string{}
		for _, g := range tb.GlobalSecondaryIndexes {
			var keys []string
			for _, k := range g.KeySchema {
				keys = append(keys, *k.AttributeName)
			}
			now[tb.LogicalID][*g.IndexName] = strings.Join(keys, ",") + " " + string(g.Projection.ProjectionType) + " " + strings.Join(g.Projection.NonKeyAttributes, ",")
		}
	}
	operations := map[string]int{}
	for _, d := range deployedIndexes {
		got, ok := now[d.table][d.index]
		if !ok {
			operations[d.table]++ // deleted
			continue
		}
		if want := d.keys + " " + d.projection + " " + d.attributes; got != want {
			t.Errorf("%s index %s is %q, deployed as %q: an index cannot change in place", d.table, d.index, got, want)
		}
		delete(now[d.table], d.index)
	}
	for table, created := range now {
		if deployedTables[table] { // a new table gets its indexes with it
			operations[table] += len(created)
		}
	}
	for table, n := range operations {
		if n > 1 {
			t.Errorf("%s: %d index creations and deletions in one update; DynamoDB allows one", table, n)
		}
	}
}
