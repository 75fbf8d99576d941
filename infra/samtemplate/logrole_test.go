package samtemplate_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// A deployment is the template as CloudFormation sees it with some
// parameter values (samtemplate.Deployment), failing the test where that
// cannot be evaluated.
type deployment struct {
	tpl *samtemplate.Template
	*samtemplate.Deployment
}

// deploy evaluates the template's conditions with the parameters'
// defaults, overridden by values, in the commercial partition.
func deploy(t *testing.T, tpl *samtemplate.Template, values map[string]string) *deployment {
	t.Helper()
	d, err := tpl.Deploy(values)
	if err != nil {
		t.Fatal(err)
	}
	return &deployment{tpl: tpl, Deployment: d}
}

// exists says whether the stack has a resource in this deployment.
func (d *deployment) exists(t *testing.T, id string) bool {
	t.Helper()
	v, err := d.Exists(id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pick returns template data with every Fn::If replaced by the branch
// this deployment takes.
func (d *deployment) pick(t *testing.T, v any) any {
	t.Helper()
	out, err := d.Pick(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dependencies returns every resource id waits for in this deployment:
// its DependsOn and what its properties and metadata refer to, and
// theirs in turn.
func (d *deployment) dependencies(t *testing.T, id string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	var visit func(string)
	visit = func(id string) {
		r := d.tpl.Resources[id]
		var direct []string
		switch dep := r.DependsOn.(type) {
		case string:
			direct = append(direct, dep)
		case []any:
			for _, x := range dep {
				direct = append(direct, fmt.Sprint(x))
			}
		}
		direct = append(direct, refsIn(d.pick(t, r.Properties))...)
		direct = append(direct, refsIn(d.pick(t, r.Metadata))...)
		for _, dep := range direct {
			if _, ok := d.tpl.Resources[dep]; !ok || seen[dep] {
				continue
			}
			if !d.exists(t, dep) {
				t.Errorf("%s depends on %s, which this deployment does not create", id, dep)
				continue
			}
			seen[dep] = true
			visit(dep)
		}
	}
	visit(id)
	return seen
}

// customResources returns the logical ids of the template's custom
// resources.
func customResources(tpl *samtemplate.Template) []string {
	var ids []string
	for id, r := range tpl.Resources {
		if r.Type == "AWS::CloudFormation::CustomResource" || strings.HasPrefix(r.Type, "Custom::") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// loggingRoleSetter returns the custom resource that sets the account's
// API Gateway CloudWatch Logs role when none is set, and the function
// behind it.
func loggingRoleSetter(t *testing.T, tpl *samtemplate.Template) (custom, function string) {
	t.Helper()
	ids := customResources(tpl)
	if len(ids) != 1 {
		t.Fatalf("custom resources %v, want the one that sets the account's API Gateway logging role", ids)
	}
	fn, attr, ok := samtemplate.GetAtt(tpl.Resources[ids[0]].Properties["ServiceToken"])
	if !ok || attr != "Arn" || tpl.Resources[fn].Type != "AWS::Lambda::Function" {
		t.Fatalf("%s ServiceToken = %v, want !GetAtt <function>.Arn of an AWS::Lambda::Function of this stack", ids[0], tpl.Resources[ids[0]].Properties["ServiceToken"])
	}
	return ids[0], fn
}

// TestApiGatewayLoggingRoleModes checks the three ways the stack treats
// the account's API Gateway CloudWatch Logs role (one per account and
// region, which WebSocket access logs need and other APIs may rely on).
// auto, the default, creates a role and has a custom resource set it only
// when the account has none, before the stage is created; create creates
// one and sets it (AWS::ApiGateway::Account), replacing any; existing
// touches nothing. The role is kept when the stack is deleted: the
// account's setting may name it.
func TestApiGatewayLoggingRoleModes(t *testing.T) {
	tpl, _ := load(t)
	p := tpl.Parameters["ApiGatewayLoggingRole"]
	if p.Default != "auto" {
		t.Errorf("ApiGatewayLoggingRole defaults to %v, want auto: a first deploy into a new account must not fail at the stage", p.Default)
	}
	if got := fmt.Sprint(p.AllowedValues); got != "[auto create existing]" {
		t.Errorf("ApiGatewayLoggingRole AllowedValues = %s, want [auto create existing]", got)
	}
	custom, function := loggingRoleSetter(t, tpl)
	accounts := tpl.ResourcesOfType("AWS::ApiGateway::Account")
	if len(accounts) != 1 {
		t.Fatalf("AWS::ApiGateway::Account resources %v, want one (create mode)", accounts)
	}
	account := accounts[0]
	role := "ApiGatewayLoggingRoleResource"
	// What auto mode adds for the custom resource.
	setter := []string{custom, function}
	if fnRole, ok := tpl.Role(function); ok {
		setter = append(setter, fnRole)
	}
	lc, _ := tpl.Resources[function].Properties["LoggingConfig"].(map[string]any)
	if group, ok := samtemplate.Ref(lc["LogGroup"]); ok {
		setter = append(setter, group)
	}

	for _, tc := range []struct {
		mode     string
		role     bool   // the stack creates a logging role
		account  bool   // AWS::ApiGateway::Account sets it
		setter   bool   // the custom resource sets it when none is set
		waitsFor string // what the stage waits for ("" nothing)
	}{
		{"auto", true, false, true, custom},
		{"create", true, true, false, account},
		{"existing", false, false, false, ""},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			d := deploy(t, tpl, map[string]string{"ApiGatewayLoggingRole": tc.mode})
			if got := d.exists(t, role); got != tc.role {
				t.Errorf("%s exists: %v, want %v", role, got, tc.role)
			}
			if got := d.exists(t, account); got != tc.account {
				t.Errorf("%s (the account's setting, replaced) exists: %v, want %v", account, got, tc.account)
			}
			for _, id := range setter {
				if got := d.exists(t, id); got != tc.setter {
					t.Errorf("%s exists: %v, want %v", id, got, tc.setter)
				}
			}
			deps := d.dependencies(t, "Stage")
			for _, id := range []string{custom, account} {
				if want := id == tc.waitsFor; deps[id] != want {
					t.Errorf("the stage waits for %s: %v, want %v", id, deps[id], want)
				}
			}
			if tc.setter {
				props := d.pick(t, tpl.Resources[custom].Properties)
				if r, attr, _ := samtemplate.GetAtt(props.(map[string]any)["RoleArn"]); r != role || attr != "Arn" {
					t.Errorf("%s RoleArn = %v, want !GetAtt %s.Arn", custom, props.(map[string]any)["RoleArn"], role)
				}
			}
			if tc.account {
				if r, attr, _ := samtemplate.GetAtt(tpl.Resources[account].Properties["CloudWatchRoleArn"]); r != role || attr != "Arn" {
					t.Errorf("%s CloudWatchRoleArn = %v, want !GetAtt %s.Arn", account, tpl.Resources[account].Properties["CloudWatchRoleArn"], role)
				}
			}
		})
	}

	r := tpl.Resources[role]
	if r.Type != "AWS::IAM::Role" || r.DeletionPolicy != "Retain" || r.UpdateReplacePolicy != "Retain" {
		t.Errorf("%s: %s, DeletionPolicy %q, UpdateReplacePolicy %q; want a role kept when the stack is deleted (the account's setting may name it)", role, r.Type, r.DeletionPolicy, r.UpdateReplacePolicy)
	}
	if got, want := jsonOf(t, r.Properties["AssumeRolePolicyDocument"]), `{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"}}],"Version":"2012-10-17"}`; got != want {
		t.Errorf("%s trust policy = %s, want %s", role, got, want)
	}
	if got, want := jsonOf(t, r.Properties["ManagedPolicyArns"]), `[{"Fn::Sub":"arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}]`; got != want {
		t.Errorf("%s managed policies = %s, want %s", role, got, want)
	}
}

// TestLoggingRoleSetterIsLeastPrivilege checks the function behind the
// custom resource: inline Python the Lambda runtime runs as it is (no
// build, boto3 from the runtime), answering within its timeout and
// CloudFormation waiting no more than a few minutes for it, with a role
// that reads and updates the account's API Gateway settings, passes the
// stack's logging role only, and writes its own log group only.
func TestLoggingRoleSetterIsLeastPrivilege(t *testing.T) {
	tpl, _ := load(t)
	custom, function := loggingRoleSetter(t, tpl)
	cp := tpl.Resources[custom].Properties
	if n, _ := cp["ServiceTimeout"].(float64); n < 60 || n > 600 {
		t.Errorf("%s ServiceTimeout = %v, want a few minutes: without it a function that never answers holds the stack for an hour", custom, cp["ServiceTimeout"])
	}
	p := tpl.Resources[function].Properties
	if p["Runtime"] != "python3.12" || p["Handler"] != "index.handler" {
		t.Errorf("%s runtime %v handler %v, want python3.12 index.handler", function, p["Runtime"], p["Handler"])
	}
	if n, _ := p["Timeout"].(float64); n < 20 || n > 60 {
		t.Errorf("%s Timeout = %v, want about 30 s", function, p["Timeout"])
	}
	if n, _ := cp["ServiceTimeout"].(float64); n <= p["Timeout"].(float64) {
		t.Errorf("%s ServiceTimeout %v is not longer than the function's Timeout %v", custom, n, p["Timeout"])
	}
	code, _ := p["Code"].(map[string]any)["ZipFile"].(string)
	if code == "" || len(code) > 4096 {
		t.Errorf("%s inline code is %d characters, want some and at most 4096 (CloudFormation's long-standing ZipFile limit)", function, len(code))
	}
	if strings.Contains(code, "cfnresponse") {
		t.Errorf("%s uses cfnresponse, which logs the presigned ResponseURL", function)
	}
	role, _ := tpl.Role(function)
	if c := tpl.Resources[role].Condition; c != tpl.Resources[function].Condition || c != tpl.Resources[custom].Condition {
		t.Errorf("%s (condition %q), %s (%q) and %s (%q) are not created together", custom, tpl.Resources[custom].Condition, function, tpl.Resources[function].Condition, role, c)
	}
	stmts, err := tpl.PolicyStatements(function)
	if err != nil {
		t.Fatal(err)
	}
	lc, _ := p["LoggingConfig"].(map[string]any)
	group, _ := samtemplate.Ref(lc["LogGroup"])
	var got []string
	for _, st := range stmts {
		if st.Effect != "Allow" || st.Condition != nil {
			t.Errorf("statement %+v", st)
		}
		actions := slices.Clone(st.Actions)
		slices.Sort(actions)
		got = append(got, strings.Join(actions, ",")+" on "+jsonOf(t, st.Resources))
	}
	slices.Sort(got)
	want := []string{
		`apigateway:GET,apigateway:PATCH on [{"Fn::Sub":"arn:${AWS::Partition}:apigateway:${AWS::Region}::/account"}]`,
		`iam:PassRole on [{"Fn::GetAtt":["ApiGatewayLoggingRoleResource","Arn"]}]`,
		`logs:CreateLogStream,logs:PutLogEvents on [{"Fn::Sub":"arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${` + group + `}:*"}]`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s grants\n  %s\nwant\n  %s", function, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// loggingRoleHarness runs the custom resource's inline code (written to
// index.py, as Lambda names it) in python3 against the client objects
// below, which stand in for boto3's API Gateway client: a unit test of
// its logic, with no network and no boto3. It reads cases (JSON) on
// stdin and prints what the code did with each.
const loggingRoleHarness = `
import contextlib, importlib.util, io, json, sys, time

spec = importlib.util.spec_from_file_location("index", sys.argv[1])
index = importlib.util.module_from_spec(spec)
spec.loader.exec_module(index)
if "boto3" in sys.modules:
    raise SystemExit("index.py imports boto3 when loaded")

class APIError(Exception):
    def __init__(self, code):
        super().__init__("An error occurred (%s) when calling the operation: refused" % code)
        self.response = {"Error": {"Code": code, "Message": "refused"}}

class Client:
    def __init__(self, case):
        self.current = case.get("current")
        self.get_error = case.get("getError")
        self.patch_errors = list(case.get("patchErrors") or [])
        self.block = case.get("blockSeconds", 0)
        self.calls = []
    def get_account(self):
        self.calls.append("get_account")
        time.sleep(self.block)
        if self.get_error:
            raise APIError(self.get_error)
        return {} if self.current is None else {"cloudwatchRoleArn": self.current}
    def update_account(self, **kwargs):
        self.calls.append("update_account " + json.dumps(kwargs, sort_keys=True))
        if self.patch_errors:
            raise APIError(self.patch_errors.pop(0))
        return {}

class Context:
    def __init__(self, ms):
        self.ms, self.start = ms, time.monotonic()
    def get_remaining_time_in_millis(self):
        return int(self.ms - (time.monotonic() - self.start) * 1000)

out = []
for case in json.load(sys.stdin):
    client = Client(case)
    sleeps = []
    got = {"name": case["name"]}
    if case.get("event") is None:
        try:
            got["outcome"] = list(index.ensure_role(case["request"], case["roleArn"], client, sleep=sleeps.append))
        except Exception as e:
            got["error"] = type(e).__name__ + ": " + str(e)
        got["calls"], got["sleeps"] = client.calls, sleeps
    else:
        sends, made = [], []
        def make_client():
            made.append(1)
            if case.get("clientError"):
                raise RuntimeError(case["clientError"])
            return client
        def send(event, status, physical_id, data, reason):
            sends.append({"status": status, "physicalId": physical_id, "data": data, "reason": reason})
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            index.handler(case["event"], Context(case.get("remainingMs", 30000)), client=make_client, send=send)
        time.sleep(case.get("settleSeconds", 0))
        got.update(sends=sends, clients=len(made), calls=client.calls, stdout=stdout.getvalue())
        got["body"] = json.loads(index.body(case["event"], "SUCCESS", "id", {"Outcome": "set"}, "r" * 2000))
    out.append(got)
json.dump(out, sys.stdout)
`

// runLoggingRoleCode runs cases through the harness.
func runLoggingRoleCode(t *testing.T, cases []map[string]any) []map[string]any {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to test the custom resource's inline code (Debian: apt-get install python3): %v", err)
	}
	tpl, _ := load(t)
	_, function := loggingRoleSetter(t, tpl)
	code, _ := tpl.Resources[function].Properties["Code"].(map[string]any)["ZipFile"].(string)
	dir := t.TempDir()
	for name, text := range map[string]string{"index.py": code, "harness.py": loggingRoleHarness} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-I", filepath.Join(dir, "harness.py"), filepath.Join(dir, "index.py"))
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	var out []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("harness output %q: %v", stdout.String(), err)
	}
	if len(out) != len(cases) {
		t.Fatalf("%d results for %d cases", len(out), len(cases))
	}
	return out
}

const (
	stackRole = "arn:aws:iam::123456789012:role/stack-ApiGatewayLoggingRoleResource-ABC"
	otherRole = "arn:aws:iam::123456789012:role/org-apigateway-logs"
	// The patch that sets the stack's role, as the code must send it.
	setStackRole = `update_account {"patchOperations": [{"op": "replace", "path": "/cloudwatchRoleArn", "value": "` + stackRole + `"}]}`
)

// TestLoggingRoleIsSetOnlyWhenNoneIsSet checks the decision at the heart
// of auto mode: the stack's role is set only when the account has none;
// a role already set (the account's, its organisation's, another
// stack's) is left as it is; a Delete never touches the account (other
// APIs may rely on the setting); a role IAM has not propagated yet
// (API Gateway answers BadRequestException) is tried again a few times,
// and any other error is not.
func TestLoggingRoleIsSetOnlyWhenNoneIsSet(t *testing.T) {
	type want struct {
		outcome []any // [outcome, role in the account] or nil
		err     string
		calls   []any
		sleeps  int
	}
	none := []any{"get_account"}
	cases := []struct {
		name, request string
		current       any
		patchErrors   []string
		getError      string
		want          want
	}{
		{"create without a role", "Create", nil, nil, "", want{[]any{"set", stackRole}, "", []any{"get_account", setStackRole}, 0}},
		{"create with an empty role", "Create", "", nil, "", want{[]any{"set", stackRole}, "", []any{"get_account", setStackRole}, 0}},
		{"create with another role", "Create", otherRole, nil, "", want{[]any{"found", otherRole}, "", none, 0}},
		{"create with the stack's role", "Create", stackRole, nil, "", want{[]any{"found", stackRole}, "", none, 0}},
		{"update without a role", "Update", nil, nil, "", want{[]any{"set", stackRole}, "", []any{"get_account", setStackRole}, 0}},
		{"update with another role", "Update", otherRole, nil, "", want{[]any{"found", otherRole}, "", none, 0}},
		{"delete", "Delete", stackRole, nil, "", want{[]any{"left", ""}, "", []any{}, 0}},
		{"delete without a role", "Delete", nil, nil, "", want{[]any{"left", ""}, "", []any{}, 0}},
		{"a role not yet propagated", "Create", nil, []string{"BadRequestException", "BadRequestException"}, "", want{[]any{"set", stackRole}, "", []any{"get_account", setStackRole, setStackRole, setStackRole}, 2}},
		{"a role never usable", "Create", nil, slices.Repeat([]string{"BadRequestException"}, 20), "", want{nil, "APIError", nil, -1}},
		{"no permission to set", "Create", nil, []string{"AccessDeniedException"}, "", want{nil, "APIError", []any{"get_account", setStackRole}, 0}},
		{"no permission to read", "Create", nil, nil, "AccessDeniedException", want{nil, "APIError", none, 0}},
	}
	var in []map[string]any
	for _, tc := range cases {
		in = append(in, map[string]any{"name": tc.name, "request": tc.request, "roleArn": stackRole, "current": tc.current, "patchErrors": tc.patchErrors, "getError": tc.getError})
	}
	out := runLoggingRoleCode(t, in)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := out[i]
			if tc.want.err != "" {
				if e, _ := got["error"].(string); !strings.HasPrefix(e, tc.want.err) {
					t.Errorf("error %v, want %s", got["error"], tc.want.err)
				}
			} else if jsonOf(t, got["outcome"]) != jsonOf(t, tc.want.outcome) || got["error"] != nil {
				t.Errorf("outcome %v (error %v), want %v", got["outcome"], got["error"], tc.want.outcome)
			}
			calls := asList(got["calls"])
			if tc.want.calls != nil && jsonOf(t, calls) != jsonOf(t, tc.want.calls) {
				t.Errorf("calls\n  %v\nwant\n  %v", calls, tc.want.calls)
			}
			sleeps := len(asList(got["sleeps"]))
			switch {
			case tc.want.sleeps >= 0 && sleeps != tc.want.sleeps:
				t.Errorf("%d waits, want %d", sleeps, tc.want.sleeps)
			case tc.want.sleeps < 0 && (sleeps == 0 || sleeps > 10):
				t.Errorf("%d waits for a role that never becomes usable, want a few", sleeps)
			}
			if tc.want.sleeps < 0 && len(calls) != sleeps+2 {
				t.Errorf("%d calls after %d waits, want a patch after each", len(calls), sleeps)
			}
		})
	}
}

// TestLoggingRoleHandlerAlwaysResponds checks the handler answers
// CloudFormation exactly once whatever happens, since a custom resource
// that never answers holds the stack until it times out: success with the
// outcome (set or found) in its Data and physical id; failure with the
// error as the reason; a Delete answered without an API Gateway client;
// a failure answered before the function's timeout when a call hangs.
// Nothing it prints holds the presigned ResponseURL.
func TestLoggingRoleHandlerAlwaysResponds(t *testing.T) {
	const url = "https://cloudformation-custom-resource-response.example/x?X-Amz-Signature=SECRETSIGNATURE"
	event := func(request, physical string) map[string]any {
		e := map[string]any{
			"RequestType": request, "ResponseURL": url, "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
			"RequestId": "req-1", "LogicalResourceId": "ApiGatewayLoggingRoleIfNone", "ResourceType": "Custom::ApiGatewayLoggingRole",
			"ResourceProperties": map[string]any{"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:f", "RoleArn": stackRole},
		}
		if physical != "" {
			e["PhysicalResourceId"] = physical
		}
		return e
	}
	type send struct {
		status, physical, outcome, reason string
	}
	cases := []struct {
		name    string
		case_   map[string]any
		want    send
		clients int
	}{
		{"create sets", map[string]any{"event": event("Create", "")}, send{"SUCCESS", "set", "set", ""}, 1},
		{"create finds", map[string]any{"event": event("Create", ""), "current": otherRole}, send{"SUCCESS", "found", "found", ""}, 1},
		{"update finds", map[string]any{"event": event("Update", "old-id"), "current": otherRole}, send{"SUCCESS", "found", "found", ""}, 1},
		{"delete", map[string]any{"event": event("Delete", "old-id")}, send{"SUCCESS", "=old-id", "left", ""}, 0},
		{"delete of a failed create", map[string]any{"event": event("Delete", "failed")}, send{"SUCCESS", "=failed", "left", ""}, 0},
		{"refused", map[string]any{"event": event("Create", ""), "patchErrors": []string{"AccessDeniedException"}}, send{"FAILED", "", "", "AccessDeniedException"}, 1},
		{"no client", map[string]any{"event": event("Create", ""), "clientError": "no boto3"}, send{"FAILED", "", "", "no boto3"}, 1},
		{"malformed event", map[string]any{"event": map[string]any{"ResponseURL": url, "StackId": "s", "RequestId": "r", "LogicalResourceId": "l"}}, send{"FAILED", "", "", "RequestType"}, 0},
		{"a call that hangs", map[string]any{"event": event("Create", ""), "blockSeconds": 2.5, "remainingMs": 6600, "settleSeconds": 0.2}, send{"FAILED", "", "", "timed out"}, 1},
	}
	var in []map[string]any
	for _, tc := range cases {
		c := map[string]any{"name": tc.name}
		for k, v := range tc.case_ {
			c[k] = v
		}
		in = append(in, c)
	}
	out := runLoggingRoleCode(t, in)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := out[i]
			sends := asList(got["sends"])
			if len(sends) != 1 {
				t.Fatalf("%d responses %v, want exactly 1", len(sends), sends)
			}
			s := sends[0].(map[string]any)
			if s["status"] != tc.want.status {
				t.Errorf("status %v (reason %v), want %s", s["status"], s["reason"], tc.want.status)
			}
			physical, _ := s["physicalId"].(string)
			switch {
			case physical == "":
				t.Errorf("no physical id")
			case strings.HasPrefix(tc.want.physical, "="):
				if physical != tc.want.physical[1:] {
					t.Errorf("physical id %q, want the event's %q", physical, tc.want.physical[1:])
				}
			case !strings.Contains(physical, tc.want.physical):
				t.Errorf("physical id %q does not say %q", physical, tc.want.physical)
			}
			data, _ := s["data"].(map[string]any)
			if tc.want.outcome != "" && data["Outcome"] != tc.want.outcome {
				t.Errorf("Data %v, want Outcome %s", data, tc.want.outcome)
			}
			if reason, _ := s["reason"].(string); !strings.Contains(reason, tc.want.reason) {
				t.Errorf("reason %q, want it to say %q", reason, tc.want.reason)
			}
			if n, _ := got["clients"].(float64); int(n) != tc.clients {
				t.Errorf("%v API Gateway clients made, want %d", n, tc.clients)
			}
			if stdout, _ := got["stdout"].(string); strings.Contains(stdout, "SECRETSIGNATURE") || strings.Contains(stdout, "ResponseURL") {
				t.Errorf("the handler printed the presigned response URL:\n%s", stdout)
			}
			body, _ := got["body"].(map[string]any)
			for _, k := range []string{"Status", "Reason", "PhysicalResourceId", "StackId", "RequestId", "LogicalResourceId", "Data"} {
				if _, ok := body[k]; !ok {
					t.Errorf("response body %v has no %s", body, k)
				}
			}
			if r, _ := body["Reason"].(string); len(r) > 1024 {
				t.Errorf("response reason is %d characters; CloudFormation's response object is limited to 4 KB", len(r))
			}
			if strings.Contains(jsonOf(t, body), "SECRETSIGNATURE") {
				t.Errorf("response body holds the response URL")
			}
		})
	}
}
