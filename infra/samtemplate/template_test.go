package samtemplate_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/admin"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/dynamo"
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
			map[string][]string{dynamo.LiveIndex: {dynamo.LiveIndexPartKey, dynamo.LiveIndexSortKey}}, ""},
		{"ConnectionsTable", []string{dynamo.ConnectionsPartitionKey},
			map[string][]string{
				dynamo.BySatelliteIndex:     {dynamo.BySatelliteIndexPartKey},
				dynamo.UnauthenticatedIndex: {dynamo.UnauthenticatedIndexPartKey, dynamo.UnauthenticatedIndexSortKey},
				dynamo.ExpiryIndex:          {dynamo.ExpiryIndexPartKey, dynamo.ExpiryIndexSortKey},
			}, dynamo.ConnectionsTTLAttribute},
		{"ResultsTable", []string{dynamo.ResultsPartitionKey, dynamo.ResultsSortKey}, nil, dynamo.ResultsTTLAttribute},
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

func TestOutputsGiveBothURLs(t *testing.T) {
	tpl, _ := load(t)
	for name, want := range map[string]*regexp.Regexp{
		"WebSocketURL":  regexp.MustCompile(`^wss://\$\{WebSocketApi\}\.execute-api\.\$\{AWS::Region\}\.amazonaws\.com/\$\{StageName\}$`),
		"ManagementURL": regexp.MustCompile(`^https://\$\{WebSocketApi\}\.execute-api\.\$\{AWS::Region\}\.amazonaws\.com/\$\{StageName\}/@connections$`),
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

func TestSweepRunsEveryMinuteWithRetriesAndADeadLetterQueue(t *testing.T) {
	tpl, _ := load(t)
	ev := tpl.Resources["SweepFunction"].Properties["Events"].(map[string]any)["EveryMinute"].(map[string]any)
	p := ev["Properties"].(map[string]any)
	if ev["Type"] != "Schedule" || p["Schedule"] != "rate(1 minute)" || p["RetryPolicy"] == nil || p["DeadLetterConfig"] == nil {
		t.Errorf("sweep schedule = %v", ev)
	}
}
