package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

var requestSeq atomic.Int64

// Event loads events/<name>.json (an API Gateway WebSocket proxy event) and
// sets its connection id. Each loaded event gets a fresh requestId and
// messageId, as API Gateway gives each frame.
func Event(tb testing.TB, name, connectionID string) events.APIGatewayWebsocketProxyRequest {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(tb), "events", name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	var ev events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		tb.Fatalf("events/%s.json: %v", name, err)
	}
	ev.RequestContext.ConnectionID = connectionID
	n := requestSeq.Add(1)
	ev.RequestContext.RequestID = fmt.Sprintf("req-%06d=", n)
	ev.RequestContext.ExtendedRequestID = ev.RequestContext.RequestID
	if ev.RequestContext.EventType == "MESSAGE" {
		ev.RequestContext.MessageID = fmt.Sprintf("msg-%06d=", n)
	}
	return ev
}

// Absent removes a field from a message body in Message.
var Absent = &struct{ absent bool }{true}

// Message loads events/message-<name>.json and overrides fields of its body
// (a nil value sets JSON null, Absent removes the field).
func Message(tb testing.TB, name, connectionID string, fields map[string]any) events.APIGatewayWebsocketProxyRequest {
	tb.Helper()
	ev := Event(tb, "message-"+name, connectionID)
	var body map[string]any
	if err := json.Unmarshal([]byte(ev.Body), &body); err != nil {
		tb.Fatalf("events/message-%s.json body: %v", name, err)
	}
	for k, v := range fields {
		if v == Absent {
			delete(body, k)
			continue
		}
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	ev.Body = string(b)
	return ev
}

// Raw returns a $default event carrying body exactly as given.
func Raw(tb testing.TB, connectionID, body string) events.APIGatewayWebsocketProxyRequest {
	tb.Helper()
	ev := Event(tb, "message-heartbeat", connectionID)
	ev.Body = body
	return ev
}
