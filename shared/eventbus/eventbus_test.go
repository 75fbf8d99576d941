package eventbus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/eventbus"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func newBus(t *testing.T, reject ...string) (*eventbus.Bus, *testenv.EventBridge) {
	t.Helper()
	server := testenv.NewEventBridge(t, reject...)
	client := eventbridge.NewFromConfig(localaws.AWSConfig(), func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(server.URL) })
	return eventbus.New(client, "fleet-bus"), server
}

// TestPutEventsEntryIsStampedWithTheEdgeTime checks the entry's time is
// the edge's (to the millisecond, as the AWS JSON protocol sends
// timestamps: epoch seconds), not the time it was put.
func TestPutEventsEntryIsStampedWithTheEdgeTime(t *testing.T) {
	bus, server := newBus(t)
	at := time.Date(2026, 11, 27, 8, 0, 0, 123e6, time.UTC)
	e := satellite.NewLifecycleEvent(satellite.EdgeConnected, "conn-1", satellite.Satellite{ID: "sat-1", Name: "n", Region: "r"}, at, at)
	if err := bus.Emit(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	reqs := server.Requests()
	if len(reqs) != 1 || !reqs[0].Signed {
		t.Fatalf("requests %+v, want one signed", reqs)
	}
	entry := reqs[0].Body["Entries"].([]any)[0].(map[string]any)
	if got, want := entry["Time"], float64(at.UnixMilli())/1000; got != want {
		t.Errorf("Time = %v, want %v", got, want)
	}
}

func TestEmitPutsDocumentedEvent(t *testing.T) {
	bus, server := newBus(t)
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	sat := satellite.Satellite{ID: "sat-1", Name: "Berlin edge", Region: "eu-central-1"}
	for _, edge := range []satellite.Edge{satellite.EdgeConnected, satellite.EdgeDisconnected, satellite.EdgeHeartbeatLost} {
		if err := bus.Emit(context.Background(), satellite.NewLifecycleEvent(edge, "conn-1", sat, at.Add(-time.Minute), at)); err != nil {
			t.Fatal(err)
		}
	}
	reqs := server.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d PutEvents requests, want 3", len(reqs))
	}
	for i, want := range []struct{ detailType, status string }{
		{"satellite.connected", "online"}, {"satellite.disconnected", "offline"}, {"satellite.heartbeat_lost", "offline"},
	} {
		r := reqs[i]
		entries, _ := r.Body["Entries"].([]any)
		if r.Target != "AWSEvents.PutEvents" || !r.Signed || len(entries) != 1 {
			t.Fatalf("request %d = %+v", i, r)
		}
		e := entries[0].(map[string]any)
		if e["EventBusName"] != "fleet-bus" || e["Source"] != eventbus.Source || e["DetailType"] != want.detailType {
			t.Errorf("entry %d = %v", i, e)
		}
		var detail map[string]any
		if err := json.Unmarshal([]byte(e["Detail"].(string)), &detail); err != nil {
			t.Fatalf("detail is not JSON: %v", err)
		}
		wantDetail := map[string]any{"satelliteId": "sat-1", "name": "Berlin edge", "region": "eu-central-1", "status": want.status, "lastSeenAt": "2026-11-27T07:59:00Z",
			"edgeId": satellite.EdgeID("sat-1", satellite.Edge(strings.TrimPrefix(want.detailType, "satellite.")), "conn-1")}
		if len(detail) != len(wantDetail) {
			t.Errorf("detail %v has other fields than %v", detail, wantDetail)
		}
		for k, v := range wantDetail {
			if detail[k] != v {
				t.Errorf("detail[%s] = %v, want %v", k, detail[k], v)
			}
		}
	}
}

func TestEmitReportsRejectedEntry(t *testing.T) {
	bus, _ := newBus(t, "satellite.disconnected")
	err := bus.Emit(context.Background(), satellite.NewLifecycleEvent(satellite.EdgeDisconnected, "conn-1", satellite.Satellite{ID: "sat-1"}, time.Time{}, time.Now()))
	if satellite.ErrorCode(err) != satellite.EINTERNAL {
		t.Fatalf("rejected entry: err = %v, want EINTERNAL", err)
	}
}

func TestNeverSeenSatelliteHasNullLastSeenAt(t *testing.T) {
	bus, server := newBus(t)
	_ = bus.Emit(context.Background(), satellite.NewLifecycleEvent(satellite.EdgeDisconnected, "conn-1", satellite.Satellite{ID: "s"}, time.Time{}, time.Now()))
	detail := server.Requests()[0].Body["Entries"].([]any)[0].(map[string]any)["Detail"].(string)
	var d map[string]any
	_ = json.Unmarshal([]byte(detail), &d)
	if v, ok := d["lastSeenAt"]; !ok || v != nil {
		t.Errorf("lastSeenAt = %v (present %v), want null", v, ok)
	}
}

// TestEmitBatchPutsTenEntriesPerRequest publishes 23 edges: three PutEvents
// requests of 10, 10 and 3 entries (EventBridge takes at most 10), and an
// entry EventBridge refuses fails its own edge alone.
func TestEmitBatchPutsTenEntriesPerRequest(t *testing.T) {
	bus, server := newBus(t, "satellite.disconnected")
	var es []satellite.LifecycleEvent
	for i := range 23 {
		edge := satellite.EdgeConnected
		if i%7 == 3 {
			edge = satellite.EdgeDisconnected
		}
		es = append(es, satellite.NewLifecycleEvent(edge, fmt.Sprintf("conn-%d", i), satellite.Satellite{ID: fmt.Sprintf("sat-%d", i)}, time.Time{}, time.Now()))
	}
	errs := bus.EmitBatch(context.Background(), es)
	for i, err := range errs {
		if refused := es[i].Edge == satellite.EdgeDisconnected; refused != (err != nil) {
			t.Errorf("event %d (%s): err = %v", i, es[i].Edge, err)
		}
	}
	var sizes []int
	for _, r := range server.Requests() {
		entries, _ := r.Body["Entries"].([]any)
		sizes = append(sizes, len(entries))
	}
	if !reflect.DeepEqual(sizes, []int{10, 10, 3}) {
		t.Fatalf("PutEvents requests of %v entries, want [10 10 3]", sizes)
	}
}
