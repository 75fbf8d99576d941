package wshandler_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/infra/testenv"
)

// TestRequestBudgets counts the SDK requests each message costs, as a
// deployed function would make them, against DESIGN.md's budgets.
func TestRequestBudgets(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-budget", assignment(t, "cfg-1", "sys-1", collector("col-api", "http", map[string]any{"A": "API_TOKEN"})))
	small := h.publishBlob([]byte("tiny"))
	h.publishManifest("lock-1", nil)
	conn := h.open()

	type budget struct {
		name                  string
		fn                    string // which function handles it
		event                 func() events.APIGatewayWebsocketProxyRequest
		dynamo, s3, posts, bc int // maxima; bc = bcrypt verifications
	}
	msg := func(name string, fields map[string]any) func() events.APIGatewayWebsocketProxyRequest {
		return func() events.APIGatewayWebsocketProxyRequest { return testenv.Message(t, name, conn, fields) }
	}
	budgets := []budget{
		{"authenticate", "message", msg("authenticate", map[string]any{"clientId": "sat-budget", "token": tok}), 4, 0, 1, 1},
		{"heartbeat", "message", msg("heartbeat", nil), 2, 0, 0, 0},
		{"result", "message", msg("result", map[string]any{"configId": "cfg-1", "systemId": "sys-1"}), 2, 0, 0, 0},
		{"strategy_error", "message", msg("strategy-error", nil), 1, 0, 0, 0},
		{"script_package_sync_state", "message", msg("sync-state", nil), 2, 0, 0, 0},
		{"request_script_package_manifest", "message", msg("manifest-request", map[string]any{"lockfileHash": "lock-1"}), 1, 1, 1, 0},
		{"request_script_package_blob", "message", msg("blob-request", map[string]any{"integrity": small}), 1, 1, 1, 0},
		{"request_run_secrets", "message", msg("run-secrets", map[string]any{"configId": "cfg-1", "collectorId": "col-api"}), 2, 0, 1, 0},
		{"$disconnect", "disconnect", func() events.APIGatewayWebsocketProxyRequest { return testenv.Event(t, "disconnect", conn) }, 2, 0, 0, 0},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-33s %8s %4s %6s %6s\n", "message", "DynamoDB", "S3", "posts", "bcrypt")
	for _, b := range budgets {
		calls := h.calls[b.fn]
		calls.Reset()
		posts := h.mgmt.Requests("POST")
		verifications := h.tokens.n.Load()
		ev := b.event()
		var err error
		if b.fn == "disconnect" {
			_, err = h.disconnect.WebSocket.Disconnect(ctx, ev)
		} else {
			_, err = h.message.WebSocket.Message(ctx, ev)
		}
		if err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		gotDynamo, gotS3 := calls.Count("DynamoDB"), calls.Count("S3")
		gotPosts, gotBcrypt := h.mgmt.Requests("POST")-posts, int(h.tokens.n.Load()-verifications)
		fmt.Fprintf(&table, "%-33s %8d %4d %6d %6d   %v\n", b.name, gotDynamo, gotS3, gotPosts, gotBcrypt, calls.Operations("DynamoDB"))
		if gotDynamo > b.dynamo || gotS3 > b.s3 || gotPosts != b.posts || gotBcrypt != b.bc {
			t.Errorf("%s: %d DynamoDB, %d S3, %d posts, %d bcrypt; budget %d, %d, exactly %d, exactly %d",
				b.name, gotDynamo, gotS3, gotPosts, gotBcrypt, b.dynamo, b.s3, b.posts, b.bc)
		}
	}
	h.calls["connect"].Reset()
	h.open()
	fmt.Fprintf(&table, "%-33s %8d\n", "$connect", h.calls["connect"].Count("DynamoDB"))
	if got := h.calls["connect"].Count("DynamoDB"); got != 1 {
		t.Errorf("$connect: %d DynamoDB requests, want 1", got)
	}
	t.Log(table.String())
}
