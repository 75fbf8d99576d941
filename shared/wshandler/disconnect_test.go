package wshandler_test

import (
	"slices"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestDisconnectOfCurrentConnection(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-dc")
	id := h.authenticate("sat-dc", tok)
	h.clock.Advance(10 * time.Second)
	h.close(id)

	sat := h.stored("sat-dc")
	if sat.LastConnectionEvent != satellite.EdgeDisconnected || sat.ConnectionID != "" || !sat.LastHeartbeatAt.IsZero() {
		t.Errorf("satellite after disconnect: edge %q connectionId %q lastHeartbeatAt %v", sat.LastConnectionEvent, sat.ConnectionID, sat.LastHeartbeatAt)
	}
	if got := sat.StatusAt(h.clock.Now()); got != satellite.StatusOffline {
		t.Errorf("status = %s, want offline at once", got)
	}
	if got := liveIndexCount(t, h); got != 0 {
		t.Errorf("%d satellites left in the live index, want 0", got)
	}
	if _, err := h.env.Registry().Connection(ctx, id, h.clock.Now()); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("connection record still there: %v", err)
	}
	events := h.lifecycle()
	if got := h.eventTypes("sat-dc"); !slices.Equal(got, []string{"satellite.connected", "satellite.disconnected"}) {
		t.Fatalf("events = %v", got)
	}
	if p := events[1].Detail; p.Status != satellite.StatusOffline || p.LastSeenAt == nil || p.Name != "Edge sat-dc" {
		t.Errorf("disconnected payload = %+v", p)
	}
	// A repeated $disconnect (API Gateway delivers at least once) changes nothing.
	h.close(id)
	if got := h.eventTypes("sat-dc"); len(got) != 2 {
		t.Errorf("second $disconnect emitted again: %v", got)
	}
}

func TestDisconnectOfUnauthenticatedConnection(t *testing.T) {
	h := newHarness(t)
	id := h.open()
	h.close(id)
	if _, err := h.env.Registry().Connection(ctx, id, h.clock.Now()); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("record of unauthenticated connection kept: %v", err)
	}
	if got := h.calls["disconnect"].Operations("DynamoDB"); !slices.Equal(got, []string{"GetItem", "DeleteItem"}) {
		t.Errorf("DynamoDB requests %v, want the record's read and its deletion only", got)
	}
	if ev := h.lifecycle(); len(ev) != 0 {
		t.Errorf("events %v", ev)
	}
}

func TestGoneConnectionIsCleanedUpNotFailed(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-gone", assignment(t, "cfg-1", "sys-1"))
	id := h.authenticate("sat-gone", tok)
	// The satellite vanished without API Gateway telling us yet.
	h.mgmt.Drop(id)
	h.send(testenv.Message(t, "manifest-request", id, nil))

	if _, err := h.env.Registry().Connection(ctx, id, h.clock.Now()); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("dead connection's record kept: %v", err)
	}
	sat := h.stored("sat-gone")
	if sat.LastConnectionEvent != satellite.EdgeDisconnected || sat.ConnectionID != "" {
		t.Errorf("satellite after gone: edge %q connectionId %q", sat.LastConnectionEvent, sat.ConnectionID)
	}
	// The late $disconnect finds nothing left to do and emits nothing more.
	h.close(id)
	if got := h.eventTypes("sat-gone"); !slices.Equal(got, []string{"satellite.connected", "satellite.disconnected"}) {
		t.Errorf("events = %v, want one connected and one disconnected", got)
	}
}

func TestGoneDuringAuthenticateReply(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-gone-auth")
	id := h.open()
	h.mgmt.Drop(id)
	h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-gone-auth", "token": tok}))
	sat := h.stored("sat-gone-auth")
	if sat.LastConnectionEvent != satellite.EdgeDisconnected || sat.ConnectionID != "" {
		t.Errorf("satellite: edge %q connectionId %q, want disconnected with no connection", sat.LastConnectionEvent, sat.ConnectionID)
	}
	if got := h.eventTypes("sat-gone-auth"); !slices.Equal(got, []string{"satellite.connected", "satellite.disconnected"}) {
		t.Errorf("events = %v", got)
	}
}
