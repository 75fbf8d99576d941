package eventbus_test

import (
	"context"
	"encoding/json"
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
	client := eventbridge.NewFromConfig(localaws.AWSConfig(), func(o *eventbridge.Options) {
		o.BaseEndpoint = aws.String(server.URL)
		o.RetryMaxAttempts = 1
	})
	return eventbus.New(client, "fleet-bus"), server
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
