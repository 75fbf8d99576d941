package satctl_test

import (
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/infra/testenv"
)

// TestGetSaysWhenMessagesAreOverTheLimit: a satellite whose connections
// the local gateway closes with 1009, twice, for a message over 128 KB (as
// API Gateway does), is marked, and `satctl get` says what to do about it.
func TestGetSaysWhenMessagesAreOverTheLimit(t *testing.T) {
	env := testenv.New(t)
	stack, err := localstack.Start(ctx, localstack.Options{
		DynamoDBEndpoint: env.DynamoDBEndpoint, TableNames: env.TableNames, S3Endpoint: env.S3Endpoint, Bucket: env.Bucket, TelemetryBucket: env.TelemetryBucket,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	api := stack.AdminURL
	created := runJSON(t, api, "create", "--name", "Chatty", "--region", "eu-central-1")
	id := created["satellite"].(map[string]any)["satelliteId"].(string)
	tok := created["token"].(string)

	if _, out, _ := run(t, api, "", "get", id); strings.Contains(out, "WARNING") {
		t.Fatalf("a new satellite is already warned about:\n%s", out)
	}
	oversized := `{"type":"telemetry_batch","batchId":"1","kind":"logstream","payload":["` + strings.Repeat("x", 130*1024) + `"]}`
	for range 2 {
		c, _, err := websocket.Dial(ctx, simulator.SatelliteURL(stack.CoreURL), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"authenticate","clientId":"`+id+`","token":"`+tok+`"}`))
		if _, data, err := c.Read(ctx); err != nil || !strings.Contains(string(data), `"authenticated"`) {
			t.Fatalf("authenticate: %s, %v", data, err)
		}
		// The gateway closes the socket once it has read past the limit,
		// maybe before the whole message is written: the write can fail.
		werr := c.Write(ctx, websocket.MessageText, []byte(oversized))
		_, _, err = c.Read(ctx)
		if werr == nil && websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("after a message over 128 KB: %v; want the socket closed with 1009", err)
		}
		testenv.Eventually(t, "the close handled", func() bool { return stack.Gateway.Connections() == 0 })
	}
	testenv.Eventually(t, "the satellite marked", func() bool {
		_, out, _ := run(t, api, "", "get", id)
		return strings.Contains(out, "WARNING")
	})
	code, out, _ := run(t, api, "", "get", id)
	want := "WARNING: messages over API Gateway's 128 KB limit: the agent's telemetry batch size must be lowered (2 connections closed with 1009"
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("satctl get:\n%s\nwant it to say %q", out, want)
	}
	v := runJSON(t, api, "get", id)
	if w, _ := v["warnings"].([]any); len(w) != 1 {
		t.Errorf("satctl get --json warnings = %v", v["warnings"])
	}
}
