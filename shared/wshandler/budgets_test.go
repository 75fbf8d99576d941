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
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/resultsfeed"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// withSecretsManager resolves secrets through the Secrets Manager adapter
// (behind the instance's secret cache) against sm, instead of the file.
func withSecretsManager(sm *testenv.SecretsManager) harnessOption {
	return func(c *app.Config, o *app.Options) {
		c.SecretsPrefix = secretsPrefix
		o.Secrets = nil
		o.Endpoints.SecretsManager = sm.URL
	}
}

// s3Requests counts the S3 requests recorded: a presigned URL is signed
// locally and sends none.
func s3Requests(calls *testenv.Calls) int {
	n := 0
	for _, op := range calls.Operations("S3") {
		if op != "PresignGetObject" {
			n++
		}
	}
	return n
}

// coldBindingRead is what an instance without a connection's binding
// cached reads for it: the connection record, eventually consistently.
const coldBindingRead = 0.5

// TestRequestBudgets counts the SDK requests each message costs, as a
// deployed function would make them, against DESIGN.md's budgets: on a cold
// instance (a fresh one: it reads the connection record, and its package
// and secret caches are empty) and on the warm instance that saw the
// satellite authenticate (which trusts its cached binding) and, for the
// requests it caches, answered the same request before.
func TestRequestBudgets(t *testing.T) {
	sm := testenv.NewSecretsManager(t, map[string]string{secretsPrefix + "API_TOKEN": "api-value", secretsPrefix + "DB-PASSWORD": "db-value"})
	h := newHarness(t, withSecretsManager(sm))
	tok := h.satellite("sat-budget",
		assignment(t, "cfg-1", "sys-1", collector("col-api", "http", map[string]any{"A": "API_TOKEN", "B": "DB-PASSWORD"})),
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
	large := h.publishBlob(randomBytes(t, 200<<10))
	entries := []satellite.ManifestEntry{{Name: "tiny", Version: "1.0.0", Integrity: small}, {Name: "large", Version: "1.0.0", Integrity: large}}
	lockfile := h.publishManifest(entries)
	conn := h.open()

	type counts struct{ dynamo, s3, secrets int }
	type budget struct {
		name      string
		fn        string // which function handles it
		event     func() events.APIGatewayWebsocketProxyRequest
		cold      counts // maxima on a fresh instance
		posts, bc int    // exactly; bc = bcrypt verifications
		warm      counts // exactly, on the warm instance
		// cached: the warm instance answered the same request before
		// (measured is the second).
		cached bool
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
		{"authenticate", "message", msg("authenticate", map[string]any{"clientId": "sat-budget", "token": tok, "capabilities": []string{"scrape"}}), counts{5, 0, 0}, 2, 1, counts{5, 0, 0}, false, 1, 15},
		{"heartbeat", "message", msg("heartbeat", nil), counts{2, 0, 0}, 0, 0, counts{1, 0, 0}, false, 0, 1},
		// A consistent read of the assignment authorises it (1 read unit up
		// to 4 KB), a plain put stores it (1 write unit up to 1 KB).
		{"result", "message", msg("result", map[string]any{"configId": "cfg-1", "systemId": "sys-1"}), counts{3, 0, 0}, 0, 0, counts{2, 0, 0}, false, 1, 1},
		{"strategy_error", "message", msg("strategy-error", nil), counts{1, 0, 0}, 0, 0, counts{0, 0, 0}, false, 0, 0},
		{"script_package_sync_state", "message", msg("sync-state", nil), counts{2, 0, 0}, 0, 0, counts{1, 0, 0}, false, 0, 2},
		// A manifest is one GET, then kept (its entries hash to its name).
		{"request_script_package_manifest", "message", msg("manifest-request", map[string]any{"lockfileHash": lockfile}), counts{1, 1, 0}, 1, 0, counts{0, 0, 0}, true, 0, 0},
		// A blob's size (HEAD) decides inline or URL; only an inline blob
		// is read (GET), verified and kept.
		{"request_script_package_blob", "message", msg("blob-request", map[string]any{"integrity": small}), counts{1, 2, 0}, 1, 0, counts{0, 0, 0}, true, 0, 0},
		{"request_script_package_blob (by URL)", "message", msg("blob-request", map[string]any{"integrity": large}), counts{1, 1, 0}, 1, 0, counts{0, 0, 0}, true, 0, 0},
		// Two names, one BatchGetSecretValue; kept SECRET_CACHE_SECONDS.
		{"request_run_secrets", "message", msg("run-secrets", map[string]any{"configId": "cfg-1", "collectorId": "col-api"}), counts{2, 0, 1}, 1, 0, counts{1, 0, 0}, true, 1, 0},
		{"request_config_secrets", "message", msg("config-secrets", map[string]any{"configId": "cfg-sec"}), counts{2, 0, 1}, 1, 0, counts{1, 0, 0}, true, 1, 0},
		// Read the token generation and the batch's mark (one consistent
		// BatchGetItem: 2 read units on AWS, which charges the read of the
		// absent mark too), claim (budget and in-flight mark, one
		// transaction), S3 PUT (conditional), finish.
		{"telemetry_batch", "message", telemetry, counts{4, 1, 0}, 1, 0, counts{3, 1, 0}, false, 2, 3},
		{"capability_status", "message", msg("capability-status", nil), counts{2, 0, 0}, 0, 0, counts{1, 0, 0}, false, 0, 1},
		{"capability_secret_request", "message", msg("capability-secret", map[string]any{"payload": map[string]any{"targetId": "t1"}}), counts{2, 0, 1}, 1, 0, counts{1, 0, 0}, true, 2, 0},
		// Read the record, update the satellite before deleting the record,
		// delete it, confirm the edge.
		{"$disconnect", "disconnect", func() events.APIGatewayWebsocketProxyRequest { return testenv.Event(t, "disconnect", conn) }, counts{4, 0, 0}, 0, 0, counts{4, 0, 0}, false, 1, 8},
	}
	// Runs of each frame for its median duration and mean CPU time.
	const runs = 25
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-38s %-9s %8s %4s %7s %6s %6s %6s %6s\n", "message", "instance", "DynamoDB", "S3", "secrets", "posts", "bcrypt", "RCU", "WCU")
	figures := map[string]*testenv.CostFigure{}
	measure := func(b budget, instance string, handle func(events.APIGatewayWebsocketProxyRequest) error, calls *testenv.Calls) counts {
		calls.Reset()
		posts := h.mgmt.Requests("POST")
		verifications := h.tokens.n.Load()
		logged := len(h.logs.String())
		ev := b.event()
		cpu := testenv.CPUTime()
		began := time.Now()
		if err := handle(ev); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		took := time.Since(began)
		cpuMs := float64((testenv.CPUTime() - cpu).Microseconds()) / 1000
		logBytes, logLines := loggedAtInfo(h.logs.String()[logged:])
		got := counts{calls.Count("DynamoDB"), s3Requests(calls), calls.Count("Secrets Manager")}
		gotPosts, gotBcrypt := h.mgmt.Requests("POST")-posts, int(h.tokens.n.Load()-verifications)
		units := calls.Capacity()
		fmt.Fprintf(&table, "%-38s %-9s %8d %4d %7d %6d %6d %6.1f %6.1f   %v %v\n", b.name, instance, got.dynamo, got.s3, got.secrets, gotPosts, gotBcrypt,
			units.Read, units.Write, calls.Operations("DynamoDB"), calls.Operations("S3"))
		if gotPosts != b.posts || gotBcrypt != b.bc {
			t.Errorf("%s (%s): %d posts, %d bcrypt; want exactly %d, %d", b.name, instance, gotPosts, gotBcrypt, b.posts, b.bc)
		}
		if (instance == "warm" || instance == "any") && (units.Read > b.rcu || units.Write > b.wcu) {
			t.Errorf("%s (%s): %.1f read and %.1f write capacity units; budget %.1f and %.1f", b.name, instance, units.Read, units.Write, b.rcu, b.wcu)
		}
		// A cold instance pays for the binding it lacks (the connection
		// record, read eventually consistently: 0.5 read units) and
		// nothing more in capacity.
		if instance == "cold" && (units.Read > b.rcu+coldBindingRead || units.Write > b.wcu) {
			t.Errorf("%s (cold): %.1f read and %.1f write capacity units; budget %.1f and %.1f", b.name, units.Read, units.Write, b.rcu+coldBindingRead, b.wcu)
		}
		f := figures[b.name]
		if f == nil {
			f = &testenv.CostFigure{DurationMs: float64(took.Microseconds()) / 1000, FrameBytes: len(ev.Body)}
			figures[b.name] = f
		}
		switch instance {
		case "cold":
			f.ColdReadUnits, f.ColdWriteUnits, f.ColdDynamoDB = units.Read, units.Write, got.dynamo
			f.ColdIndexWriteUnits, f.ColdCPUMs = units.IndexWrite, cpuMs
			f.S3 = got.s3 // a cold instance's cache is empty: what a fleet's first requests cost
		case "warm", "any":
			f.ReadUnits, f.WriteUnits, f.DynamoDB, f.Posts = units.Read, units.Write, got.dynamo, gotPosts
			f.IndexReadUnits, f.IndexWriteUnits, f.CPUMs = units.IndexRead, units.IndexWrite, cpuMs
			f.LogBytes, f.LogLines = logBytes, logLines
			if instance == "any" {
				f.S3, f.ColdCPUMs = got.s3, cpuMs
			}
		}
		return got
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
			cold := h.build("message-cold", func(c *app.Config, _ *app.Options) { c.BindingCacheTTL = 0 })
			got := measure(b, "cold", message(cold), h.calls["message-cold"])
			if got.dynamo > b.cold.dynamo || got.s3 > b.cold.s3 || got.secrets > b.cold.secrets {
				t.Errorf("%s on a cold instance: %+v, budget %+v", b.name, got, b.cold)
			}
			if b.cached {
				measure(b, "warm 1st", message(h.message), h.calls["message"])
			}
			if got := measure(b, "warm", message(h.message), h.calls["message"]); got != b.warm {
				t.Errorf("%s on the warm instance: %+v, want %+v (the binding, packages and secrets are cached)", b.name, got, b.warm)
			}
			if testenv.FiguresDir() != "" {
				f := figures[b.name]
				f.CPUMs = cpuPerRun(1, func() {
					f.DurationMs = testenv.MedianMs(t, runs, func() error { return message(h.message)(b.event()) })
				}) / runs
				f.ColdCPUMs = cpuPerRun(runs, func() {
					if err := message(cold)(b.event()); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
	h.calls["connect"].Reset()
	logged := len(h.logs.String())
	connectCPU := cpuPerRun(1, func() { h.open() })
	connectLog, connectLines := loggedAtInfo(h.logs.String()[logged:])
	fmt.Fprintf(&table, "%-38s %8d\n", "$connect", h.calls["connect"].Count("DynamoDB"))
	if got := h.calls["connect"].Count("DynamoDB"); got != 1 {
		t.Errorf("$connect: %d DynamoDB requests, want 1", got)
	}
	connect := h.calls["connect"].Capacity()
	figures["$connect"] = &testenv.CostFigure{DynamoDB: 1, ReadUnits: connect.Read, WriteUnits: connect.Write, IndexWriteUnits: connect.IndexWrite,
		CPUMs: connectCPU, ColdCPUMs: connectCPU, LogBytes: connectLog, LogLines: connectLines}
	// The stored size of a result, for the results table's storage.
	results := testenv.ScanAll(t, h.env.DB, h.env.Tables.Results)
	if len(results) == 0 {
		t.Fatal("no result stored")
	}
	figures["result"].ItemBytes = testenv.ItemSize(results[0])
	entry, err := json.Marshal(resultsfeed.EntryOf(dynamo.ResultFromItem(results[0])))
	if err != nil {
		t.Fatal(err)
	}
	figures["result"].FeedEntryBytes = len(entry)
	if testenv.FiguresDir() != "" {
		demoFigures(t, figures)
	}
	testenv.WriteFigures(t, "messages.json", figures)
	// The first request to Secrets Manager was the cold run secrets': both
	// of the collector's secrets in one call.
	if reqs := sm.Requests(); len(reqs) == 0 || len(reqs[0].Body["SecretIdList"].([]any)) != 2 {
		t.Errorf("Secrets Manager requests %+v, want the first to name both run secrets", reqs)
	}
	t.Log(table.String())
}
