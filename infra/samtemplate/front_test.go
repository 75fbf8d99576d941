package samtemplate_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// TestSatelliteEndpointIsANestedStackGivenTheAPI checks the front is the
// nested stack, created only where CloudFront Functions exist, and handed
// the WebSocket API, its stage and the domain parameters.
func TestSatelliteEndpointIsANestedStackGivenTheAPI(t *testing.T) {
	tpl, root := load(t)
	stack := tpl.Resources["SatelliteEndpoint"]
	if stack.Type != "AWS::CloudFormation::Stack" || stack.Condition != "HasSatelliteFront" {
		t.Fatalf("SatelliteEndpoint = %s (condition %q)", stack.Type, stack.Condition)
	}
	url, _ := stack.Properties["TemplateURL"].(string)
	nested, err := samtemplate.Load(filepath.Join(root, url))
	if err != nil {
		t.Fatalf("nested template %q: %v", url, err)
	}
	given, _ := stack.Properties["Parameters"].(map[string]any)
	if ref, _ := samtemplate.Ref(given["WebSocketApiId"]); ref != "WebSocketApi" {
		t.Errorf("WebSocketApiId = %v", given["WebSocketApiId"])
	}
	if ref, _ := samtemplate.Ref(given["StageName"]); ref != "StageName" {
		t.Errorf("StageName = %v", given["StageName"])
	}
	for name := range given {
		if _, ok := nested.Parameters[name]; !ok {
			t.Errorf("passes %s, which the nested template does not declare", name)
		}
	}
	for name, p := range nested.Parameters {
		if _, ok := given[name]; !ok && p.Default == nil {
			t.Errorf("the nested template's %s has no default and is not passed", name)
		}
	}
	if got := tpl.Conditions["HasSatelliteFront"]; !strings.Contains(jsonOf(t, got), `"AWS::Partition"`) {
		t.Errorf("HasSatelliteFront = %s, want it to test the partition", jsonOf(t, got))
	}
}

// TestTheFrontIsWhatAWSSampleProves checks the distribution's shape: the
// execute-api origin under /{stage}, HTTPS only without a redirect,
// caching off, a viewer-request function, and a policy that forwards the
// WebSocket handshake and the viewer's address but never Host.
func TestTheFrontIsWhatAWSSampleProves(t *testing.T) {
	_, root := load(t)
	nested, err := samtemplate.Load(filepath.Join(root, "infra/templates/satellite-endpoint.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := nested.Resources["SatelliteDistribution"].Properties["DistributionConfig"].(map[string]any)
	origin := cfg["Origins"].([]any)[0].(map[string]any)
	if d, _ := samtemplate.Sub(origin["DomainName"]); d != "${WebSocketApiId}.execute-api.${AWS::Region}.${AWS::URLSuffix}" {
		t.Errorf("origin domain %q", d)
	}
	if p, _ := samtemplate.Sub(origin["OriginPath"]); p != "/${StageName}" {
		t.Errorf("origin path %q", p)
	}
	custom := origin["CustomOriginConfig"].(map[string]any)
	if custom["OriginProtocolPolicy"] != "https-only" {
		t.Errorf("origin protocol %v", custom["OriginProtocolPolicy"])
	}
	behavior := cfg["DefaultCacheBehavior"].(map[string]any)
	if behavior["ViewerProtocolPolicy"] != "https-only" {
		t.Errorf("viewer protocol %v, want https-only (a satellite follows no redirect)", behavior["ViewerProtocolPolicy"])
	}
	if behavior["CachePolicyId"] != "4135ea2d-6df8-44a3-9df3-4b5a84be39ad" {
		t.Errorf("cache policy %v, want CachingDisabled", behavior["CachePolicyId"])
	}
	if cfg["IPV6Enabled"] != true {
		t.Errorf("IPv6 is off, but the AAAA record needs it")
	}
	policy := nested.Resources["SatelliteOriginRequestPolicy"].Properties["OriginRequestPolicyConfig"].(map[string]any)
	headers := policy["HeadersConfig"].(map[string]any)
	var names []string
	for _, h := range headers["Headers"].([]any) {
		names = append(names, strings.ToLower(h.(string)))
	}
	for _, want := range []string{"sec-websocket-key", "sec-websocket-version", "cloudfront-viewer-address"} {
		if !slices.Contains(names, want) {
			t.Errorf("origin request policy does not forward %s", want)
		}
	}
	if headers["HeaderBehavior"] != "whitelist" || slices.Contains(names, "host") {
		t.Errorf("origin request policy %v %v may forward Host", headers["HeaderBehavior"], names)
	}
	for _, rec := range []string{"SatelliteDomainRecordA", "SatelliteDomainRecordAAAA"} {
		target := nested.Resources[rec].Properties["AliasTarget"].(map[string]any)
		if target["HostedZoneId"] != "Z2FDTNDATAQYW2" || nested.Resources[rec].Condition != "HasDNSRecords" {
			t.Errorf("%s = %+v", rec, nested.Resources[rec])
		}
	}
}

func TestOutputsGiveTheCoreURL(t *testing.T) {
	tpl, _ := load(t)
	out := jsonOf(t, tpl.Outputs["SatelliteCoreURL"])
	if !strings.Contains(out, `"SatelliteEndpoint","Outputs.CoreURL"`) {
		t.Errorf("SatelliteCoreURL = %s, want the nested stack's CoreURL", out)
	}
	_, root := load(t)
	nested, err := samtemplate.Load(filepath.Join(root, "infra/templates/satellite-endpoint.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	core := jsonOf(t, nested.Outputs["CoreURL"])
	for _, want := range []string{`https://${DomainName}`, `https://${SatelliteDistribution.DomainName}`} {
		if !strings.Contains(core, want) {
			t.Errorf("CoreURL = %s, want %s in it", core, want)
		}
	}
}

// TestWithDefaultsChangesOnlyDefaults renders a deployment mode.
func TestWithDefaultsChangesOnlyDefaults(t *testing.T) {
	_, root := load(t)
	src, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := samtemplate.WithDefaults(src, map[string]string{"SatelliteDomainName": "s.example.com", "StageName": "live"})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := samtemplate.Parse(src)
	after, err := samtemplate.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if after.Parameters["SatelliteDomainName"].Default != "s.example.com" || after.Parameters["StageName"].Default != "live" {
		t.Errorf("defaults = %v, %v", after.Parameters["SatelliteDomainName"].Default, after.Parameters["StageName"].Default)
	}
	after.Parameters["SatelliteDomainName"], after.Parameters["StageName"] = before.Parameters["SatelliteDomainName"], before.Parameters["StageName"]
	if jsonOf(t, before) != jsonOf(t, after) {
		t.Errorf("rendering changed more than the defaults")
	}
	if _, err := samtemplate.WithDefaults(src, map[string]string{"NoSuchParameter": "x"}); err == nil {
		t.Errorf("an undeclared parameter was accepted")
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
