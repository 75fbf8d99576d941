package wshandler_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Lifecycle edges follow one delivery rule: each is recorded in its
// satellite's outbox by the write that makes it, published, then
// confirmed; what is not confirmed, the sweep publishes again. These tests
// break each step.

// onSatellites matches a write of the satellites table.
func onSatellites(h *harness, operation string) func(string, any) bool {
	return func(op string, input any) bool {
		in, ok := input.(*dynamodb.UpdateItemInput)
		return op == operation && ok && aws.ToString(in.TableName) == h.env.Tables.Satellites
	}
}

func withFault(f *testenv.Fault) harnessOption {
	return func(_ *app.Config, o *app.Options) { o.APIOptions = append(o.APIOptions, f.APIOptions()...) }
}

// flakySink fails the first n publications.
type flakySink struct {
	satellite.LifecycleSink
	mu   sync.Mutex
	left int
}

func (f *flakySink) Emit(ctx context.Context, e satellite.LifecycleEvent) error {
	f.mu.Lock()
	if f.left > 0 {
		f.left--
		f.mu.Unlock()
		return errors.New("event bus unavailable")
	}
	f.mu.Unlock()
	return f.LifecycleSink.Emit(ctx, e)
}

// TestARestoringHeartbeatWhoseAnswerWasLostStillPublishes: the write that
// restores connected is applied, its answer lost, and the SDK's retry meets
// the satellite already connected. The edge is still published, once.
func TestARestoringHeartbeatWhoseAnswerWasLostStillPublishes(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-lost-answer")
	id := h.authenticate("sat-lost-answer", tok)
	h.markEdge("sat-lost-answer", satellite.EdgeHeartbeatLost)
	fault := &testenv.Fault{Match: onSatellites(h, "UpdateItem"), LoseResponse: true}
	flaky := h.build("message-lost-answer", withFault(fault))
	h.clock.Advance(time.Minute)
	if _, err := flaky.WebSocket.Message(ctx, testenv.Message(t, "heartbeat", id, nil)); err != nil {
		t.Fatal(err)
	}
	if fault.Fired() != 1 {
		t.Fatalf("fault fired %d times", fault.Fired())
	}
	if got := h.eventTypes("sat-lost-answer"); !slices.Equal(got, []string{"satellite.connected", "satellite.connected"}) {
		t.Errorf("events %v, want the authentication's connected and the restore's", got)
	}
	if sat := h.stored("sat-lost-answer"); sat.LastConnectionEvent != satellite.EdgeConnected || len(sat.Pending) != 0 {
		t.Errorf("satellite edge %s, %d pending edges; want connected, none pending", sat.LastConnectionEvent, len(sat.Pending))
	}
}

// TestADisconnectWhoseAnswerWasLostStillPublishes: as above for the write
// that takes the satellite to disconnected.
func TestADisconnectWhoseAnswerWasLostStillPublishes(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-lost-close")
	id := h.authenticate("sat-lost-close", tok)
	fault := &testenv.Fault{Match: onSatellites(h, "UpdateItem"), LoseResponse: true}
	flaky := h.build("disconnect-lost-answer", withFault(fault))
	if _, err := flaky.WebSocket.Disconnect(ctx, testenv.Event(t, "disconnect", id)); err != nil {
		t.Fatal(err)
	}
	if fault.Fired() != 1 {
		t.Fatalf("fault fired %d times", fault.Fired())
	}
	if got := h.eventTypes("sat-lost-close"); !slices.Equal(got, []string{"satellite.connected", "satellite.disconnected"}) {
		t.Errorf("events %v, want connected then disconnected", got)
	}
	if sat := h.stored("sat-lost-close"); len(sat.Pending) != 0 {
		t.Errorf("%d edges left pending", len(sat.Pending))
	}
}

