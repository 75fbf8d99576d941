package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/eventbus"
	"github.com/checkstack/satellite-backend/shared/lifecyclelog"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// putEntries returns the PutEvents entries an EventBridge server received.
func putEntries(eb *testenv.EventBridge) []map[string]any {
	var out []map[string]any
	for _, r := range eb.Requests() {
		for _, e := range r.Body["Entries"].([]any) {
			out = append(out, e.(map[string]any))
		}
	}
	return out
}

// detailOf decodes an entry's Detail.
func detailOf(t *testing.T, entry map[string]any) satellite.LifecyclePayload {
	t.Helper()
	var d satellite.LifecyclePayload
	if err := json.Unmarshal([]byte(entry["Detail"].(string)), &d); err != nil {
		t.Fatalf("detail %v: %v", entry["Detail"], err)
	}
	return d
}

// withBus puts h's admin function on an EventBridge server.
func withBus(t *testing.T, h *harness, eb *testenv.EventBridge) {
	t.Helper()
	log, _ := testenv.LogBuffer()
	cfg := h.env.Config(h.mgmt.URL)
	cfg.EventBusName = "default"
	h.a, _ = h.env.App(t, cfg, app.Options{Now: func() time.Time { return h.now }, Log: log, Endpoints: app.Endpoints{EventBridge: eb.URL}})
}

// eventLog reads a lifecycle event log (LIFECYCLE_LOG_FILE), as the local
// stack writes lifecycle-events.jsonl.
func eventLog(t *testing.T, path string) []lifecyclelog.Line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []lifecyclelog.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l lifecyclelog.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("event log line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// TestDeleteEmitsSatelliteRemoved: DELETE /satellites/{id} puts
// satellite.removed on the bus with the detail every lifecycle event has,
// and confirms it: nothing stays in the outbox.
func TestDeleteEmitsSatelliteRemoved(t *testing.T) {
	h := newHarness(t)
	eb := testenv.NewEventBridge(t)
	withBus(t, h, eb)
	id, tok := h.create("Doomed")
	h.connect(id, tok) // its last heartbeat: h.now
	h.now = h.now.Add(time.Minute)

	if code, out := h.call("DELETE", "/satellites/{satelliteId}", map[string]string{"satelliteId": id}, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, out)
	}
	var removed []map[string]any
	for _, e := range putEntries(eb) {
		if e["DetailType"] == "satellite.removed" {
			removed = append(removed, e)
		}
	}
	if len(removed) != 1 {
		t.Fatalf("%d satellite.removed entries put, want 1: %v", len(removed), putEntries(eb))
	}
	if removed[0]["Source"] != eventbus.Source || removed[0]["EventBusName"] != "default" {
		t.Errorf("entry = %v", removed[0])
	}
	d := detailOf(t, removed[0])
	wantSeen := "2026-11-27T08:00:00Z"
	if d.SatelliteID != id || d.Name != "Doomed" || d.Region != "eu-central-1" || d.Status != satellite.StatusOffline ||
		d.LastSeenAt == nil || *d.LastSeenAt != wantSeen || d.EdgeID == "" {
		t.Errorf("detail = %+v, want the satellite, offline, last seen %s, with an edge id", d, wantSeen)
	}
	if pending, err := h.a.Registry.PendingEdges(ctx, h.now.Add(time.Hour)); err != nil || len(pending) != 0 {
		t.Errorf("pending after a published removal: %v, %v", pending, err)
	}
	// It is gone: a second delete is 404 and emits nothing.
	if code, _ := h.call("DELETE", "/satellites/{satelliteId}", map[string]string{"satelliteId": id}, nil, nil); code != http.StatusNotFound {
		t.Errorf("second delete: %d", code)
	}
	if n := len(putEntries(eb)); n != 1 {
		t.Errorf("%d events put in all, want the one removal", n)
	}
}

