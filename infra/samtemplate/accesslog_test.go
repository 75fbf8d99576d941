package samtemplate_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// previousWebSocketAccessLogFormat is the WebSocket stage's access-log
// format before it was made compact (one JSON object of long keys, the
// time as text, the message id, the peer's address and user agent).
const previousWebSocketAccessLogFormat = `{"requestId":"$context.requestId","time":"$context.requestTime","eventType":"$context.eventType","routeKey":"$context.routeKey","connectionId":"$context.connectionId","messageId":"$context.messageId","status":"$context.status","sourceIp":"$context.identity.sourceIp","userAgent":"$context.identity.userAgent","integrationStatus":"$context.integrationStatus","integrationLatency":"$context.integrationLatency","error":"$context.error.message","integrationError":"$context.integration.error"}`

// TestBothAPIsWriteAccessLogs checks the WebSocket stage and the admin API
// log every request to a log group with retention, in JSON: the admin API
// with the caller's address, the WebSocket stage (WebSocketAccessLogs, on
// by default) with what tells how each connect, message and disconnect of
// a connection ended.
func TestBothAPIsWriteAccessLogs(t *testing.T) {
	tpl, _ := load(t)
	d := deploy(t, tpl, nil)
	if p := tpl.Parameters["WebSocketAccessLogs"]; p.Default != "ON" || !slices.Equal(p.AllowedValues, []any{"ON", "OFF"}) {
		t.Errorf("WebSocketAccessLogs default %v, allowed %v; want ON of ON, OFF", p.Default, p.AllowedValues)
	}
	stage := d.pick(t, tpl.Resources["Stage"].Properties).(map[string]any)
	for name, tc := range map[string]struct {
		settings any
		context  map[string]string
		fields   []string
	}{
		"WebSocket stage": {stage["AccessLogSettings"], samtemplate.SampleWebSocketContext, []string{
			"requestId", "requestTimeEpoch", "routeKey", "connectionId", "status",
			"integrationStatus", "integrationLatency", "error.message", "integration.error",
		}},
		"admin API": {tpl.Resources["AdminApi"].Properties["AccessLogSettings"], nil, []string{"requestId", "identity.sourceIp", "status"}},
	} {
		s, _ := tc.settings.(map[string]any)
		group, attr, _ := samtemplate.GetAtt(s["DestinationArn"])
		if attr != "Arn" || tpl.Resources[group].Type != "AWS::Logs::LogGroup" || tpl.Resources[group].Properties["RetentionInDays"] == nil || !d.exists(t, group) {
			t.Errorf("%s access logs go to %v, want a log group of this stack with retention", name, s["DestinationArn"])
		}
		format, _ := s["Format"].(string)
		var line map[string]any
		if err := json.Unmarshal([]byte(samtemplate.RenderAccessLog(format, tc.context)), &line); err != nil {
			t.Errorf("%s access log line is not a JSON object: %v (format %s)", name, err, format)
		}
		for _, v := range tc.fields {
			if !strings.Contains(format, "$context."+v+`"`) && !strings.Contains(format, "$context."+v+",") {
				t.Errorf("%s access log does not record $context.%s", name, v)
			}
		}
	}
	// WebSocket logging needs the account's API Gateway CloudWatch role,
	// which the stack sets (auto: when none is set; create: whatever is
	// set) before the stage (TestApiGatewayLoggingRoleModes).
	deps := tpl.Resources["Stage"].DependsOn.([]any)
	if !slices.Contains(deps, any("ApiGatewayAccountSettingsReady")) {
		t.Errorf("stage does not wait for the account's API Gateway logging role: DependsOn %v", deps)
	}
	account := tpl.Resources["ApiGatewayAccountSettings"]
	if r, _, _ := samtemplate.GetAtt(account.Properties["CloudWatchRoleArn"]); tpl.Resources[r].Type != "AWS::IAM::Role" {
		t.Errorf("account settings role = %v", account.Properties["CloudWatchRoleArn"])
	}
}

// TestWebSocketAccessLogsCanBeTurnedOff checks WebSocketAccessLogs=OFF
// leaves the stage without access-log settings, creates no log group for
// them, and, whatever ApiGatewayLoggingRole says, touches nothing of the
// account's API Gateway logging role, which only the access logs need.
func TestWebSocketAccessLogsCanBeTurnedOff(t *testing.T) {
	tpl, _ := load(t)
	for _, role := range tpl.Parameters["ApiGatewayLoggingRole"].AllowedValues {
		d := deploy(t, tpl, map[string]string{"WebSocketAccessLogs": "OFF", "ApiGatewayLoggingRole": role.(string)})
		stage := d.pick(t, tpl.Resources["Stage"].Properties).(map[string]any)
		if s, ok := stage["AccessLogSettings"]; ok {
			t.Errorf("ApiGatewayLoggingRole %s: the stage logs %v with access logs off", role, s)
		}
		if line, err := d.WebSocketAccessLogLine(); err != nil || line != "" {
			t.Errorf("access log line %q (%v), want none", line, err)
		}
		for id, r := range tpl.Resources {
			touchesAccount := r.Type == "AWS::ApiGateway::Account" || strings.HasPrefix(id, "ApiGatewayLoggingRole")
			if (id == "WebSocketAccessLogGroup" || touchesAccount) && d.exists(t, id) {
				t.Errorf("ApiGatewayLoggingRole %s: %s exists with access logs off", role, id)
			}
		}
		// The stage still deploys: what it waits for exists.
		d.dependencies(t, "Stage")
	}
}

// TestWebSocketAccessLogLineIsCompact renders a heartbeat's access-log line
// (samtemplate.SampleWebSocketContext) in the previous format and the
// template's: every message of every satellite writes one, so its length
// is most of what the access log costs (CloudWatch Logs ingestion, per
// GB). The figures are reported in docs/OPERATIONS.md ("Access logs").
func TestWebSocketAccessLogLineIsCompact(t *testing.T) {
	tpl, _ := load(t)
	line, err := tpl.WebSocketAccessLogLine()
	if err != nil {
		t.Fatal(err)
	}
	previous := samtemplate.RenderAccessLog(previousWebSocketAccessLogFormat, samtemplate.SampleWebSocketContext)
	t.Logf("previous format: %d bytes: %s", len(previous), previous)
	t.Logf("template format: %d bytes: %s", len(line), line)
	if got, want := len(previous), 323; got != want {
		t.Errorf("the previous format renders %d bytes, documented as %d", got, want)
	}
	if got, want := len(line), 129; got != want {
		t.Errorf("the template's format renders %d bytes, documented as %d: update docs/OPERATIONS.md", got, want)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		t.Fatalf("line %s: %v", line, err)
	}
	if ts, ok := fields["t"].(float64); !ok || ts != 1775738096000 {
		t.Errorf("t = %v, want the request's epoch milliseconds as a number", fields["t"])
	}
	keys := slices.Sorted(maps.Keys(fields))
	if want := []string{"c", "e", "id", "ie", "il", "is", "r", "s", "t"}; !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v (docs/OPERATIONS.md names them)", keys, want)
	}
}

func TestRenderAccessLogWritesADashForWhatIsMissing(t *testing.T) {
	got := samtemplate.RenderAccessLog(`{"a":"$context.identity.sourceIp","b":$context.requestTimeEpoch,"c":"$context.error.message"}`,
		map[string]string{"identity.sourceIp": "192.0.2.1", "requestTimeEpoch": "1"})
	if want := `{"a":"192.0.2.1","b":1,"c":"-"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
