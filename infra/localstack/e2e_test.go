package localstack_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/lifecyclelog"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

// startStack runs the local stack on this test's tables and bucket.
func startStack(t *testing.T, mode localstack.Mode) *localstack.Stack {
	t.Helper()
	s, _ := startStackWithLogs(t, mode)
	return s
}

// startStackWithLogs is startStack, also returning what the stack and its
// functions logged.
func startStackWithLogs(t *testing.T, mode localstack.Mode, with ...func(*localstack.Options)) (*localstack.Stack, *testenv.SafeBuffer) {
	t.Helper()
	env := testenv.New(t)
	logs := &testenv.SafeBuffer{}
	opts := localstack.Options{
		DynamoDBEndpoint: env.DynamoDBEndpoint, TableNames: env.TableNames,
		S3Endpoint: env.S3Endpoint, Bucket: env.Bucket, TelemetryBucket: env.TelemetryBucket,
		Mode: mode, Log: logs, FunctionLog: logs,
	}
	for _, f := range with {
		f(&opts)
	}
	stack, err := localstack.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stack.Stop()
		if t.Failed() {
			t.Logf("stack logs:\n%s", logs.String())
		}
	})
	return stack, logs
}

// satelliteURL is what a satellite configured with the stack's core URL
// opens, built as the satellite client builds it: the path the template's
// CloudFront front serves, not the stage.
func satelliteURL(t *testing.T, s *localstack.Stack) string {
	t.Helper()
	if s.CoreURL == "" {
		t.Fatal("the local stack serves no core URL")
	}
	return simulator.SatelliteURL(s.CoreURL)
}