// onRemoval runs fn once, just before the first transaction that deletes a
// satellite item and writes its removal record.
func onRemoval(fn func()) func(*middleware.Stack) error {
	var once sync.Once
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("test.onRemoval",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if tx, ok := in.Parameters.(*dynamodb.TransactWriteItemsInput); ok {
					for _, w := range tx.TransactItems {
						if w.Put == nil {
							continue
						}
						if pk, _ := w.Put.Item["pk"].(*types.AttributeValueMemberS); pk != nil && strings.HasPrefix(pk.Value, "REMOVED#") {
							once.Do(fn)
						}
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
}

// TestSatelliteRemovedIsDeliveredAtLeastOnce: the removal is recorded in
// the same write that deletes the satellite, with the edges still pending
// on it, so neither a refused publication, nor an edge recorded while the
// deletion runs, nor the satellite item being gone loses an event: the
// sweep publishes what stays unconfirmed, into the local event log.
func TestSatelliteRemovedIsDeliveredAtLeastOnce(t *testing.T) {
	h := newHarness(t)
	reg := h.env.Registry()
	id, tok := h.create("Flaky bus")
	conn := h.connect(id, tok) // connected, and confirmed

	// The bus refuses satellite.removed; and while the deletion runs, the
	// satellite's connection closes ($disconnect records its edge on the
	// satellite item, not yet published).
	refusing := testenv.NewEventBridge(t, "satellite.removed")
	log, _ := testenv.LogBuffer()
	cfg := h.env.Config(h.mgmt.URL)
	cfg.EventBusName = "default"
	var closed satellite.Closed
	h.a, _ = h.env.App(t, cfg, app.Options{
		Now: func() time.Time { return h.now }, Log: log, Endpoints: app.Endpoints{EventBridge: refusing.URL},
		APIOptions: []func(*middleware.Stack) error{onRemoval(func() {
			var err error
			if closed, err = reg.CloseConnection(ctx, conn, satellite.CloseStatus{}, h.now); err != nil || !closed.Disconnected {
				t.Errorf("close during the deletion: %+v, %v", closed, err)
			}
		})},
	})
	if code, out := h.call("DELETE", "/satellites/{satelliteId}", map[string]string{"satelliteId": id}, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, out)
	}
	if len(putEntries(refusing)) != 1 {
		t.Fatalf("entries put: %v, want the refused removal", putEntries(refusing))
	}
	refused := detailOf(t, putEntries(refusing)[0])
	if _, _, err := reg.Satellite(ctx, id); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Fatalf("the satellite after its deletion: %v", err)
	}

	// The next sweep, on a working sink (the local stack's event log),
	// publishes both edges and confirms them.
	events := filepath.Join(t.TempDir(), "lifecycle-events.jsonl")
	cfg = h.env.Config(h.mgmt.URL)
	cfg.LifecycleLogFile = events
	h.now = h.now.Add(cfg.RepublishAfter + time.Minute)
	later, _ := h.env.App(t, cfg, app.Options{Now: func() time.Time { return h.now }, Log: log})
	report, err := later.Sweep.Sweep(ctx)
	if err != nil || report.Republished != 2 {
		t.Fatalf("sweep: %+v, %v; want both edges republished", report, err)
	}
	got := map[string]string{}
	for _, l := range eventLog(t, events) {
		if l.Detail.SatelliteID == id {
			got[l.DetailType] = l.Detail.EdgeID
		}
	}
	if got["satellite.removed"] != refused.EdgeID || got["satellite.disconnected"] != closed.Edge.ID || len(got) != 2 {
		t.Errorf("event log: %v; want satellite.removed %s and satellite.disconnected %s", got, refused.EdgeID, closed.Edge.ID)
	}
	// Confirmed: a later sweep has nothing to publish, and the record will
	// expire a week after the removal.
	if pending, err := reg.PendingEdges(ctx, h.now.Add(time.Hour)); err != nil || len(pending) != 0 {
		t.Errorf("pending after the sweep: %v, %v", pending, err)
	}
	for _, it := range testenv.ScanAll(t, h.env.DB, h.env.Tables.Satellites) {
		if pk := it["pk"].(*types.AttributeValueMemberS).Value; pk == "REMOVED#"+id {
			exp, ok := it["expiresAt"].(*types.AttributeValueMemberN)
			removedAt := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
			if !ok || exp.Value != strconv.FormatInt(removedAt.Add(7*24*time.Hour).Unix(), 10) {
				t.Errorf("removal record expiresAt = %v, want a week after the removal", it["expiresAt"])
			}
		}
	}
}
