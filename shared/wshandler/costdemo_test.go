package wshandler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/resultsfeed"
)

// demoFigures measures, on a harness of its own, what the cost model's
// scenario has that TestRequestBudgets' satellite does not: the demo
// satellite's check runs in two environments, so every result carries an
// environmentId (result_in_environment: the Results table has no index, so
// it writes nothing more than a result without one); a stock agent's telemetry, one logstream batch
// of about 8 KB (telemetry_logstream_8k); and what the tables store for
// such a satellite (storage.json: every item of every table, as the sizes
// of its attributes, from which the cost model counts items, index entries
// and their overhead by the template's projections).
func demoFigures(t *testing.T, figures map[string]*testenv.CostFigure) {
	t.Helper()
	h := newHarness(t)
	tok := h.satellite("sat-demo", withEnvironments(t, "cfg-demo", "sys-web", "prod", "stage"))
	conn := h.authenticateWith("sat-demo", tok, map[string]any{"capabilities": []string{"scripts", "scrape", "telemetry"}})
	h.send(testenv.Message(t, "heartbeat", conn, nil))
	cold := h.build("message-cold", func(c *app.Config, _ *app.Options) { c.BindingCacheTTL = 0 })

	runs := 0
	result := func() events.APIGatewayWebsocketProxyRequest {
		runs++
		return testenv.Message(t, "result", conn, map[string]any{
			"configId": "cfg-demo", "systemId": "sys-web", "environmentId": []string{"prod", "stage"}[runs%2],
		})
	}
	figures["result_in_environment"] = measureFrame(t, h, cold, result)
	if f := figures["result_in_environment"]; f.IndexWriteUnits != 0 || f.ColdIndexWriteUnits != 0 || f.WriteUnits != 1 {
		t.Errorf("a result in an environment wrote %.1f units, %.1f of them on indexes (%+v); want 1 on the table alone", f.WriteUnits, f.IndexWriteUnits, f)
	}
	stored := testenv.ScanAll(t, h.env.DB, h.env.Tables.Results)
	if len(stored) == 0 {
		t.Fatal("no result stored")
	}
	entry, err := json.Marshal(resultsfeed.EntryOf(dynamo.ResultFromItem(stored[0])))
	if err != nil {
		t.Fatal(err)
	}
	figures["result_in_environment"].ItemBytes, figures["result_in_environment"].FeedEntryBytes = testenv.ItemSize(stored[0]), len(entry)

	payload := logstreamPayload(8 << 10)
	batch := 0
	telemetry := func() events.APIGatewayWebsocketProxyRequest {
		batch++
		return testenv.Message(t, "telemetry-batch", conn, map[string]any{"batchId": batch, "kind": "logstream", "payload": payload})
	}
	f := measureFrame(t, h, cold, telemetry)
	if f.S3Puts != 1 {
		t.Errorf("a telemetry batch wrote %d objects, want 1", f.S3Puts)
	}
	f.ObjectBytes = largestObject(t, h.env)
	figures["telemetry_logstream_8k"] = f

	testenv.WriteFigures(t, "storage.json", storedItems(t, h.env))
	reconnectCPU(t, h, tok, figures)
}

// reconnectCPU replaces the one-run CPU figures of $connect, authenticate
// and $disconnect (each happens once a connection) with the mean of ten
// reconnects of the demo satellite.
func reconnectCPU(t *testing.T, h *harness, tok string, figures map[string]*testenv.CostFigure) {
	t.Helper()
	const cycles = 10
	var connect, authenticate, disconnect float64
	for range cycles {
		var id string
		connect += cpuPerRun(1, func() { id = h.open() })
		authenticate += cpuPerRun(1, func() {
			h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-demo", "token": tok}))
		})
		disconnect += cpuPerRun(1, func() { h.close(id) })
	}
	for name, cpu := range map[string]float64{"$connect": connect, "authenticate": authenticate, "$disconnect": disconnect} {
		figures[name].CPUMs, figures[name].ColdCPUMs = cpu/cycles, cpu/cycles
	}
}

