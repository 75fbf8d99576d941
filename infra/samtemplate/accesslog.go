package samtemplate

import (
	"fmt"
	"regexp"
)

// SampleWebSocketContext is the $context of a heartbeat as the WebSocket
// stage logs it (a MESSAGE event answered by the message function in
// 13 ms, the median the cost model measures), keyed without "$context.",
// with values of the shapes AWS documents: ids of 16 characters as in the
// WebSocket API's sample events, an IPv4 address of a CloudFront edge.
// A variable it leaves out renders as "-", as API Gateway writes a value
// it does not have: a message's user agent is counted so, which makes a
// format that logs it come out shorter than it may be.
var SampleWebSocketContext = map[string]string{
	"requestId":          "Jn2QOG3mIAMFWzg=",
	"requestTime":        "09/Apr/2026:12:34:56 +0000",
	"requestTimeEpoch":   "1775738096000",
	"eventType":          "MESSAGE",
	"routeKey":           "$default",
	"connectionId":       "L0SM9cOFvHcCIhw=",
	"messageId":          "L0SNbdSKvHcCIhw=",
	"status":             "200",
	"identity.sourceIp":  "130.176.137.77",
	"integrationStatus":  "200",
	"integrationLatency": "13",
}

var contextVariable = regexp.MustCompile(`\$context\.[A-Za-z0-9_.]*[A-Za-z0-9_]`)

// RenderAccessLog returns the line API Gateway writes for an access-log
// format: every $context variable replaced by its value in context (keyed
// without "$context."), "-" for one context has no value for.
func RenderAccessLog(format string, context map[string]string) string {
	return contextVariable.ReplaceAllStringFunc(format, func(v string) string {
		if value, ok := context[v[len("$context."):]]; ok {
			return value
		}
		return "-"
	})
}

// WebSocketAccessLogFormat returns the access-log format of the
// deployment's WebSocket stage, "" when it writes no access log. It fails
// when the template does not have exactly one WebSocket stage.
func (d *Deployment) WebSocketAccessLogFormat() (string, error) {
	stages := d.tpl.ResourcesOfType("AWS::ApiGatewayV2::Stage")
	if len(stages) != 1 {
		return "", fmt.Errorf("template has %d WebSocket stages, want 1", len(stages))
	}
	props, err := d.Properties(stages[0])
	if err != nil {
		return "", err
	}
	settings, ok := props["AccessLogSettings"].(map[string]any)
	if !ok {
		return "", nil
	}
	format, ok := settings["Format"].(string)
	if !ok {
		return "", fmt.Errorf("%s: access-log Format %v is not a string", stages[0], settings["Format"])
	}
	return format, nil
}

// WebSocketAccessLogLine returns the line the deployment's WebSocket stage
// writes to its access log for a heartbeat (SampleWebSocketContext), ""
// when it writes none. Its length is what CloudWatch Logs ingests per
// message, before CloudWatch's own per-event overhead.
func (d *Deployment) WebSocketAccessLogLine() (string, error) {
	format, err := d.WebSocketAccessLogFormat()
	if err != nil || format == "" {
		return "", err
	}
	return RenderAccessLog(format, SampleWebSocketContext), nil
}

// WebSocketAccessLogLine is Deployment.WebSocketAccessLogLine with the
// template's defaults (access logs on).
func (t *Template) WebSocketAccessLogLine() (string, error) {
	d, err := t.Deploy(nil)
	if err != nil {
		return "", err
	}
	return d.WebSocketAccessLogLine()
}
