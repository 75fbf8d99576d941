package satctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/satctl"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

// run invokes the real CLI and returns its exit status and output.
func run(t *testing.T, endpoint string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := satctl.Run(ctx, append([]string{"--endpoint", endpoint}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func runJSON(t *testing.T, endpoint string, args ...string) map[string]any {
	t.Helper()
	code, out, errOut := run(t, endpoint, "", append([]string{"--json"}, args...)...)
	if code != 0 {
		t.Fatalf("satctl %v: exit %d: %s", args, code, errOut)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("satctl %v --json printed %q", args, out)
	}
	return v
}

// TestOperatorLifecycleThroughTheLocalGateway is the operator walk-through
// of docs/OPERATIONS.md (satctl), with satctl against the local stack and a simulated
// satellite on a real socket.
func TestOperatorLifecycleThroughTheLocalGateway(t *testing.T) {
	env := testenv.New(t)
	stack, err := localstack.Start(ctx, localstack.Options{
		DynamoDBEndpoint: env.DynamoDBEndpoint, TableNames: env.TableNames, S3Endpoint: env.S3Endpoint, Bucket: env.Bucket, TelemetryBucket: env.TelemetryBucket,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	api := stack.AdminURL

	created := runJSON(t, api, "create", "--name", "Lab satellite", "--region", "eu-central-1", "--tag", "site=lab")
	id := created["satellite"].(map[string]any)["satelliteId"].(string)
	tok := created["token"].(string)

	var simLog testenv.SafeBuffer
	sim := simulator.New(simulator.Config{URL: simulator.SatelliteURL(stack.CoreURL), ClientID: id, Token: tok, HeartbeatInterval: 200 * time.Millisecond,
		ResultInterval: 200 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Log: &simLog})
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(simCtx) }()
	defer stopSim()
	testenv.Eventually(t, "authenticated", func() bool { return sim.State().Authenticated })

	online := runJSON(t, api, "online")
	if ids := online["satelliteIds"].([]any); len(ids) != 1 || ids[0] != id {
		t.Errorf("online = %v", online)
	}

	// Assign a check: config_updated arrives, results follow.
	file := filepath.Join(t.TempDir(), "assignments.json")
	_ = os.WriteFile(file, []byte(`[{"configId":"cfg-lab","systemId":"sys-lab","strategyId":"http","config":{"url":"https://example.com"},"intervalSeconds":60}]`), 0o600)
	runJSON(t, api, "assign", id, "--file", file)
	testenv.Eventually(t, "config_updated and results for the new check", func() bool {
		st := sim.State()
		return st.ConfigUpdates == 1 && len(st.Assignments) == 1 && st.ResultsSent > 0
	})
	testenv.Eventually(t, "results stored", func() bool {
		r := runJSON(t, api, "results", "--config-id", "cfg-lab", "--system-id", "sys-lab")
		return len(r["results"].([]any)) > 0
	})

	// Publish packages: the simulator reconciles to ready.
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "probe.js"), []byte("export const probe = 1;\n"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "util.js"), []byte("export const util = 2;\n"), 0o600)
	published := runJSON(t, api, "publish", "probe@1.0.0="+filepath.Join(dir, "probe.js"), "util@0.3.1="+filepath.Join(dir, "util.js"))
	hash := published["lockfileHash"].(string)
	// satctl waited for the refresh: its JSON is the job as it ended.
	if refresh := published["refresh"].(map[string]any); refresh["state"] != "done" || refresh["sent"] != float64(1) || refresh["total"] != float64(1) {
		t.Errorf("publish --json refresh = %v, want the finished job", refresh)
	}
	testenv.Eventually(t, "simulator ready on the published lockfile", func() bool {
		st := sim.State()
		return st.SyncStatus == satellite.SyncReady && st.LockfileHash != nil && *st.LockfileHash == hash && len(st.Packages) == 2
	})
	testenv.Eventually(t, "sync state visible to the operator", func() bool {
		p := runJSON(t, api, "packages")
		sats := p["satellites"].([]any)
		return len(sats) == 1 && sats[0].(map[string]any)["upToDate"] == true
	})

	// Rotate the token: shutdown, and the reconnect with the old token is refused.
	runJSON(t, api, "rotate-token", id)
	select {
	case err := <-simDone:
		if err != simulator.ErrRefused {
			t.Errorf("simulator ended with %v, want its old token refused", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("simulator kept running with a rotated token")
	}
	// The old connection gets shutdown "token rotated", unless one of its
	// results (sent every 200 ms) arrived between the rotation and the
	// shutdown: that result is refused with auth_failed, as the rotation
	// revoked the connection's authority first. Either way its reconnect
	// with the old token is refused.
	st := sim.State()
	shutdownSeen := len(st.Shutdowns) == 1 && st.Shutdowns[0] == "token rotated"
	if (!shutdownSeen && len(st.Shutdowns) != 0) || st.LastAuthFailure != "Invalid client ID or token" {
		t.Errorf("simulator saw shutdowns %v, last auth failure %q", st.Shutdowns, st.LastAuthFailure)
	}

	// Delete it.
	if code, out, errOut := run(t, api, "", "delete", id); code != 0 || !strings.Contains(out, "deleted "+id) {
		t.Errorf("delete: %d %q %q", code, out, errOut)
	}
	code, _, errOut := run(t, api, "", "get", id)
	if code != 1 || !strings.Contains(errOut, "no satellite") || !strings.Contains(errOut, "404") {
		t.Errorf("get after delete: exit %d, %q; want 1 with the API's message", code, errOut)
	}
	// The local stack's event log has its satellite.removed.
	log, err := os.ReadFile(stack.EventsFile)
	if err != nil || !regexp.MustCompile(`"detailType":"satellite.removed".*"satelliteId":"`+id+`"`).Match(log) {
		t.Errorf("event log (%v):\n%s\nwant satellite.removed of %s", err, log, id)
	}
}

// TestPublishFollowsTheRefresh publishes to satellites on real sockets
// through the local stack: satctl prints the refresh's progress (sent/total)
// until every satellite was sent it; --no-wait only starts it, and
// `satctl fan-out` shows it.
func TestPublishFollowsTheRefresh(t *testing.T) {
	env := testenv.New(t)
	stack, err := localstack.Start(ctx, localstack.Options{
		DynamoDBEndpoint: env.DynamoDBEndpoint, TableNames: env.TableNames, S3Endpoint: env.S3Endpoint, Bucket: env.Bucket, TelemetryBucket: env.TelemetryBucket,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	api := stack.AdminURL
	const n = 5
	for i := range n {
		created := runJSON(t, api, "create", "--name", fmt.Sprintf("Edge %d", i), "--region", "eu-central-1")
		id := created["satellite"].(map[string]any)["satelliteId"].(string)
		c, _, err := websocket.Dial(ctx, simulator.SatelliteURL(stack.CoreURL), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		frame, _ := json.Marshal(map[string]any{"type": "authenticate", "clientId": id, "token": created["token"]})
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			t.Fatal(err)
		}
		if _, reply, err := c.Read(ctx); err != nil || !strings.Contains(string(reply), `"authenticated"`) {
			t.Fatalf("authenticate: %s %v", reply, err)
		}
		go func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
	}
	pkg := filepath.Join(t.TempDir(), "probe.js")
	_ = os.WriteFile(pkg, []byte("export const probe = 1;\n"), 0o600)

	code, out, errOut := run(t, api, "", "publish", "probe@1.0.0="+pkg)
	if code != 0 || !strings.Contains(out, "refresh job ") || !strings.Contains(out, fmt.Sprintf("sent %d/%d (0 gone, 0 failed", n, n)) ||
		!strings.Contains(out, "refresh_script_packages done in ") || !strings.Contains(out, fmt.Sprintf("sent to %d connection(s)", n)) {
		t.Errorf("publish: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = run(t, api, "", "publish", "--no-wait", "probe@1.0.1="+pkg)
	m := regexp.MustCompile(`satctl fan-out (\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil || strings.Contains(out, "sent ") {
		t.Fatalf("publish --no-wait: exit %d\n%s%s", code, out, errOut)
	}
	testenv.Eventually(t, "the job done, as satctl fan-out shows", func() bool {
		code, out, _ := run(t, api, "", "fan-out", m[1])
		return code == 0 && strings.Contains(out, ": done") && strings.Contains(out, fmt.Sprintf("sent to %d connection(s)", n))
	})
	if code, _, errOut := run(t, api, "", "fan-out", "no-such-job"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("fan-out of an unknown job: %d %q", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"get"}, {"assign", "x"}, {"publish", "nonsense"}, {"fan-out"}} {
		var out, errOut bytes.Buffer
		if code := satctl.Run(ctx, append([]string{"--endpoint", "http://127.0.0.1:1"}, args...), nil, &out, &errOut); code != 2 {
			t.Errorf("satctl %v: exit %d, want 2 (%s%s)", args, code, out.String(), errOut.String())
		}
	}
	var out bytes.Buffer
	if code := satctl.Run(ctx, []string{"--help"}, nil, &out, &out); code != 0 || !strings.Contains(out.String(), "rotate-token ID") {
		t.Errorf("--help: %d %s", code, out.String())
	}
	t.Setenv("SATCTL_ENDPOINT", "")
	var errOut bytes.Buffer
	if code := satctl.Run(ctx, []string{"list"}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "no endpoint") {
		t.Errorf("no endpoint: %d %s", code, errOut.String())
	}
}

// TestCurrentProtocolCommands drives what today's satellites add through
// satctl: the sandbox policy, a capability config, environments in results,
// telemetry, and the satellite's capabilities and statuses in get.
func TestCurrentProtocolCommands(t *testing.T) {
	env := testenv.New(t)
	stack, err := localstack.Start(ctx, localstack.Options{
		DynamoDBEndpoint: env.DynamoDBEndpoint, TableNames: env.TableNames, S3Endpoint: env.S3Endpoint, Bucket: env.Bucket, TelemetryBucket: env.TelemetryBucket,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	api := stack.AdminURL
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		_ = os.WriteFile(path, []byte(content), 0o600)
		return path
	}

	// No policy set yet: the template's default (upstream's shipped
	// profile) is in force, and get says so.
	if code, out, _ := run(t, api, "", "sandbox-policy", "get"); code != 0 || !strings.Contains(out, "DefaultSandboxPolicy") || !strings.Contains(out, `"onUnavailable": "fail"`) {
		t.Errorf("sandbox-policy get: %d %q", code, out)
	}
	if code, out, errOut := run(t, api, "", "sandbox-policy", "set", "--file", write("policy.json", `{"egress":{"allow":["example.com:443"]}}`)); code != 0 || !strings.Contains(out, `"example.com:443"`) {
		t.Errorf("sandbox-policy set: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := run(t, api, "", "sandbox-policy", "set", "--file", write("bad.json", `["allow-all"]`)); code != 1 || !strings.Contains(errOut, "JSON object") {
		t.Errorf("sandbox-policy set of a non-object: %d %q", code, errOut)
	}

	created := runJSON(t, api, "create", "--name", "Current", "--region", "eu-central-1")
	id := created["satellite"].(map[string]any)["satelliteId"].(string)
	runJSON(t, api, "assign", id, "--file", write("assign.json",
		`[{"configId":"cfg-env","systemId":"sys-env","strategyId":"http","config":{"url":"https://example.com"},"intervalSeconds":60,
		  "environments":[{"id":"prod","name":"Production"},{"id":"stage","name":"Staging"}]}]`))
	cfg := write("scrape.json", `{"payload":{"targets":[{"id":"node","url":"http://10.0.0.5:9100/metrics"}]},"secrets":{"node":{"bearerToken":"${{ secrets.SCRAPE }}"}}}`)
	if code, out, errOut := run(t, api, "", "capability", "set", id, "scrape", "--file", cfg); code != 0 || !strings.Contains(out, "node(bearerToken)") {
		t.Errorf("capability set: %d %q %q", code, out, errOut)
	}
	if err := stack.WriteSecrets(map[string]string{"SCRAPE": "scrape-token"}); err != nil {
		t.Fatal(err)
	}

	sim := simulator.New(simulator.Config{URL: simulator.SatelliteURL(stack.CoreURL), ClientID: id, Token: created["token"].(string), HeartbeatInterval: 200 * time.Millisecond,
		ResultInterval: 200 * time.Millisecond, TelemetryInterval: 100 * time.Millisecond})
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	go func() { _ = sim.Run(simCtx) }()
	testenv.Eventually(t, "results per environment, telemetry and a capability status", func() bool {
		st := sim.State()
		return st.ResultsByEnvironment["prod"] > 0 && st.ResultsByEnvironment["stage"] > 0 && st.TelemetryAccepted > 0 &&
			st.CapabilityStatusesSent > 0 && st.CapabilitySecrets["scrape/node"] == 1 && st.SandboxPolicy != nil
	})

	// The simulator has sent a capability status; the backend stores it a
	// moment later.
	testenv.Eventually(t, "the capability status stored", func() bool {
		_, out, _ := run(t, api, "", "get", id)
		return strings.Contains(out, "STATUS OF")
	})
	code, out, _ := run(t, api, "", "get", id)
	for _, want := range []string{"scrape,telemetry", "prod,stage", "node(bearerToken)", "STATUS OF"} {
		if code != 0 || !strings.Contains(strings.ReplaceAll(out, " ", ","), want) && !strings.Contains(out, want) {
			t.Errorf("get does not show %q:\n%s", want, out)
		}
	}
	testenv.Eventually(t, "prod results through satctl", func() bool {
		code, out, _ := run(t, api, "", "results", "--config-id", "cfg-env", "--system-id", "sys-env", "--environment", "prod")
		return code == 0 && strings.Contains(out, "prod") && !strings.Contains(out, "stage")
	})
	testenv.Eventually(t, "telemetry through satctl", func() bool {
		code, out, _ := run(t, api, "", "telemetry", "--satellite-id", id, "--kind", "logstream", "--since", "1h")
		return code == 0 && strings.Contains(out, "telemetry/logstream/")
	})
	if code, _, errOut := run(t, api, "", "telemetry", "--since", "last week"); code != 2 || !strings.Contains(errOut, "--since") {
		t.Errorf("telemetry --since nonsense: %d %q", code, errOut)
	}
	if code, out, _ := run(t, api, "", "capability", "delete", id, "scrape"); code != 0 || !strings.Contains(out, "deleted the scrape config") {
		t.Errorf("capability delete: %d %q", code, out)
	}
	if code, _, errOut := run(t, api, "", "capability", "delete", id, "scrape"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("capability delete again: %d %q", code, errOut)
	}
}

// TestListingCommandsFollowPages lists five satellites two at a time
// through the local stack's admin API: list and packages follow every
// page (tables and JSON), --one-page stops after one and prints the
// token that --next-token continues from, and a token the API never
// issued is refused with its message.
func TestListingCommandsFollowPages(t *testing.T) {
	env := testenv.New(t)
	stack, err := localstack.Start(ctx, localstack.Options{
		DynamoDBEndpoint: env.DynamoDBEndpoint, TableNames: env.TableNames, S3Endpoint: env.S3Endpoint, Bucket: env.Bucket, TelemetryBucket: env.TelemetryBucket,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	api := stack.AdminURL
	var ids []string
	for i := range 5 {
		created := runJSON(t, api, "create", "--name", fmt.Sprintf("Paged %d", i), "--region", "eu-central-1")
		ids = append(ids, created["satellite"].(map[string]any)["satelliteId"].(string))
	}
	slices.Sort(ids)
	listedIDs := func(out string) []string {
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && slices.Contains(ids, f[0]) {
				got = append(got, f[0])
			}
		}
		return got
	}
	jsonIDs := func(v map[string]any) []string {
		var got []string
		for _, s := range v["satellites"].([]any) {
			got = append(got, s.(map[string]any)["satelliteId"].(string))
		}
		return got
	}

	for _, command := range []string{"list", "packages"} {
		code, out, errOut := run(t, api, "", command, "--limit", "2")
		if got := listedIDs(out); code != 0 || !slices.Equal(got, ids) || strings.Contains(out, "more:") {
			t.Errorf("%s --limit 2: exit %d, listed %v, want all of %v in order\n%s%s", command, code, got, ids, out, errOut)
		}
		all := runJSON(t, api, command, "--limit", "2")
		if _, more := all["nextToken"]; more || !slices.Equal(jsonIDs(all), ids) {
			t.Errorf("%s --json --limit 2: %v", command, all)
		}
		if command == "packages" {
			if _, ok := all["entries"]; !ok {
				t.Errorf("packages --json lost the published set: %v", all)
			}
		}

		// One page at a time.
		var got []string
		token := ""
		for pages := 0; ; pages++ {
			args := []string{command, "--limit", "2", "--one-page"}
			if token != "" {
				args = append(args, "--next-token", token)
			}
			code, out, errOut := run(t, api, "", args...)
			page := listedIDs(out)
			if code != 0 || len(page) != min(2, len(ids)-len(got)) {
				t.Fatalf("%v: exit %d, listed %v\n%s%s", args, code, page, out, errOut)
			}
			got = append(got, page...)
			_, hint, more := strings.Cut(out, "more: satctl "+command+" --one-page --next-token ")
			if !more {
				break
			}
			token = strings.TrimSpace(hint)
			if pages > 5 {
				t.Fatalf("%s --one-page never ends", command)
			}
		}
		if !slices.Equal(got, ids) {
			t.Errorf("%s page by page: %v, want %v", command, got, ids)
		}
		page := runJSON(t, api, command, "--limit", "2", "--one-page")
		if tok, _ := page["nextToken"].(string); tok == "" || len(jsonIDs(page)) != 2 {
			t.Errorf("%s --json --one-page: %v, want 2 satellites and a nextToken", command, page)
		}

		code, _, errOut = run(t, api, "", command, "--next-token", "bm90LWEtdG9rZW4")
		if code != 1 || !strings.Contains(errOut, "nextToken is not a token this API issued") || !strings.Contains(errOut, "400") {
			t.Errorf("%s with a made-up token: exit %d, %q; want 1 with the API's message", command, code, errOut)
		}
	}
}