// TestUnpublishedEdgesAreRepublishedByTheSweep: the event bus refuses the
// connected and the disconnected edge; both stay in the outbox and a later
// sweep publishes them, under the ids they were recorded with.
func TestUnpublishedEdgesAreRepublishedByTheSweep(t *testing.T) {
	var bus *flakySink // one bus for every function
	h := newHarness(t, func(_ *app.Config, o *app.Options) {
		if bus == nil {
			bus = &flakySink{LifecycleSink: o.Lifecycle, left: 2}
		}
		o.Lifecycle = bus
	})
	sweeper := h.build("sweep")
	tok := h.satellite("sat-bus-down")
	id := h.authenticate("sat-bus-down", tok)
	h.clock.Advance(time.Second)
	h.close(id)
	if got := h.eventTypes("sat-bus-down"); len(got) != 0 {
		t.Fatalf("events %v published while the bus was down", got)
	}
	sat := h.stored("sat-bus-down")
	if len(sat.Pending) != 2 || sat.Pending[0].Edge != satellite.EdgeConnected || sat.Pending[1].Edge != satellite.EdgeDisconnected {
		t.Fatalf("outbox %+v, want the connected and the disconnected edge", sat.Pending)
	}
	// Not before RepublishAfter: their writers might still be publishing.
	h.clock.Advance(time.Minute)
	if r, err := sweeper.Sweep.Sweep(ctx); err != nil || r.Republished != 0 {
		t.Fatalf("early sweep: %+v, %v", r, err)
	}
	h.clock.Advance(2 * time.Minute)
	if r, err := sweeper.Sweep.Sweep(ctx); err != nil || r.Republished != 2 {
		t.Fatalf("sweep: %+v, %v; want both republished", r, err)
	}
	var ids []string
	for _, l := range h.lifecycle() {
		ids = append(ids, l.Detail.EdgeID)
	}
	if !slices.Equal(ids, []string{sat.Pending[0].ID, sat.Pending[1].ID}) {
		t.Errorf("published %v, want %s then %s", ids, sat.Pending[0].ID, sat.Pending[1].ID)
	}
	if p := h.stored("sat-bus-down").Pending; len(p) != 0 {
		t.Errorf("outbox after republication: %+v", p)
	}
}

// TestADisconnectThatDiesHalfWayLosesNothing: the satellite is updated
// before the connection record is deleted. When the deletion fails, the
// satellite is already disconnected (its edge in the outbox), and the sweep
// later publishes the edge and removes the record.
func TestADisconnectThatDiesHalfWayLosesNothing(t *testing.T) {
	h := newHarness(t)
	sweeper := h.build("sweep")
	tok := h.satellite("sat-half-close")
	id := h.authenticate("sat-half-close", tok)
	fault := &testenv.Fault{Match: func(op string, input any) bool {
		in, ok := input.(*dynamodb.DeleteItemInput)
		return op == "DeleteItem" && ok && aws.ToString(in.TableName) == h.env.Tables.Connections
	}}
	broken := h.build("disconnect-broken", withFault(fault))
	if _, err := broken.WebSocket.Disconnect(ctx, testenv.Event(t, "disconnect", id)); err == nil {
		t.Fatal("disconnect whose record deletion failed reported success")
	}
	sat := h.stored("sat-half-close")
	if sat.LastConnectionEvent != satellite.EdgeDisconnected || sat.ConnectionID != "" || len(sat.Pending) != 1 {
		t.Fatalf("satellite after a half-done close: edge %s, connection %q, outbox %+v", sat.LastConnectionEvent, sat.ConnectionID, sat.Pending)
	}
	h.clock.Advance(satellite.ConnectionRecordTTL + time.Minute)
	r, err := sweeper.Sweep.Sweep(ctx)
	if err != nil || r.Republished != 1 || r.RemovedExpired != 1 {
		t.Fatalf("sweep: %+v, %v; want the edge published and the record removed", r, err)
	}
	if got := h.eventTypes("sat-half-close"); !slices.Equal(got, []string{"satellite.connected", "satellite.disconnected"}) {
		t.Errorf("events %v", got)
	}
	if _, err := h.env.Registry().Connection(ctx, id, h.clock.Now().Add(-satellite.ConnectionRecordTTL)); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("record still stored: %v", err)
	}
}