// measureFrame handles frames from next on a cold instance (no binding
// cached) and on the warm one, as TestRequestBudgets measures its frames.
func measureFrame(t *testing.T, h *harness, cold *app.App, next func() events.APIGatewayWebsocketProxyRequest) *testenv.CostFigure {
	t.Helper()
	handle := func(a *app.App, ev events.APIGatewayWebsocketProxyRequest) error {
		resp, err := a.WebSocket.Message(ctx, ev)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	f := &testenv.CostFigure{}
	coldCalls, warmCalls := h.calls["message-cold"], h.calls["message"]
	coldCalls.Reset()
	ev := next()
	f.FrameBytes = len(ev.Body)
	if err := handle(cold, ev); err != nil {
		t.Fatal(err)
	}
	units := coldCalls.Capacity()
	f.ColdReadUnits, f.ColdWriteUnits, f.ColdIndexWriteUnits = units.Read, units.Write, units.IndexWrite
	f.ColdDynamoDB, f.S3 = coldCalls.Count("DynamoDB"), s3Requests(coldCalls)

	warmCalls.Reset()
	posts, logged := h.mgmt.Requests("POST"), len(h.logs.String())
	if err := handle(h.message, next()); err != nil {
		t.Fatal(err)
	}
	units = warmCalls.Capacity()
	f.ReadUnits, f.WriteUnits, f.IndexReadUnits, f.IndexWriteUnits = units.Read, units.Write, units.IndexRead, units.IndexWrite
	f.DynamoDB, f.Posts = warmCalls.Count("DynamoDB"), h.mgmt.Requests("POST")-posts
	f.LogBytes, f.LogLines = loggedAtInfo(h.logs.String()[logged:])
	for _, op := range warmCalls.Operations("S3") {
		if op == "PutObject" {
			f.S3Puts++
		}
	}
	const runs = 25
	f.CPUMs = cpuPerRun(1, func() {
		f.DurationMs = testenv.MedianMs(t, runs, func() error { return handle(h.message, next()) })
	}) / runs
	f.ColdCPUMs = cpuPerRun(runs, func() {
		if err := handle(cold, next()); err != nil {
			t.Fatal(err)
		}
	})
	return f
}

// logstreamPayload is a logstream batch's payload of about n bytes of
// JSON: an application's log lines, as a stock agent ships them.
func logstreamPayload(n int) []any {
	var lines []any
	size := 2
	for i := 0; size < n; i++ {
		at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * 700 * time.Millisecond)
		line := map[string]any{
			"stream": "app",
			"line":   fmt.Sprintf("%s INFO  http GET /api/orders/%06d 200 %d ms user=u-%04d", at.Format(time.RFC3339Nano), 100000+i*37, 12+i%40, i%97),
			"ts":     at.Format(time.RFC3339Nano),
		}
		b, _ := json.Marshal(line)
		size += len(b) + 1
		lines = append(lines, line)
	}
	return lines
}

// largestObject is the size of the largest object in the telemetry
// bucket: a stored batch, as the store writes it.
func largestObject(t *testing.T, env *testenv.Env) int {
	t.Helper()
	out, err := env.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(env.TelemetryBucket)})
	if err != nil {
		t.Fatal(err)
	}
	largest := 0
	for _, o := range out.Contents {
		largest = max(largest, int(aws.ToInt64(o.Size)))
	}
	if largest == 0 {
		t.Fatal("no telemetry object stored")
	}
	return largest
}

// storedItems is every item of every table, by the table's logical id, as
// the sizes DynamoDB counts for each attribute (name and value).
func storedItems(t *testing.T, env *testenv.Env) map[string][]map[string]int {
	t.Helper()
	out := map[string][]map[string]int{}
	for logical, name := range env.TableNames {
		items := []map[string]int{}
		for _, it := range testenv.ScanAll(t, env.DB, name) {
			sizes := make(map[string]int, len(it))
			for attr, v := range it {
				sizes[attr] = testenv.ItemSize(map[string]types.AttributeValue{attr: v})
			}
			items = append(items, sizes)
		}
		out[logical] = items
	}
	if len(out["SatellitesTable"]) == 0 || !strings.Contains(fmt.Sprint(out["ResultsTable"]), "environmentId") {
		t.Errorf("stored items %v: want the demo satellite's and its results in environments", out)
	}
	return out
}
