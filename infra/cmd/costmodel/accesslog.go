package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// The WebSocket stage's access log writes one line per message a client
// sends and per $connect and $disconnect (not for what the backend posts
// to a connection). Its size is the stage's Format rendered with values of
// the shapes AWS documents for each $context variable.

// Event types of access log lines.
const (
	eventConnect    = "CONNECT"
	eventMessage    = "MESSAGE"
	eventDisconnect = "DISCONNECT"
)

// accessLogSample is a $context variable's value in a line of each event
// type ("" where the event has none: API Gateway writes "-").
var accessLogSample = map[string]func(event string, r *rand.Rand) string{
	"requestId":         func(_ string, r *rand.Rand) string { return randomID(r) },                               // Jn2QOG3mIAMFWzg=
	"extendedRequestId": func(_ string, r *rand.Rand) string { return randomID(r) },                               // as requestId
	"connectionId":      func(_ string, r *rand.Rand) string { return connectionIDs[r.IntN(len(connectionIDs))] }, // L0SM9cOFvHcCIhw=
	"messageId": func(e string, r *rand.Rand) string {
		if e != eventMessage {
			return ""
		}
		return randomID(r)
	},
	"requestTime": func(_ string, r *rand.Rand) string {
		return fmt.Sprintf("03/Dec/2026:16:%02d:%02d +0000", r.IntN(60), r.IntN(60)) // 03/Dec/2026:16:31:29 +0000
	},
	"requestTimeEpoch": func(_ string, r *rand.Rand) string { return fmt.Sprint(1796315489123 + r.Int64N(3600000)) },
	"connectedAt":      func(string, *rand.Rand) string { return "1796308289000" },
	"eventType":        func(e string, _ *rand.Rand) string { return e },
	"routeKey": func(e string, _ *rand.Rand) string {
		return map[string]string{eventConnect: "$connect", eventMessage: "$default", eventDisconnect: "$disconnect"}[e]
	},
	"messageDirection": func(string, *rand.Rand) string { return "IN" },
	"status":           func(string, *rand.Rand) string { return "200" },
	// Behind CloudFront the caller is an edge's address, the user agent
	// the satellite's (every event: conservative).
	"identity.sourceIp":             func(string, *rand.Rand) string { return "130.176.212.71" },
	"identity.userAgent":            func(string, *rand.Rand) string { return "checkstack-satellite/1.4.0" },
	"integrationStatus":             func(string, *rand.Rand) string { return "200" },
	"integration.status":            func(string, *rand.Rand) string { return "200" },
	"integration.integrationStatus": func(string, *rand.Rand) string { return "200" },
	"integrationLatency":            func(_ string, r *rand.Rand) string { return fmt.Sprint(8 + r.IntN(20)) },
	"integration.latency":           func(_ string, r *rand.Rand) string { return fmt.Sprint(8 + r.IntN(20)) },
	"integration.requestId":         func(string, *rand.Rand) string { return "3a5b1c2d-4e6f-4a7b-8c9d-0e1f2a3b4c5d" },
	"integration.error":             func(string, *rand.Rand) string { return "" },
	"integrationErrorMessage":       func(string, *rand.Rand) string { return "" },
	"error.message":                 func(string, *rand.Rand) string { return "" },
	"error.messageString":           func(string, *rand.Rand) string { return "" },
	"error.responseType":            func(string, *rand.Rand) string { return "" },
	"error.validationErrorString":   func(string, *rand.Rand) string { return "" },
	"apiId":                         func(string, *rand.Rand) string { return "a1b2c3d4e5" },
	"stage":                         func(string, *rand.Rand) string { return "prod" },
	"domainName":                    func(string, *rand.Rand) string { return "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com" },
}

// connectionIDs are the connections whose lines mix in a log stream.
var connectionIDs = func() []string {
	r := rand.New(rand.NewPCG(1, 1))
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = randomID(r)
	}
	return ids
}()

// randomID is an id of API Gateway's shape: 16 characters of base64,
// ending in "=" (requestId "Jn2QOG3mIAMFWzg=").
func randomID(r *rand.Rand) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, 16)
	for i := range 15 {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	b[15] = '='
	return string(b)
}

var contextVariable = regexp.MustCompile(`\$context\.[A-Za-z0-9_.]*[A-Za-z0-9_]`)

// renderAccessLog is one line of format for an event type. A variable this
// model has no sample of is an error: say its shape in accessLogSample.
func renderAccessLog(format, event string, r *rand.Rand) (string, error) {
	var missing []string
	line := contextVariable.ReplaceAllStringFunc(format, func(v string) string {
		sample, ok := accessLogSample[strings.TrimPrefix(v, "$context.")]
		if !ok {
			missing = append(missing, v)
			return v
		}
		if s := sample(event, r); s != "" {
			return s
		}
		return "-"
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("the access log format has %v, which costmodel has no sample value of (accesslog.go)", missing)
	}
	return line, nil
}

// accessLogVariant is a way the stage may log: the bytes of a line per
// event type (nil when it does not log), and the log group's retention.
type accessLogVariant struct {
	label string
	bytes map[string]float64
	group logGroup
	// compressed is the share of its bytes a line keeps compressed (gzip of
	// lines with random ids), for the stored, archived size.
	compressed float64
}

// accessLogVariants reads the WebSocket stage's AccessLogSettings, every
// variant its Fn::If branches allow, the defaults' first.
func accessLogVariants(e evaluator) ([]accessLogVariant, error) {
	stages := e.tpl.ResourcesOfType("AWS::ApiGatewayV2::Stage")
	if len(stages) != 1 {
		return nil, fmt.Errorf("want one AWS::ApiGatewayV2::Stage, found %v", stages)
	}
	settings, err := e.variants(e.tpl.Resources[stages[0]].Properties["AccessLogSettings"])
	if err != nil {
		return nil, fmt.Errorf("%s AccessLogSettings: %w", stages[0], err)
	}
	var out []accessLogVariant
	for _, s := range settings {
		m, ok := s.(map[string]any)
		if !ok || m["Format"] == nil {
			out = append(out, accessLogVariant{label: "off"})
			continue
		}
		group := ""
		if g, _, ok := samtemplate.GetAtt(m["DestinationArn"]); ok {
			group = g
		}
		lg, err := e.logGroup(group)
		if err != nil {
			return nil, fmt.Errorf("access log destination: %w", err)
		}
		formats, err := e.variants(m["Format"])
		if err != nil {
			return nil, fmt.Errorf("access log format: %w", err)
		}
		for i, f := range formats {
			format, ok := f.(string)
			if !ok {
				return nil, fmt.Errorf("access log format %v: not a string", f)
			}
			v, err := measureAccessLog(format)
			if err != nil {
				return nil, err
			}
			v.group, v.label = lg, "on"
			if len(formats) > 1 {
				v.label = fmt.Sprintf("on, format %d", i+1)
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// measureAccessLog renders a format's lines: their mean size per event
// type and how far they compress.
func measureAccessLog(format string) (accessLogVariant, error) {
	r := rand.New(rand.NewPCG(17, 2026))
	v := accessLogVariant{bytes: map[string]float64{}}
	var all bytes.Buffer
	const lines = 200
	for _, event := range []string{eventConnect, eventMessage, eventDisconnect} {
		total := 0
		for range lines {
			line, err := renderAccessLog(format, event, r)
			if err != nil {
				return v, err
			}
			total += len(line) + 1
			all.WriteString(line + "\n")
		}
		v.bytes[event] = float64(total) / lines
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(all.Bytes())
	w.Close()
	v.compressed = float64(gz.Len()) / float64(all.Len())
	return v, nil
}
