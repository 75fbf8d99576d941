package wshandler_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/filesecrets"
	"github.com/checkstack/satellite-backend/shared/lifecyclelog"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// countingVerifier is bcrypt, its comparisons (real or decoy) counted
// where bcrypt runs.
type countingVerifier struct {
	token.Bcrypt
	n atomic.Int64
}

func newCountingVerifier() *countingVerifier {
	v := &countingVerifier{}
	v.Compared = &v.n
	return v
}

// harness runs the three WebSocket functions as separate Apps (as three
// Lambdas would be), against one test's tables and bucket, with the
// Management API received by a test server.
type harness struct {
	t       *testing.T
	env     *testenv.Env
	mgmt    *testenv.ManagementAPI
	clock   *testenv.Clock
	tokens  *countingVerifier
	logs    *testenv.SafeBuffer
	eventsF string

	log         *slog.Logger
	secretsFile string
	eventsOut   *os.File
	options     []harnessOption

	connect, message, disconnect *app.App
	calls                        map[string]*testenv.Calls
}

type harnessOption func(*app.Config, *app.Options)

// withoutPackages configures no script-package store.
func withoutPackages(c *app.Config, _ *app.Options) { c.ScriptPackagesBucket = "" }

// withoutSecrets configures no secret source.
func withoutSecrets(_ *app.Config, o *app.Options) { o.Secrets = nil }

func newHarness(t *testing.T, options ...harnessOption) *harness {
	t.Helper()
	h := &harness{
		t:      t,
		env:    testenv.New(t),
		mgmt:   testenv.NewManagementAPI(t),
		clock:  testenv.NewClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)),
		tokens: newCountingVerifier(),
		calls:  map[string]*testenv.Calls{},
	}
	dir := t.TempDir()
	h.eventsF = filepath.Join(dir, "events.jsonl")
	eventsOut, err := os.OpenFile(h.eventsF, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eventsOut.Close() })
	secretsFile := filepath.Join(dir, "secrets.json")
	writeJSON(t, secretsFile, map[string]string{"API_TOKEN": "s3cr3t-api-token-value", "DB-PASSWORD": "pa55-value-never-logged"})

	log, buf := testenv.LogBuffer()
	h.logs, h.log, h.secretsFile, h.eventsOut, h.options = buf, log, secretsFile, eventsOut, options
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("backend logs:\n%s", buf.String())
		}
	})
	h.connect, h.message, h.disconnect = h.build("connect"), h.build("message"), h.build("disconnect")
	return h
}

// build assembles one function's App; extra options apply after the
// harness's own.
func (h *harness) build(name string, extra ...harnessOption) *app.App {
	h.t.Helper()
	cfg := h.env.Config(h.mgmt.URL)
	opts := app.Options{
		Now:       h.clock.Now,
		Log:       h.log.With("function", name),
		Tokens:    h.tokens,
		Secrets:   filesecrets.New(h.secretsFile),
		Lifecycle: lifecyclelog.New(h.log, h.eventsOut),
	}
	for _, o := range append(append([]harnessOption(nil), h.options...), extra...) {
		o(&cfg, &opts)
	}
	a, calls := h.env.App(h.t, cfg, opts)
	h.calls[name] = calls
	return a
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

var ctx = context.Background()

// open connects a new socket: $connect through the connect function.
func (h *harness) open() string {
	h.t.Helper()
	id := testenv.NewConnectionID()
	h.mgmt.Open(id)
	resp, err := h.connect.WebSocket.Connect(ctx, testenv.Event(h.t, "connect", id))
	if err != nil || resp.StatusCode != 200 {
		h.t.Fatalf("$connect: status %d, error %v", resp.StatusCode, err)
	}
	return id
}

// send delivers a $default event through the message function and fails the
// test on a Lambda error.
func (h *harness) send(ev events.APIGatewayWebsocketProxyRequest) {
	h.t.Helper()
	resp, err := h.message.WebSocket.Message(ctx, ev)
	if err != nil || resp.StatusCode != 200 {
		h.t.Fatalf("$default %s: status %d, error %v", ev.Body[:min(len(ev.Body), 60)], resp.StatusCode, err)
	}
}

// close delivers $disconnect through the disconnect function.
func (h *harness) close(id string) {
	h.t.Helper()
	h.mgmt.Drop(id)
	resp, err := h.disconnect.WebSocket.Disconnect(ctx, testenv.Event(h.t, "disconnect", id))
	if err != nil || resp.StatusCode != 200 {
		h.t.Fatalf("$disconnect: status %d, error %v", resp.StatusCode, err)
	}
}

// satellite seeds a satellite with a token and assignments.
func (h *harness) satellite(id string, assignments ...satellite.Assignment) string {
	h.t.Helper()
	tok, err := token.New()
	if err != nil {
		h.t.Fatal(err)
	}
	hash, err := token.Hash(tok)
	if err != nil {
		h.t.Fatal(err)
	}
	reg := h.env.Registry()
	err = reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Edge " + id, Region: "eu-west-1", TokenHash: hash, CreatedAt: h.clock.Now()})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(assignments) > 0 {
		h.assign(id, assignments...)
	}
	return tok
}

