package admin_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/admin"
)

// Values a policy's !Sub resources are rendered with.
var arnRefs = map[string]string{
	"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AdminApi": "a1b2c3d4e5",
}

// invokeResources returns the resources a managed policy of the template
// allows execute-api:Invoke on, rendered with arnRefs. Any other statement
// (another action, a Deny, a condition) fails the test: the policies are
// meant to be read at a glance.
func invokeResources(t *testing.T, tpl *samtemplate.Template, logical string) []string {
	t.Helper()
	r, ok := tpl.Resources[logical]
	if !ok || r.Type != "AWS::IAM::ManagedPolicy" {
		t.Fatalf("template has no managed policy %s", logical)
	}
	doc, _ := r.Properties["PolicyDocument"].(map[string]any)
	var out []string
	for _, raw := range doc["Statement"].([]any) {
		st := raw.(map[string]any)
		if st["Effect"] != "Allow" || st["Action"] != "execute-api:Invoke" || st["Condition"] != nil || st["NotResource"] != nil {
			t.Errorf("%s: statement %v, want only Allow execute-api:Invoke on resources", logical, st)
		}
		resources, ok := st["Resource"].([]any)
		if !ok {
			resources = []any{st["Resource"]}
		}
		for _, res := range resources {
			format, ok := samtemplate.Sub(res)
			if !ok {
				t.Fatalf("%s: resource %v is not a !Sub", logical, res)
			}
			for _, ref := range samtemplate.SubRefs(format) {
				v, ok := arnRefs[ref]
				if !ok {
					t.Fatalf("%s: resource %s refers to %s", logical, format, ref)
				}
				format = strings.ReplaceAll(format, "${"+ref+"}", v)
			}
			out = append(out, format)
		}
	}
	return out
}

// globMatch reports whether an ARN matches an IAM resource pattern: "*"
// is any run of characters ("/" included), "?" any one character.
func globMatch(pattern, arn string) bool {
	var re strings.Builder
	re.WriteString("^")
	for _, c := range pattern {
		switch c {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(arn)
}

func allows(resources []string, arn string) bool {
	for _, p := range resources {
		if globMatch(p, arn) {
			return true
		}
	}
	return false
}

// requestARNs returns the execute-api resource of a request to a route
// ("METHOD /path/{param}") with each parameter set to each of values, in
// two stages.
func requestARNs(route string, values []string) []string {
	method, path, _ := strings.Cut(route, " ")
	paths := []string{path}
	for strings.Contains(paths[0], "{") {
		var next []string
		for _, p := range paths {
			start, end := strings.Index(p, "{"), strings.Index(p, "}")
			for _, v := range values {
				next = append(next, p[:start]+v+p[end+1:])
			}
		}
		paths = next
	}
	var arns []string
	for _, stage := range []string{"$default", "prod"} {
		for _, p := range paths {
			arns = append(arns, "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/"+stage+"/"+method+p)
		}
	}
	return arns
}

// TestAccessPoliciesFollowTheRoutes holds the shipped operator policies to
// the admin API's routes (admin.Routes, which the template's are checked
// against): read-only may call every GET route and nothing else (no change,
// no token minted), whatever a path parameter holds; the manager may call
// every route. Then it calls every route read-only may call, through the
// handler, and finds no secret in any answer.
func TestAccessPoliciesFollowTheRoutes(t *testing.T) {
	tpl := testenv.Template(t)
	readOnly := invokeResources(t, tpl, "AdminReadOnlyPolicy")
	manager := invokeResources(t, tpl, "AdminManagerPolicy")
	// A path parameter may be anything one segment holds, a method's
	// name or another route's segment among them.
	values := []string{"3f6c1a52-9d1e-4c1b-8a51-0c2f3b4d5e6f", "GET", "satellites", "online", "token", "x"}
	var gets []string
	for _, route := range admin.Routes {
		get := strings.HasPrefix(route, "GET ")
		if get {
			gets = append(gets, route)
		}
		for _, arn := range requestARNs(route, values) {
			if got := allows(readOnly, arn); got != get {
				t.Errorf("read-only allows %s: %v, want %v (%s)", arn, got, get, route)
			}
			if !allows(manager, arn) {
				t.Errorf("manager does not allow %s (%s)", arn, route)
			}
		}
	}
	// Read-only grants nothing beyond the GET routes: each resource is one.
	for _, p := range readOnly {
		matched := false
		for _, route := range gets {
			matched = matched || allows([]string{p}, requestARNs(route, values[:1])[0])
		}
		if !matched {
			t.Errorf("read-only resource %s is no GET route", p)
		}
	}
	for _, minting := range []string{"POST /satellites", "POST /satellites/{satelliteId}/token"} {
		for _, arn := range requestARNs(minting, values) {
			if allows(readOnly, arn) {
				t.Errorf("read-only may mint a token: %s", arn)
			}
		}
	}
	for output, policy := range map[string]string{"AdminReadOnlyPolicyArn": "AdminReadOnlyPolicy", "AdminManagerPolicyArn": "AdminManagerPolicy"} {
		out, _ := tpl.Outputs[output].(map[string]any)
		if ref, _ := samtemplate.Ref(out["Value"]); ref != policy {
			t.Errorf("output %s = %v, want the ARN of %s", output, out, policy)
		}
	}

	// What read-only can read shows no secret: not a token (create and
	// rotate mint them), not its hash, not a bound secret's value.
	h := newHarness(t)
	id, first := h.create("Watched")
	p := map[string]string{"satelliteId": id}
	h.connect(id, first)
	_, rotated := h.call("POST", "/satellites/{satelliteId}/token", p, nil, nil)
	second, _ := rotated["token"].(string)
	if code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": "scrape"}, nil,
		map[string]any{"payload": map[string]any{"targets": []any{}}, "secrets": map[string]any{"node": map[string]any{"bearerToken": "${{ secrets.NODE_TOKEN }}"}}}); code != 200 {
		t.Fatalf("capability config: %d %v", code, out)
	}
	code, out := h.call("PUT", "/sandbox-policy", nil, nil, map[string]any{"network": map[string]any{"mode": "deny"}})
	job := h.fanout(code, out)
	params := map[string]string{"satelliteId": id, "jobId": job["jobId"].(string)}
	query := map[string]string{"configId": "c", "systemId": "s", "satelliteId": id}
	for _, route := range gets {
		method, path, _ := strings.Cut(route, " ")
		code, out := h.call(method, path, params, query, nil)
		if code >= 500 {
			t.Errorf("%s: %d %v", route, code, out)
		}
		body, _ := json.Marshal(out)
		for _, secret := range []string{first, second, "$2a$", "tokenHash"} {
			if secret != "" && strings.Contains(string(body), secret) {
				t.Errorf("%s answers %q: %s", route, secret, body)
			}
		}
	}
	if second == "" || !strings.HasPrefix(first, "csat_") {
		t.Errorf("tokens %q, %q: the check looked for nothing", first, second)
	}
}
