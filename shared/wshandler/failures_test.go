package wshandler_test

import (
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// A backend failure (here: DynamoDB refusing the write because the results
// table is gone) is a Lambda error, so API Gateway answers the satellite with
// its "Internal server error" frame and the satellite can resend; it is
// logged with the ids, and the connection stays open.
func TestBackendFailureIsAnErrorNotADrop(t *testing.T) {
	h := newHarness(t, func(c *app.Config, _ *app.Options) { c.ResultsTable = "no-such-table" })
	tok := h.satellite("sat-fail", assignment(t, "cfg-1", "sys-1"))
	id := h.authenticate("sat-fail", tok)

	resp, err := h.message.WebSocket.Message(ctx, testenv.Message(t, "result", id, map[string]any{"configId": "cfg-1", "systemId": "sys-1"}))
	if err == nil || resp.StatusCode != 500 {
		t.Fatalf("status %d, error %v; want a Lambda error", resp.StatusCode, err)
	}
	failed := h.logLines("frame failed")
	if len(failed) != 1 || failed[0]["level"] != "ERROR" || failed[0]["satelliteId"] != "sat-fail" || failed[0]["type"] != "result" {
		t.Errorf("log = %v, want one ERROR naming the satellite and type", failed)
	}
	if h.mgmt.Closed(id) {
		t.Errorf("connection closed")
	}
	// Everything else keeps working.
	h.send(testenv.Message(t, "heartbeat", id, nil))
}

// A throttled secret store still answers the waiting satellite, with an
// error it can retry on, and logs the failure.
func TestThrottledSecretsStillAnswer(t *testing.T) {
	sm := testenv.NewSecretsManager(t, map[string]string{secretsPrefix + "API_TOKEN": "THROTTLE"})
	eb := testenv.NewEventBridge(t)
	h := newHarness(t, withAWSAdapters(sm, eb))
	tok := h.satellite("sat-throttle", assignment(t, "cfg-1", "sys-1", collector("col", "http", map[string]any{"A": "API_TOKEN"})))
	id := h.authenticate("sat-throttle", tok)
	h.send(testenv.Message(t, "run-secrets", id, map[string]any{"configId": "cfg-1", "collectorId": "col"}))
	got := lastFrame(t, h, id)
	if msg, _ := got["error"].(string); !strings.Contains(msg, "try again") {
		t.Errorf("reply = %v, want a retryable error", got)
	}
	if len(h.logLines("frame failed")) != 1 {
		t.Errorf("throttling not logged as a failure")
	}
}

// The management API failing (not Gone) is a backend failure too. When the
// lost frame is the authenticated reply, the connection is unmarked so the
// satellite's retry authenticates instead of being ignored.
func TestManagementAPIFailureDuringAuthenticate(t *testing.T) {
	h := newHarness(t)
	broken := h.build("message-broken", func(c *app.Config, _ *app.Options) { c.ManagementURL = "http://127.0.0.1:1" })
	tok := h.satellite("sat-mgmt")
	id := h.open()
	auth := testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-mgmt", "token": tok})
	resp, err := broken.WebSocket.Message(ctx, auth)
	if err == nil || resp.StatusCode != 500 {
		t.Fatalf("status %d, error %v; want a Lambda error", resp.StatusCode, err)
	}
	if c, err := h.env.Registry().Connection(ctx, id, h.clock.Now()); err != nil || c.Authenticated() {
		t.Fatalf("connection after lost reply: %+v, %v; want it unauthenticated", c, err)
	}
	// The satellite retries once API Gateway reports the error.
	h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-mgmt", "token": tok}))
	if frames := h.mgmt.Frames(t, id); len(frames) != 1 || frames[0]["type"] != "authenticated" {
		t.Errorf("retry got %v, want authenticated", frames)
	}
}

// An authenticate that lands after its connection was closed (its record
// removed by $disconnect or the sweep) must not bring the connection back.
func TestAuthenticateAfterCloseDoesNotResurrect(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-late-auth")
	id := h.open()
	h.close(id)
	h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-late-auth", "token": tok}))
	if _, err := h.env.Registry().Connection(ctx, id, h.clock.Now()); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("closed connection's record is back: %v", err)
	}
	if sat := h.stored("sat-late-auth"); sat.ConnectionID != "" || sat.LastConnectionEvent != "" {
		t.Errorf("satellite bound to a closed connection: %+v", sat)
	}
	if ev := h.eventTypes("sat-late-auth"); len(ev) != 0 {
		t.Errorf("events %v for a closed connection", ev)
	}
}

// After a lost authenticated reply unbinds the connection, its close still
// takes the satellite to disconnected.
func TestCloseAfterLostReplyStillDisconnects(t *testing.T) {
	h := newHarness(t)
	broken := h.build("message-broken", func(c *app.Config, _ *app.Options) { c.ManagementURL = "http://127.0.0.1:1" })
	tok := h.satellite("sat-lost-reply")
	id := h.open()
	if _, err := broken.WebSocket.Message(ctx, testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-lost-reply", "token": tok})); err == nil {
		t.Fatal("reply did not fail")
	}
	h.close(id)
	if sat := h.stored("sat-lost-reply"); sat.LastConnectionEvent != satellite.EdgeDisconnected || sat.ConnectionID != "" {
		t.Errorf("after close: edge %q connectionId %q, want disconnected", sat.LastConnectionEvent, sat.ConnectionID)
	}
	if got := h.eventTypes("sat-lost-reply"); len(got) != 2 || got[1] != "satellite.disconnected" {
		t.Errorf("events %v, want connected then disconnected", got)
	}
}

// When the backend, not the satellite, fails an authentication (here the
// satellite cannot be read), the connection's one attempt is given back,
// so the satellite's retry on the same socket is checked, not dropped.
func TestBackendFailureGivesTheAuthenticationAttemptBack(t *testing.T) {
	h := newHarness(t)
	broken := h.build("message-no-satellites", func(c *app.Config, _ *app.Options) { c.SatellitesTable = "no-such-table" })
	tok := h.satellite("sat-retry")
	id := h.open()
	auth := testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-retry", "token": tok})
	if resp, err := broken.WebSocket.Message(ctx, auth); err == nil || resp.StatusCode != 500 {
		t.Fatalf("status %d, error %v; want a Lambda error", resp.StatusCode, err)
	}
	h.send(auth)
	if frames := h.mgmt.Frames(t, id); len(frames) != 1 || frames[0]["type"] != "authenticated" {
		t.Errorf("retry got %v, want authenticated", frames)
	}
}