func (h *harness) assign(id string, assignments ...satellite.Assignment) {
	h.t.Helper()
	if err := h.env.Registry().ReplaceAssignments(ctx, id, assignments); err != nil {
		h.t.Fatal(err)
	}
}

// assignment builds a valid assignment through the protocol parser.
func assignment(t *testing.T, configID, systemID string, collectors ...map[string]any) satellite.Assignment {
	t.Helper()
	raw := map[string]any{
		"configId": configID, "systemId": systemID, "strategyId": "http",
		"config": map[string]any{"url": "https://example.test/" + systemID}, "intervalSeconds": 30,
		"configName": "Config " + configID, "systemName": "System " + systemID,
	}
	if len(collectors) > 0 {
		raw["collectors"] = collectors
	}
	b, _ := json.Marshal(raw)
	a, err := satellite.ParseAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// authenticate opens a connection and authenticates it, returning its id.
func (h *harness) authenticate(satelliteID, tok string) string {
	h.t.Helper()
	id := h.open()
	h.send(testenv.Message(h.t, "authenticate", id, map[string]any{"clientId": satelliteID, "token": tok}))
	frames := h.mgmt.Frames(h.t, id)
	if len(frames) != 1 || frames[0]["type"] != "authenticated" {
		h.t.Fatalf("authenticate %s: got frames %v", satelliteID, frames)
	}
	return id
}

// stored reads a satellite as the registry sees it.
func (h *harness) stored(id string) satellite.Satellite {
	h.t.Helper()
	sat, _, err := h.env.Registry().Satellite(ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return sat
}

// lifecycle returns the lifecycle events written to the event log.
func (h *harness) lifecycle() []lifecyclelog.Line {
	h.t.Helper()
	f, err := os.Open(h.eventsF)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var lines []lifecyclelog.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l lifecyclelog.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			h.t.Fatalf("event log line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// eventTypes lists the detail types of the lifecycle events of one satellite.
func (h *harness) eventTypes(satelliteID string) []string {
	var types []string
	for _, l := range h.lifecycle() {
		if l.Detail.SatelliteID == satelliteID {
			types = append(types, l.DetailType)
		}
	}
	return types
}

// logLines returns the decoded backend log lines whose msg equals msg.
func (h *harness) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// framesOf returns the frames posted to id of one type.
func framesOf(t *testing.T, h *harness, id, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, f := range h.mgmt.Frames(t, id) {
		if f["type"] == typ {
			out = append(out, f)
		}
	}
	return out
}

// authenticateWith authenticates with extra authenticate fields and returns
// the connection id; it does not look at what was sent back.
func (h *harness) authenticateWith(satelliteID, tok string, extra map[string]any) string {
	h.t.Helper()
	id := h.open()
	fields := map[string]any{"clientId": satelliteID, "token": tok}
	for k, v := range extra {
		fields[k] = v
	}
	h.send(testenv.Message(h.t, "authenticate", id, fields))
	if got := testenv.FramesOf[protocol.Authenticated](h.t, h.mgmt, id, protocol.TypeAuthenticated); len(got) != 1 {
		h.t.Fatalf("authenticate %s: frames %v", satelliteID, h.mgmt.Frames(h.t, id))
	}
	return id
}
