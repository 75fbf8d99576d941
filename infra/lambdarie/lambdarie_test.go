package lambdarie_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/infra/lambdarie"
	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

func TestMain(m *testing.M) {
	testenv.Main(m, func() {
		if built.dir != "" {
			os.RemoveAll(built.dir)
		}
	})
}

var built struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// buildFunctions runs `make build` once for the package, for this machine's
// architecture so the binaries run here (deployments build linux/arm64).
func buildFunctions(t *testing.T) string {
	t.Helper()
	testenv.NeedsServers(t)
	built.once.Do(func() { built.dir, built.err = lambdarie.Build(testenv.RepoRoot(t), runtime.GOARCH) })
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// TestBootstrapsFitTheSizeBudget builds every function as `sam build` does
// (linux/arm64, stripped) and checks each against the size budget: a
// Lambda's cold start grows with its binary, and a function that links a
// client it does not use pays for it on every cold start.
func TestBootstrapsFitTheSizeBudget(t *testing.T) {
	dir, err := lambdarie.Build(testenv.RepoRoot(t), "arm64")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fns, err := lambdarie.Bootstraps(dir)
	if want := len(testenv.Template(t).ResourcesOfType("AWS::Serverless::Function")); err != nil || len(fns) != want {
		t.Fatalf("built %v (%v), want the template's %d functions", fns, err, want)
	}
	for _, fn := range fns {
		info, err := os.Stat(filepath.Join(dir, fn, "bootstrap"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-10s %9d bytes (%.2f MiB)", fn, info.Size(), float64(info.Size())/(1<<20))
		if budget := lambdarie.MaxBootstrapBytes(fn); info.Size() > budget {
			t.Errorf("%s bootstrap is %d bytes, over the %d byte budget", fn, info.Size(), budget)
		}
	}
}

func TestInitDurationIsReadFromTheReport(t *testing.T) {
	out := "27 Nov 2026 12:15:04,189 [INFO] (rapid) INIT RTDONE(status: success)\n" +
		"27 Nov 2026 12:15:04,189 [INFO] (rapid) INIT REPORT(durationMs: 12.340000)\n" +
		"REPORT RequestId: x\tInit Duration: 0.04 ms\tDuration: 71.64 ms\tBilled Duration: 72 ms\n"
	if d, ok := lambdarie.InitDuration(out); !ok || d != 12340*time.Microsecond {
		t.Errorf("InitDuration = %v, %v", d, ok)
	}
	if _, ok := lambdarie.InitDuration("REPORT RequestId: x\tDuration: 4.49 ms\tBilled Duration: 5 ms"); ok {
		t.Error("a warm invocation has no init duration")
	}
}

// TestBuiltFunctionsUnderTheRuntimeEmulator is the SAM-local path without
// Docker: `make build` produces each bootstrap, each runs under
// aws-lambda-rie with the environment template.yaml gives it (pointed at the
// test servers), and the events/ fixtures are invoked against it.
func TestBuiltFunctionsUnderTheRuntimeEmulator(t *testing.T) {
	buildDir := buildFunctions(t)

	env := testenv.New(t)
	mgmt := testenv.NewManagementAPI(t)
	sm := testenv.NewSecretsManager(t, map[string]string{"checkstack/satellite-secrets/API_TOKEN": "from-secrets-manager"})
	eb := testenv.NewEventBridge(t)
	refs := map[string]string{"ScriptPackagesBucket": env.Bucket, "TelemetryBucket": env.TelemetryBucket, "AWS::StackName": "checkstack-test", "AWS::URLSuffix": "amazonaws.com"}
	for logical, name := range env.TableNames {
		refs[logical] = name
	}
	var output testenv.SafeBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("function output:\n%s", output.String())
		}
	})
	emulators := map[string]*lambdarie.Emulator{}
	for fn, dir := range map[string]string{"ConnectFunction": "connect", "MessageFunction": "message", "DisconnectFunction": "disconnect"} {
		fnEnv, err := env.Template.ResolveEnvironment(fn, refs)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{
			"AWS_REGION": localaws.Region, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
			"AWS_ENDPOINT_URL_DYNAMODB": env.DynamoDBEndpoint, "AWS_ENDPOINT_URL_S3": env.S3Endpoint,
			"AWS_ENDPOINT_URL_SECRETS_MANAGER": sm.URL, "AWS_ENDPOINT_URL_EVENTBRIDGE": eb.URL,
			"S3_USE_PATH_STYLE": "true", "MANAGEMENT_ENDPOINT": mgmt.URL,
		} {
			fnEnv[k] = v
		}
		e, err := lambdarie.Start(context.Background(), lambdarie.Options{
			Bootstrap: filepath.Join(buildDir, dir, "bootstrap"), Env: fnEnv, Output: &output,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Stop)
		emulators[fn] = e
	}
	invoke := func(fn string, ev events.APIGatewayWebsocketProxyRequest) {
		t.Helper()
		payload, _ := json.Marshal(ev)
		out, err := emulators[fn].Invoke(context.Background(), payload)
		if err != nil {
			t.Fatalf("%s %s: %v", fn, ev.RequestContext.RouteKey, err)
		}
		var resp events.APIGatewayProxyResponse
		if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s %s: response %s (%v), want statusCode 200", fn, ev.RequestContext.RouteKey, out, err)
		}
	}

	tok, _ := token.New()
	hash, _ := token.Hash(tok)
	reg := env.Registry()
	if err := reg.CreateSatellite(context.Background(), satellite.Satellite{ID: "sat-demo", Name: "Demo", Region: "local", TokenHash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	a, err := satellite.ParseAssignment([]byte(`{"configId":"cfg-http-homepage","systemId":"sys-web","strategyId":"http","config":{},"intervalSeconds":30,
		"collectors":[{"id":"col-api","collectorId":"http","config":{"secretEnv":{"TOKEN":"${{ secrets.API_TOKEN }}"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.ReplaceAssignments(context.Background(), "sat-demo", []satellite.Assignment{a}); err != nil {
		t.Fatal(err)
	}

	conn := testenv.NewConnectionID()
	mgmt.Open(conn)
	invoke("ConnectFunction", testenv.Event(t, "connect", conn))
	invoke("MessageFunction", testenv.Message(t, "authenticate", conn, map[string]any{"clientId": "sat-demo", "token": tok}))
	invoke("MessageFunction", testenv.Message(t, "heartbeat", conn, nil))
	invoke("MessageFunction", testenv.Message(t, "result", conn, nil))
	invoke("MessageFunction", testenv.Message(t, "run-secrets", conn, nil))
	invoke("MessageFunction", testenv.Message(t, "manifest-request", conn, nil))

	frames := mgmt.Frames(t, conn)
	var types []string
	for _, f := range frames {
		types = append(types, f["type"].(string))
	}
	if got := strings.Join(types, ","); got != "authenticated,run_secrets,script_package_manifest" {
		t.Fatalf("frames = %s", got)
	}
	if env := frames[1]["env"].(map[string]any); env["TOKEN"] != "from-secrets-manager" {
		t.Errorf("run_secrets = %v", frames[1])
	}
	if r, _ := reg.LatestResults(context.Background(), "cfg-http-homepage", "sys-web", nil, 5); len(r) != 1 {
		t.Errorf("%d results stored, want 1", len(r))
	}
	invoke("DisconnectFunction", testenv.Event(t, "disconnect", conn))
	sat, _, err := reg.Satellite(context.Background(), "sat-demo")
	if err != nil || sat.LastConnectionEvent != satellite.EdgeDisconnected {
		t.Errorf("satellite after disconnect: %+v, %v", sat, err)
	}
	var detailTypes []string
	for _, r := range eb.Requests() {
		detailTypes = append(detailTypes, r.Body["Entries"].([]any)[0].(map[string]any)["DetailType"].(string))
	}
	if got := strings.Join(detailTypes, ","); got != "satellite.connected,satellite.disconnected" {
		t.Errorf("EventBridge got %s", got)
	}
	// Logs are JSON lines, and no token or secret value is among them.
	for _, line := range strings.Split(output.String(), "\n") {
		if strings.Contains(line, tok) || strings.Contains(line, "from-secrets-manager") {
			t.Errorf("a secret reached the function output: %s", line)
		}
	}
	if !strings.Contains(output.String(), `"msg":"satellite authenticated"`) {
		t.Errorf("function output has no structured log line")
	}
}

func TestFunctionErrorAndStartupFailure(t *testing.T) {
	buildDir := buildFunctions(t)
	// Without its tables configured the function refuses to start: the
	// invocation reports a runtime error instead of serving with a bad config.
	var output testenv.SafeBuffer
	e, err := lambdarie.Start(context.Background(), lambdarie.Options{
		Bootstrap: filepath.Join(buildDir, "connect", "bootstrap"),
		Env:       map[string]string{"AWS_REGION": "us-east-1"}, Output: &output,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	_, err = e.Invoke(context.Background(), []byte(`{}`))
	if _, ok := err.(*lambdarie.FunctionError); !ok {
		t.Fatalf("invoke without configuration: %v, want a function error", err)
	}
	// The emulator answers the failed init before the function's last
	// lines have reached the output pipe.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(output.String(), "SATELLITES_TABLE is required") {
		if time.Now().After(deadline) {
			t.Fatalf("output does not say what is missing:\n%s", output.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