// createSatellite stores a satellite with assignments and returns its token.
func createSatellite(t *testing.T, s *localstack.Stack, id string, assignments ...string) string {
	t.Helper()
	tok, _ := token.New()
	hash, _ := token.Hash(tok)
	if err := s.Registry.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Sat " + id, Region: "eu-test-1", TokenHash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var as []satellite.Assignment
	for _, raw := range assignments {
		a, err := satellite.ParseAssignment([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	if len(as) > 0 {
		if err := s.Registry.ReplaceAssignments(ctx, id, as); err != nil {
			t.Fatal(err)
		}
	}
	return tok
}

const checkWithSecret = `{"configId":"cfg-web","systemId":"sys-web","strategyId":"http","config":{"url":"https://example.com"},"intervalSeconds":30,
 "collectors":[{"id":"col-api","collectorId":"http-request","config":{"secretEnv":{"API_TOKEN":"${{ secrets.API_TOKEN }}"}}},
               {"id":"col-plain","collectorId":"ping","config":{}}]}`

// client is a raw protocol client over a real socket, for checks the
// simulator would never make.
type client struct {
	t    *testing.T
	conn *websocket.Conn
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &client{t: t, conn: c}
}

func (c *client) send(frame any) {
	c.t.Helper()
	b, _ := json.Marshal(frame)
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) read() (map[string]any, error) {
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, data, err := c.conn.Read(rctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if f["type"] != typ {
		c.t.Fatalf("got %v, want %s", f, typ)
	}
	return f
}

func events(t *testing.T, s *localstack.Stack, satelliteID string) []string {
	t.Helper()
	f, err := os.Open(s.EventsFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l lifecyclelog.Line
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Detail.SatelliteID == satelliteID {
			out = append(out, l.DetailType)
		}
	}
	return out
}

func TestEndToEndInProcess(t *testing.T) { endToEnd(t, localstack.InProcess) }

func TestEndToEndUnderRuntimeEmulator(t *testing.T) { endToEnd(t, localstack.RIE) }

func endToEnd(t *testing.T, mode localstack.Mode) {
	s, logs := startStackWithLogs(t, mode)
	tok := createSatellite(t, s, "sat-e2e", checkWithSecret)
	if err := s.WriteSecrets(map[string]string{"API_TOKEN": "e2e-secret-value"}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 300<<10)
	_, _ = rand.Read(big)
	small := []byte("export const ok = true;\n")
	bigIntegrity, err := s.Publisher.PutBlob(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	smallIntegrity, _ := s.Publisher.PutBlob(ctx, small)
	lockfile, err := s.Publisher.PutManifest(ctx, []satellite.ManifestEntry{
		{Name: "big-lib", Version: "2.0.0", Integrity: bigIntegrity}, {Name: "small-lib", Version: "1.0.0", Integrity: smallIntegrity},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Registry.SetDesiredLockfileHash(ctx, lockfile); err != nil {
		t.Fatal(err)
	}

	// A simulated satellite runs the whole protocol.
	var simLog testenv.SafeBuffer
	sim := simulator.New(simulator.Config{URL: satelliteURL(t, s), ClientID: "sat-e2e", Token: tok, HeartbeatInterval: 200 * time.Millisecond, ResultInterval: 200 * time.Millisecond, Log: &simLog})
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(simCtx) }()
	defer stopSim()

	testenv.Eventually(t, "authenticated, packages ready, results and secrets", func() bool {
		st := sim.State()
		return st.Authenticated && st.SyncStatus == satellite.SyncReady && st.ResultsSent >= 2 && st.SecretsReceived["col-api"] == 1
	})
	st := sim.State()
	if len(st.Assignments) != 1 || st.Assignments[0].ConfigID != "cfg-web" {
		t.Errorf("assignments = %+v", st.Assignments)
	}
	if !bytes.Equal(st.Packages[bigIntegrity], big) || !bytes.Equal(st.Packages[smallIntegrity], small) {
		t.Errorf("packages not reconciled byte for byte")
	}
	if !strings.Contains(simLog.String(), "fetched 307200 byte blob by URL") {
		t.Errorf("the 300 KiB blob did not come by URL:\n%s", simLog.String())
	}
	testenv.Eventually(t, "results stored and satellite online with sync state ready", func() bool {
		r, _ := s.Registry.LatestResults(ctx, "cfg-web", "sys-web", nil, 10)
		sat, _, _ := s.Registry.Satellite(ctx, "sat-e2e")
		return len(r) >= 2 && sat.StatusAt(time.Now()) == satellite.StatusOnline && sat.SyncState != nil && sat.SyncState.Status == satellite.SyncReady
	})
	if r, _ := s.Registry.LatestResults(ctx, "cfg-web", "sys-web", nil, 1); r[0].Source != "Sat sat-e2e (eu-test-1)" {
		t.Errorf("result source = %q", r[0].Source)
	}

	// Another satellite with the same check on a raw connection: protocol
	// edges the simulator never exercises.
	rawTok := createSatellite(t, s, "sat-e2e-raw", checkWithSecret)
	c := dial(t, satelliteURL(t, s))
	c.send(map[string]any{"type": "authenticate", "clientId": "sat-e2e-raw", "token": rawTok})
	c.expect("authenticated")
	c.send(map[string]any{"type": "result", "configId": "cfg-other", "systemId": "sys-web", "status": "healthy", "executedAt": time.Now().UTC().Format(time.RFC3339)})
	c.send(map[string]any{"type": "request_run_secrets", "requestId": "r-plain", "configId": "cfg-web", "collectorId": "col-plain", "runId": "x"})
	refused := c.expect("run_secrets")
	if refused["requestId"] != "r-plain" || refused["env"] != nil || !strings.Contains(refused["error"].(string), "declares no secretEnv") {
		t.Errorf("secrets for an undeclared collector: %v", refused)
	}
	c.send(map[string]any{"type": "request_script_package_blob", "integrity": bigIntegrity})
	if f := c.expect("script_package_blob"); f["data"] != nil || f["url"] == nil {
		t.Errorf("big blob reply = %.200v", f)
	}
	if r, _ := s.Registry.LatestResults(ctx, "cfg-other", "sys-web", nil, 1); len(r) != 0 {
		t.Errorf("unassigned result stored")
	}
	c.send(map[string]any{"type": "heartbeat", "version": "raw", "uptimeSeconds": 1}) // the socket stayed open
	_ = c.conn.Close(websocket.StatusNormalClosure, "")

	// A bad token gets auth_failed and a closed socket.
	bad := dial(t, satelliteURL(t, s))
	bad.send(map[string]any{"type": "authenticate", "clientId": "sat-e2e", "token": "csat_wrong"})
	if f := bad.expect("auth_failed"); f["reason"] != protocol.ReasonInvalidCredentials {
		t.Errorf("auth_failed reason = %v", f["reason"])
	}
	if _, err := bad.read(); websocket.CloseStatus(err) == -1 && err == nil {
		t.Errorf("socket still open after auth_failed")
	}

	// The satellite stops: offline at once, disconnected emitted once.
	stopSim()
	<-simDone
	testenv.Eventually(t, "satellite offline", func() bool {
		sat, _, _ := s.Registry.Satellite(ctx, "sat-e2e")
		return sat.StatusAt(time.Now()) == satellite.StatusOffline && sat.LastConnectionEvent == satellite.EdgeDisconnected
	})
	testenv.Eventually(t, "no connections left", func() bool { return s.Gateway.Connections() == 0 })
	// The disconnect function appends its event after the state change the
	// checks above saw, so wait for it before counting.
	testenv.Eventually(t, "disconnected event written", func() bool {
		return countOf(events(t, s, "sat-e2e"), "satellite.disconnected") > 0
	})
	got := events(t, s, "sat-e2e")
	if n := countOf(got, "satellite.disconnected"); n != 1 {
		t.Errorf("events %v: %d disconnected, want exactly 1", got, n)
	}
	if got[0] != "satellite.connected" {
		t.Errorf("events %v", got)
	}

	// The functions' metric lines, as CloudWatch would read them from their
	// logs, match the metrics table of docs/OPERATIONS.md. The disconnect function writes its
	// metrics at the end of its invocation, after the event above.
	testenv.Eventually(t, "the disconnect function's metrics written", func() bool {
		return strings.Contains(logs.String(), `"Edge":"disconnected"`)
	})
	checkMetricsAgainstDocs(t, logs.String(), []string{
		"Frames FrameType=authenticate", "Frames FrameType=heartbeat", "Frames FrameType=result",
		"Frames FrameType=request_run_secrets", "Frames FrameType=request_script_package_blob",
		"Authentications Outcome=ok", "Authentications Outcome=failed",
		"Edges Edge=connected", "Edges Edge=disconnected", "Pushes Outcome=sent", "ResultsStored",
	})
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestReconnectStorm drops 50 satellites at once; they reconnect together,
// racing their old connections' $disconnect.
func TestReconnectStorm(t *testing.T) {
	// Fifty satellites heartbeating every second and reconnecting at once:
	// Lambda scales out for that, so the stack may run more instances than
	// its default four (which would queue the storm behind one another on
	// a loaded machine).
	s, _ := startStackWithLogs(t, localstack.InProcess, func(o *localstack.Options) { o.Instances = 16 })
	const n = 50
	type entry struct {
		id  string
		sim *simulator.Satellite
	}
	var sats []entry
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	tokens := make([]string, n)
	var mu sync.Mutex
	var create sync.WaitGroup
	for i := 0; i < n; i++ {
		create.Add(1)
		go func() {
			defer create.Done()
			tok := createSatellite(t, s, satID(i))
			mu.Lock()
			tokens[i] = tok
			mu.Unlock()
		}()
	}
	create.Wait()
	for i := 0; i < n; i++ {
		sim := simulator.New(simulator.Config{URL: satelliteURL(t, s), ClientID: satID(i), Token: tokens[i], HeartbeatInterval: time.Second,
			BackoffMin: 20 * time.Millisecond, BackoffMax: 300 * time.Millisecond})
		sats = append(sats, entry{satID(i), sim})
		wg.Add(1)
		go func() { defer wg.Done(); _ = sim.Run(runCtx) }()
	}
	testenv.Eventually(t, "all 50 authenticated", func() bool {
		for _, e := range sats {
			if !e.sim.State().Authenticated {
				return false
			}
		}
		return true
	})
	first := connectionIDs(t, s, sats[0].id)
	// Drop every connection at once through the Management API.
	var drop sync.WaitGroup
	for _, e := range sats {
		sat, _, _ := s.Registry.Satellite(ctx, e.id)
		drop.Add(1)
		go func() {
			defer drop.Done()
			req, _ := http.NewRequest(http.MethodDelete, s.ManagementURL+"/@connections/"+url.PathEscape(sat.ConnectionID), nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	drop.Wait()
	testenv.Eventually(t, "all 50 reconnected", func() bool {
		for _, e := range sats {
			if st := e.sim.State(); st.Connects < 2 || !st.Authenticated {
				return false
			}
		}
		return s.Gateway.Connections() == n
	})
	testenv.Eventually(t, "every satellite connected on its newest connection, old records gone", func() bool {
		for _, e := range sats {
			sat, _, err := s.Registry.Satellite(ctx, e.id)
			if err != nil || sat.LastConnectionEvent != satellite.EdgeConnected {
				return false
			}
			ids := connectionIDs(t, s, e.id)
			if len(ids) != 1 || ids[0] != sat.ConnectionID {
				return false
			}
		}
		return true
	})
	if now := connectionIDs(t, s, sats[0].id); slices.Equal(now, first) {
		t.Errorf("connection ids did not change: %v", now)
	}
	// Records of the dropped connections are gone, and nothing would survive
	// its expiry: every record is a live connection of the gateway.
	var records int
	_ = s.Registry.AuthenticatedConnections(ctx, time.Now(), func(c satellite.Connection) bool { records++; return true })
	if records != n {
		t.Errorf("%d authenticated connection records, want %d", records, n)
	}
	if err := s.Registry.AuthenticatedConnections(ctx, time.Now().Add(satellite.ConnectionRecordTTL+time.Minute), func(c satellite.Connection) bool {
		t.Errorf("record %s read as live past its expiry", c.ID)
		return true
	}); err != nil {
		t.Fatal(err)
	}
}

func satID(i int) string { return "sat-storm-" + strconv.Itoa(i) }

func connectionIDs(t *testing.T, s *localstack.Stack, satelliteID string) []string {
	t.Helper()
	ids, err := s.Registry.SatelliteConnections(ctx, satelliteID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestSweepRunsOnItsSchedule: the gateway runs the template's scheduled
// sweep, its passes spread over the sped-up schedule; a satellite that stops
// heartbeating is reported lost once its exact deadline has passed.
func TestSweepRunsOnItsSchedule(t *testing.T) {
	env := testenv.New(t)
	// The functions' clock, moved past the deadline below, which the test
	// should not wait out.
	clock := testenv.NewClock(time.Now())
	// A schedule every 2 s spreads the sweep's four passes 500 ms apart: a
	// pass starts work only until the next one's slot, and a budget much
	// shorter than DynamoDB Local's answers on a loaded machine would defer
	// every satellite to a later pass, pass after pass.
	s, err := localstack.Start(ctx, localstack.Options{
		DynamoDBEndpoint: env.DynamoDBEndpoint, TableNames: env.TableNames, S3Endpoint: env.S3Endpoint, Bucket: env.Bucket, TelemetryBucket: env.TelemetryBucket,
		ScheduleEvery: 2 * time.Second, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	tok, _ := token.New()
	hash, _ := token.Hash(tok)
	if err := s.Registry.CreateSatellite(ctx, satellite.Satellite{ID: "sat-quiet", Name: "Quiet", Region: "r", TokenHash: hash, CreatedAt: time.Now(), OfflineThreshold: time.Second}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, satelliteURL(t, s))
	c.send(map[string]any{"type": "authenticate", "clientId": "sat-quiet", "token": tok})
	c.expect("authenticated")
	// No heartbeat follows. Until its deadline no pass finds it.
	time.Sleep(500 * time.Millisecond)
	if got := events(t, s, "sat-quiet"); slices.Contains(got, "satellite.heartbeat_lost") {
		t.Fatalf("events %v before the deadline", got)
	}
	clock.Advance(time.Second + time.Millisecond)
	testenv.Eventually(t, "heartbeat_lost from the scheduled sweep", func() bool {
		return slices.Contains(events(t, s, "sat-quiet"), "satellite.heartbeat_lost")
	})
	if got := events(t, s, "sat-quiet"); countOf(got, "satellite.heartbeat_lost") != 1 {
		t.Errorf("events %v, want one heartbeat_lost however many sweeps ran", got)
	}
}
