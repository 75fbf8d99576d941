package admin_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/s3telemetry"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestTelemetryListing(t *testing.T) {
	h := newHarness(t)
	store := s3telemetry.New(h.telemetryBucket())
	at := h.now.Add(-2 * time.Hour)
	for i, b := range []satellite.TelemetryBatch{
		{SatelliteID: "sat-a", ConnectionID: "c1=", Kind: "logstream", BatchID: json.RawMessage(`1`), Payload: json.RawMessage(`[1]`), ReceivedAt: at},
		{SatelliteID: "sat-a", ConnectionID: "c1=", Kind: "metricstream", BatchID: json.RawMessage(`2`), Payload: json.RawMessage(`[1]`), ReceivedAt: at.Add(time.Minute)},
		{SatelliteID: "sat-b", ConnectionID: "c2=", Kind: "logstream", BatchID: json.RawMessage(`"x/y"`), Payload: json.RawMessage(`[1]`), ReceivedAt: at.Add(2 * time.Minute)},
		{SatelliteID: "sat-a", ConnectionID: "c1=", Kind: "logstream", BatchID: json.RawMessage(`3`), Payload: json.RawMessage(`[1]`), ReceivedAt: h.now.Add(-49 * time.Hour)},
	} {
		if _, err := store.Store(ctx, b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	list := func(query map[string]string) []string {
		t.Helper()
		code, out := h.call("GET", "/telemetry", nil, query, nil)
		if code != 200 {
			t.Fatalf("telemetry %v: %d %v", query, code, out)
		}
		var got []string
		for _, b := range out["batches"].([]any) {
			m := b.(map[string]any)
			got = append(got, m["satelliteId"].(string)+"/"+m["kind"].(string))
		}
		return got
	}
	if got := strings.Join(list(nil), ","); got != "sat-b/logstream,sat-a/metricstream,sat-a/logstream" {
		t.Errorf("last day, newest first: %s", got)
	}
	if got := strings.Join(list(map[string]string{"satelliteId": "sat-a", "kind": "logstream"}), ","); got != "sat-a/logstream" {
		t.Errorf("sat-a's logstream: %s", got)
	}
	if got := list(map[string]string{"satelliteId": "sat-a", "since": h.now.Add(-72 * time.Hour).Format(time.RFC3339), "limit": "10"}); len(got) != 3 {
		t.Errorf("three days of sat-a: %v", got)
	}
	for _, q := range []map[string]string{
		{"kind": "traces"}, {"since": "yesterday"}, {"limit": "0"}, {"satelliteId": "../x"},
		{"since": h.now.Add(-40 * 24 * time.Hour).Format(time.RFC3339)},
	} {
		if code, _ := h.call("GET", "/telemetry", nil, q, nil); code != 422 {
			t.Errorf("telemetry %v: %d, want 422", q, code)
		}
	}
}

// connectOnly records an open, unauthenticated connection.
func (h *harness) connectOnly() string {
	h.t.Helper()
	conn := testenv.NewConnectionID()
	h.mgmt.Open(conn)
	if err := h.env.Registry().OpenConnection(ctx, satellite.Connection{ID: conn, ConnectedAt: h.now, ExpiresAt: h.now.Add(satellite.ConnectionRecordTTL)}); err != nil {
		h.t.Fatal(err)
	}
	return conn
}

// telemetryBucket is the test's telemetry bucket, as the functions reach it.
func (h *harness) telemetryBucket() *s3objects.Bucket {
	h.t.Helper()
	return localaws.Bucket(h.env.S3Endpoint, h.env.TelemetryBucket)
}

// TestRotationStopsTelemetryAtOnce: as with a result, a telemetry batch of a
// connection whose token was rotated through the admin API (the shutdown
// could not be sent) is refused from the rotation on, by the very instance
// that trusts the connection from its cache: auth_failed, the close, and
// nothing stored.
func TestRotationStopsTelemetryAtOnce(t *testing.T) {
	h := newHarness(t, func(c *app.Config) { c.ManagementURL = "http://127.0.0.1:1" })
	msg := h.messageFunction()
	id, tok := h.create("Telemetry")
	conn := h.authenticateThrough(msg, id, tok)
	stored := func() int {
		t.Helper()
		listing, err := s3telemetry.New(h.telemetryBucket()).List(ctx, satellite.TelemetryQuery{
			SatelliteID: id, Kinds: []string{"logstream"}, Since: h.now.Add(-time.Hour), Until: h.now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return len(listing.Batches)
	}
	send := func(batchID int) {
		t.Helper()
		body := `{"type":"telemetry_batch","batchId":` + strconv.Itoa(batchID) + `,"kind":"logstream","payload":[{"line":"a"}]}`
		if _, err := msg.WebSocket.Message(ctx, testenv.Raw(t, conn, body)); err != nil {
			t.Fatal(err)
		}
	}
	send(1)
	if n := stored(); n != 1 {
		t.Fatalf("%d batches stored before the rotation, want 1", n)
	}
	if code, out := h.call("POST", "/satellites/{satelliteId}/token", map[string]string{"satelliteId": id}, nil, nil); code != 200 || out["shutdownComplete"] != false {
		t.Fatalf("rotate with the Management API down: %d %v", code, out)
	}
	send(2)
	if n := stored(); n != 1 {
		t.Errorf("%d batches stored, want 1: the revoked connection's batch was stored", n)
	}
	frames := h.mgmt.Frames(t, conn)
	if last := frames[len(frames)-1]; last["type"] != "auth_failed" || !h.mgmt.Closed(conn) {
		t.Errorf("revoked connection got %v (closed %v), want auth_failed and the close", last, h.mgmt.Closed(conn))
	}
}
