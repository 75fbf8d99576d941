package wshandler_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// TestRequestBudgets counts the SDK requests each message costs, as a
// deployed function would make them, against DESIGN.md's budgets: on a cold
// instance (which reads the connection record) and on the warm instance that
// saw the satellite authenticate (which trusts its cached binding).
func TestRequestBudgets(t *testing.T) {
	h := newHarness(t)
	cold := h.build("message-cold", func(c *app.Config, _ *app.Options) { c.BindingCacheTTL = 0 })
	tok := h.satellite("sat-budget", assignment(t, "cfg-1", "sys-1", collector("col-api", "http", map[string]any{"A": "API_TOKEN"})),
		strategyWithSecrets(t, "cfg-sec", "API_TOKEN"))
	if err := h.env.Registry().SetCapabilityConfig(ctx, "sat-budget", satellite.CapabilityConfig{
		Kind: "scrape", Payload: json.RawMessage(`{"targets":[]}`), Secrets: map[string]map[string]string{"t1": {"bearerToken": "${{ secrets.API_TOKEN }}"}},
	}); err != nil {
		t.Fatal(err)
	}
	// A satellite's first capability status creates the item that holds
	// them all (one request more, once); measured is every later one.
	if err := h.env.Registry().SaveCapabilityStatus(ctx, "sat-budget", satellite.CapabilityStatus{Kind: "scrape", Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	small := h.publishBlob([]byte("tiny"))
	h.publishManifest("lock-1", nil)
	conn := h.open()

	type budget struct {
		name                  string
		fn                    string // which function handles it
		event                 func() events.APIGatewayWebsocketProxyRequest
		dynamo, s3, posts, bc int // maxima; bc = bcrypt verifications
		warmDynamo            int // maximum on the warm instance
		// Capacity units on the warm instance (or any, for authenticate
		// and $disconnect), maxima: AWS's billing figures, which the cost
		// model (make cost) multiplies out.
		rcu, wcu float64
	}
	msg := func(name string, fields map[string]any) func() events.APIGatewayWebsocketProxyRequest {
		return func() events.APIGatewayWebsocketProxyRequest { return testenv.Message(t, name, conn, fields) }
	}
	// Each telemetry batch is a new one (a resend would be re-acked).
	batchID := 0
	telemetry := func() events.APIGatewayWebsocketProxyRequest {
		batchID++
		return testenv.Message(t, "telemetry-batch", conn, map[string]any{"batchId": batchID})
	}
	// An edge (authenticate's connected, $disconnect's disconnected) costs
	// one request more than DESIGN.md's budget: the confirmation that takes
	// it out of the outbox once published, the price of publishing every
	// edge at least once.
	budgets := []budget{
		// Posts: authenticated, then one capability_config per configured
		// kind (one here).
		{"authenticate", "message", msg("authenticate", map[string]any{"clientId": "sat-budget", "token": tok, "capabilities": []string{"scrape"}}), 5, 0, 2, 1, 5, 1, 15},
		{"heartbeat", "message", msg("heartbeat", nil), 2, 0, 0, 0, 1, 0, 1},
		{"result", "message", msg("result", map[string]any{"configId": "cfg-1", "systemId": "sys-1"}), 2, 0, 0, 0, 1, 0, 4},
		{"strategy_error", "message", msg("strategy-error", nil), 1, 0, 0, 0, 0, 0, 0},
		{"script_package_sync_state", "message", msg("sync-state", nil), 2, 0, 0, 0, 1, 0, 2},
		{"request_script_package_manifest", "message", msg("manifest-request", map[string]any{"lockfileHash": "lock-1"}), 1, 1, 1, 0, 0, 0, 0},
		{"request_script_package_blob", "message", msg("blob-request", map[string]any{"integrity": small}), 1, 1, 1, 0, 0, 0, 0},
		{"request_run_secrets", "message", msg("run-secrets", map[string]any{"configId": "cfg-1", "collectorId": "col-api"}), 2, 0, 1, 0, 1, 1, 0},
		{"request_config_secrets", "message", msg("config-secrets", map[string]any{"configId": "cfg-sec"}), 2, 0, 1, 0, 1, 1, 0},
		// Claim (budget and in-flight mark, one transaction), S3 PUT, finish.
		{"telemetry_batch", "message", telemetry, 3, 1, 1, 0, 2, 0, 3},
		{"capability_status", "message", msg("capability-status", nil), 2, 0, 0, 0, 1, 0, 1},
		{"capability_secret_request", "message", msg("capability-secret", map[string]any{"payload": map[string]any{"targetId": "t1"}}), 2, 0, 1, 0, 1, 2, 0},
		// Read the record, update the satellite before deleting the record,
		// delete it, confirm the edge.
		{"$disconnect", "disconnect", func() events.APIGatewayWebsocketProxyRequest { return testenv.Event(t, "disconnect", conn) }, 4, 0, 0, 0, 4, 1, 8},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-33s %-9s %8s %4s %6s %6s %6s %6s\n", "message", "instance", "DynamoDB", "S3", "posts", "bcrypt", "RCU", "WCU")
	figures := map[string]*costFigure{}
	measure := func(b budget, instance string, handle func(events.APIGatewayWebsocketProxyRequest) error, calls *testenv.Calls) int {
		calls.Reset()
		posts := h.mgmt.Requests("POST")
		verifications := h.tokens.n.Load()
		began := time.Now()
		if err := handle(b.event()); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		took := time.Since(began)
		gotDynamo, gotS3 := calls.Count("DynamoDB"), calls.Count("S3")
		gotPosts, gotBcrypt := h.mgmt.Requests("POST")-posts, int(h.tokens.n.Load()-verifications)
		units := calls.Capacity()
		fmt.Fprintf(&table, "%-33s %-9s %8d %4d %6d %6d %6.1f %6.1f   %v\n", b.name, instance, gotDynamo, gotS3, gotPosts, gotBcrypt, units.Read, units.Write, calls.Operations("DynamoDB"))
		if instance != "cold" && (units.Read > b.rcu || units.Write > b.wcu) {
			t.Errorf("%s (%s): %.1f read and %.1f write capacity units; budget %.1f and %.1f", b.name, instance, units.Read, units.Write, b.rcu, b.wcu)
		}
		if gotDynamo > b.dynamo || gotS3 > b.s3 || gotPosts != b.posts || gotBcrypt != b.bc {
			t.Errorf("%s (%s): %d DynamoDB, %d S3, %d posts, %d bcrypt; budget %d, %d, exactly %d, exactly %d",
				b.name, instance, gotDynamo, gotS3, gotPosts, gotBcrypt, b.dynamo, b.s3, b.posts, b.bc)
		}
		f := figures[b.name]
		if f == nil {
			f = &costFigure{DurationMs: float64(took.Microseconds()) / 1000}
			figures[b.name] = f
		}
		if instance == "cold" {
			f.ColdReadUnits, f.ColdWriteUnits, f.ColdDynamoDB = units.Read, units.Write, gotDynamo
		} else {
			f.ReadUnits, f.WriteUnits, f.DynamoDB, f.S3, f.Posts = units.Read, units.Write, gotDynamo, gotS3, gotPosts
		}
		return gotDynamo
	}
	message := func(a *app.App) func(events.APIGatewayWebsocketProxyRequest) error {
		return func(ev events.APIGatewayWebsocketProxyRequest) error {
			_, err := a.WebSocket.Message(ctx, ev)
			return err
		}
	}
	for _, b := range budgets {
		switch {
		case b.fn == "disconnect":
			measure(b, "any", func(ev events.APIGatewayWebsocketProxyRequest) error {
				_, err := h.disconnect.WebSocket.Disconnect(ctx, ev)
				return err
			}, h.calls["disconnect"])
		case b.name == "authenticate":
			measure(b, "any", message(h.message), h.calls["message"])
		default:
			measure(b, "cold", message(cold), h.calls["message-cold"])
			if got := measure(b, "warm", message(h.message), h.calls["message"]); got != b.warmDynamo {
				t.Errorf("%s on the warm instance: %d DynamoDB requests, want %d (the binding is cached)", b.name, got, b.warmDynamo)
			}
			if wantFigures() {
				figures[b.name].DurationMs = medianMs(t, 25, func() error { return message(h.message)(b.event()) })
			}
		}
	}
	h.calls["connect"].Reset()
	h.open()
	fmt.Fprintf(&table, "%-33s %8d\n", "$connect", h.calls["connect"].Count("DynamoDB"))
	if got := h.calls["connect"].Count("DynamoDB"); got != 1 {
		t.Errorf("$connect: %d DynamoDB requests, want 1", got)
	}
	connect := h.calls["connect"].Capacity()
	figures["$connect"] = &costFigure{DynamoDB: 1, ReadUnits: connect.Read, WriteUnits: connect.Write}
	// The stored size of a result, for the results table's storage.
	results := testenv.ScanAll(t, h.env.DB, h.env.Tables.Results)
	if len(results) == 0 {
		t.Fatal("no result stored")
	}
	figures["result"].ItemBytes = testenv.ItemSize(results[0])
	writeFigures(t, "messages.json", figures)
	t.Log(table.String())
}
