package satctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestOperatorLifecycleThroughTheLocalGateway is the README's operator
// walk-through, with satctl against the local stack and a simulated
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
	sim := simulator.New(simulator.Config{URL: stack.URL, ClientID: id, Token: tok, HeartbeatInterval: 200 * time.Millisecond,
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
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"get"}, {"assign", "x"}, {"publish", "nonsense"}} {
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
