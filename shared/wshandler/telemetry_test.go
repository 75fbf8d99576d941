package wshandler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/s3telemetry"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// telemetryObjects lists the keys stored in the test's telemetry bucket.
func telemetryObjects(t *testing.T, h *harness) map[string][]byte {
	t.Helper()
	out, err := h.env.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(h.env.TelemetryBucket)})
	if err != nil {
		t.Fatal(err)
	}
	objects := map[string][]byte{}
	for _, o := range out.Contents {
		get, err := h.env.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(h.env.TelemetryBucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(get.Body)
		get.Body.Close()
		objects[aws.ToString(o.Key)] = b
	}
	return objects
}

// batch sends a telemetry_batch through a function instance and returns the
// acks the connection received from it (none, or one).
func batch(t *testing.T, h *harness, through *app.App, id string, body string) []protocol.TelemetryAck {
	t.Helper()
	before := len(acksOf(t, h, id))
	if _, err := through.WebSocket.Message(ctx, testenv.Raw(t, id, body)); err != nil {
		t.Fatalf("telemetry_batch: %v", err)
	}
	return acksOf(t, h, id)[before:]
}

// acksOf returns the telemetry acks posted to a connection.
func acksOf(t *testing.T, h *harness, id string) []protocol.TelemetryAck {
	t.Helper()
	return testenv.FramesOf[protocol.TelemetryAck](t, h.mgmt, id, protocol.TypeTelemetryAck)
}

// ackIs checks the one ack of acks; batchID is the id as JSON decodes it
// (a float64 or a string).
func ackIs(t *testing.T, acks []protocol.TelemetryAck, batchID any, accepted, rejected int, retryable bool) {
	t.Helper()
	if len(acks) != 1 {
		t.Fatalf("got %d acks %+v, want one", len(acks), acks)
	}
	a := acks[0]
	var echoed any
	if err := json.Unmarshal(a.BatchID, &echoed); err != nil {
		t.Fatalf("ack's batchId %s: %v", a.BatchID, err)
	}
	if echoed != batchID || a.Accepted != accepted || a.Rejected != rejected || a.Retryable != retryable {
		t.Errorf("ack = %v %d %d %v, want batchId accepted rejected retryable = %v %d %d %v",
			echoed, a.Accepted, a.Rejected, a.Retryable, batchID, accepted, rejected, retryable)
	}
}

func TestTelemetryBatchIsStoredAndAcked(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-tel")
	id := h.authenticate("sat-tel", tok)
	body := `{"type":"telemetry_batch","batchId":1,"kind":"logstream","payload":[{"line":"a"},{"line":"b"}],"droppedByGroup":{"app":3}}`
	ackIs(t, batch(t, h, h.message, id, body), 1.0, 2, 0, false)

	objects := telemetryObjects(t, h)
	if len(objects) != 1 {
		t.Fatalf("stored %d objects, want 1", len(objects))
	}
	for key, b := range objects {
		if !strings.HasPrefix(key, "telemetry/logstream/2026-11-27/sat-tel/") || !strings.HasSuffix(key, "_n1.json") {
			t.Errorf("key %s is not by kind, day and satellite", key)
		}
		var doc s3telemetry.Document
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.SatelliteID != "sat-tel" || doc.Accepted != 2 || doc.DroppedByGroup["app"] != 3 || string(doc.Payload) != `[{"line":"a"},{"line":"b"}]` {
			t.Errorf("stored %s", b)
		}
	}

	t.Run("a resend of a handled batch is acked again, not stored again", func(t *testing.T) {
		ackIs(t, batch(t, h, h.message, id, body), 1.0, 2, 0, false)
		// On another instance, which has never seen it.
		other := h.build("message-b")
		ackIs(t, batch(t, h, other, id, body), 1.0, 2, 0, false)
		if n := len(telemetryObjects(t, h)); n != 1 {
			t.Errorf("%d objects after resends, want 1", n)
		}
	})
	t.Run("items are counted by the payload's shape", func(t *testing.T) {
		ackIs(t, batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":"m-1","kind":"metric-scrape","payload":{"items":[1,2,3]}}`), "m-1", 3, 0, false)
		ackIs(t, batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":"m-2","kind":"metricstream","payload":{"series":"cpu"}}`), "m-2", 1, 0, false)
	})
	t.Run("a kind nothing stores gets a terminal ack and costs no request", func(t *testing.T) {
		h.calls["message"].Reset()
		ackIs(t, batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":2,"kind":"traces","payload":[1]}`), 2.0, 0, 0, false)
		if n := h.calls["message"].Count("DynamoDB") + h.calls["message"].Count("S3"); n != 0 {
			t.Errorf("%d requests for an unknown kind", n)
		}
	})
	t.Run("a payload its kind cannot hold is rejected", func(t *testing.T) {
		ackIs(t, batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":3,"kind":"logstream","payload":"one line"}`), 3.0, 0, 1, false)
		ackIs(t, batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":3,"kind":"logstream","payload":"one line"}`), 3.0, 0, 1, false)
	})
	t.Run("an invalid frame with a batchId is still acked", func(t *testing.T) {
		ackIs(t, batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":4,"kind":"../etc","payload":[]}`), 4.0, 0, 1, false)
	})
}

func TestTelemetryDuplicateInFlightIsNotAcked(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-inflight")
	id := h.authenticate("sat-inflight", tok)
	// Another instance claimed the batch and is still storing it.
	ledger := dynamo.NewTelemetryLedger(h.env.DB, h.env.TelemetryTable, h.env.Tables.Satellites)
	body := `{"type":"telemetry_batch","batchId":7,"kind":"logstream","payload":[{"line":"a"}]}`
	msg, err := protocol.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	key := msg.(*protocol.TelemetryBatch).BatchKey
	if _, err := ledger.ClaimBatch(ctx, connection(t, h, id), key, len(body), app.DefaultTelemetryBudget, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if acks := batch(t, h, h.message, id, body); len(acks) != 0 {
		t.Errorf("a duplicate of a batch in flight was acked: %v", acks)
	}
	// The claimer died: after the in-flight timeout the resend is handled.
	h.clock.Advance(dynamo.InFlightTimeout + time.Second)
	ackIs(t, batch(t, h, h.message, id, body), 7.0, 1, 0, false)
}

func TestTelemetryBudgetHoldsAcrossInstances(t *testing.T) {
	h := newHarness(t, func(c *app.Config, _ *app.Options) { c.TelemetryBudget = protocol.MaxMessageBytes })
	tok := h.satellite("sat-budget")
	id := h.authenticate("sat-budget", tok)
	other := h.build("message-b")
	big := func(n int) string {
		return fmt.Sprintf(`{"type":"telemetry_batch","batchId":%d,"kind":"logstream","payload":[{"line":"%s"}]}`, n, strings.Repeat("x", 50_000))
	}
	ackIs(t, batch(t, h, h.message, id, big(1)), 1.0, 1, 0, false)
	ackIs(t, batch(t, h, other, id, big(2)), 2.0, 1, 0, false)
	// The third would take the connection over its bytes of the minute,
	// whichever instance handles it.
	ackIs(t, batch(t, h, h.message, id, big(3)), 3.0, 0, 0, true)
	ackIs(t, batch(t, h, other, id, big(3)), 3.0, 0, 0, true)
	if n := len(h.logLines("telemetry over the connection's budget; the agent resends later")); n != 2 {
		t.Errorf("over budget logged %d times, want 2", n)
	}
	if h.mgmt.Closed(id) {
		t.Fatal("over budget closed the connection")
	}
	// A new minute, a new budget: the resend goes through.
	h.clock.Advance(time.Minute)
	ackIs(t, batch(t, h, other, id, big(3)), 3.0, 1, 0, false)
	if n := len(telemetryObjects(t, h)); n != 3 {
		t.Errorf("%d objects stored, want 3", n)
	}
}

func TestTelemetryStorageFailureIsRetryable(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-s3down")
	id := h.authenticate("sat-s3down", tok)
	broken := h.build("message-broken", func(c *app.Config, _ *app.Options) { c.TelemetryBucket = "no-such-bucket" })
	body := `{"type":"telemetry_batch","batchId":9,"kind":"logstream","payload":[{"line":"a"},{"line":"b"}]}`
	first := h.clock.Now()
	ackIs(t, batch(t, h, broken, id, body), 9.0, 0, 0, true)
	// Forgotten: the agent's resend is handled again, and stored under the
	// first attempt's time, so under the key that attempt would have used
	// (where it finds whatever that attempt may have stored after all).
	h.clock.Advance(5 * time.Second)
	ackIs(t, batch(t, h, h.message, id, body), 9.0, 2, 0, false)
	objects := telemetryObjects(t, h)
	if len(objects) != 1 {
		t.Errorf("%d objects, want 1", len(objects))
	}
	for key := range objects {
		if !strings.Contains(key, "/"+first.Format("150405.000")+"Z_") {
			t.Errorf("the resend stored %s, not under the first attempt's time %s", key, first.Format("150405.000"))
		}
	}
}

// TestTelemetryIsAckedWhenTheBackendFails checks a batch gets a retryable
// ack even when the connection record cannot be read: the agent holds every
// batch until it is acked.
func TestTelemetryIsAckedWhenTheBackendFails(t *testing.T) {
	fault := &testenv.Fault{Match: func(op string, input any) bool {
		in, ok := input.(*dynamodb.GetItemInput)
		return op == "GetItem" && ok && aws.ToString(in.TableName) != ""
	}}
	h := newHarness(t)
	tok := h.satellite("sat-tel-down")
	id := h.authenticate("sat-tel-down", tok)
	cold := h.build("message-cold", func(c *app.Config, o *app.Options) {
		c.BindingCacheTTL = 0
		o.APIOptions = append(o.APIOptions, fault.APIOptions()...)
	})
	body := `{"type":"telemetry_batch","batchId":5,"kind":"logstream","payload":[1]}`
	_, _ = cold.WebSocket.Message(ctx, testenv.Raw(t, id, body))
	if fault.Fired() != 1 {
		t.Fatalf("the connection read was not failed")
	}
	ackIs(t, acksOf(t, h, id), 5.0, 0, 0, true)
	// The resend goes through.
	ackIs(t, batch(t, h, h.message, id, body), 5.0, 1, 0, false)
}

// TestTelemetryResendOfAFinishedBatchOverBudgetGetsItsCounts: dedupe comes
// before the budget. A resend of a batch already handled is re-acked with
// its remembered counts whatever the connection's budget says, and costs
// none of it; a new batch over budget still waits.
func TestTelemetryResendOfAFinishedBatchOverBudgetGetsItsCounts(t *testing.T) {
	h := newHarness(t, func(c *app.Config, _ *app.Options) { c.TelemetryBudget = protocol.MaxMessageBytes })
	tok := h.satellite("sat-resend")
	id := h.authenticate("sat-resend", tok)
	big := func(n int) string {
		return fmt.Sprintf(`{"type":"telemetry_batch","batchId":%d,"kind":"logstream","payload":[{"line":"%s"},{"line":"b"}]}`, n, strings.Repeat("x", 50_000))
	}
	ackIs(t, batch(t, h, h.message, id, big(1)), 1.0, 2, 0, false)
	// Resends within the budget are not charged to it...
	for range 3 {
		ackIs(t, batch(t, h, h.message, id, big(1)), 1.0, 2, 0, false)
	}
	ackIs(t, batch(t, h, h.message, id, big(2)), 2.0, 2, 0, false)
	// ...and past it they are still re-acked with their counts.
	other := h.build("message-b")
	ackIs(t, batch(t, h, h.message, id, big(1)), 1.0, 2, 0, false)
	ackIs(t, batch(t, h, other, id, big(2)), 2.0, 2, 0, false)
	ackIs(t, batch(t, h, h.message, id, big(3)), 3.0, 0, 0, true)
	if n := len(telemetryObjects(t, h)); n != 2 {
		t.Errorf("%d objects stored, want 2", n)
	}
}

// TestTelemetryOfARotatedTokenIsRefused: from the moment a satellite's token
// is rotated, a connection that authenticated with the old one stores no
// telemetry, even through the instance that trusts its binding from its
// cache: it is answered auth_failed and closed, as a result would be.
func TestTelemetryOfARotatedTokenIsRefused(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-rotated")
	id := h.authenticate("sat-rotated", tok)
	ackIs(t, batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":1,"kind":"logstream","payload":[1]}`), 1.0, 1, 0, false)
	// What the admin API's token rotation (and deletion) does first.
	if err := h.env.Registry().SetTokenHash(ctx, "sat-rotated", "$2a$10$rotatedrotatedrotatedrotatedrotatedrotatedrotatedrota"); err != nil {
		t.Fatal(err)
	}
	if acks := batch(t, h, h.message, id, `{"type":"telemetry_batch","batchId":2,"kind":"logstream","payload":[1]}`); len(acks) != 0 {
		t.Errorf("a revoked connection's batch was acked: %v", acks)
	}
	if got := lastFrame(t, h, id); got["type"] != "auth_failed" || !h.mgmt.Closed(id) {
		t.Errorf("revoked connection got %v (closed %v), want auth_failed and the close", got, h.mgmt.Closed(id))
	}
	if n := len(telemetryObjects(t, h)); n != 1 {
		t.Errorf("%d objects stored, want 1 (the batch before the rotation)", n)
	}
}

// TestTelemetryTakeoverOfAStoredBatchStoresItOnce: an instance claimed a
// batch, stored it and died before remembering its counts. The resend after
// the in-flight timeout writes to the same key, finds the object there
// (S3's 412 to If-None-Match: *), and acks it as stored: one object, the
// first one, never overwritten.
func TestTelemetryTakeoverOfAStoredBatchStoresItOnce(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-takeover")
	id := h.authenticate("sat-takeover", tok)
	body := `{"type":"telemetry_batch","batchId":5,"kind":"logstream","payload":[{"line":"a"},{"line":"b"}]}`
	msg, err := protocol.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	m := msg.(*protocol.TelemetryBatch)
	ledger := dynamo.NewTelemetryLedger(h.env.DB, h.env.TelemetryTable, h.env.Tables.Satellites)
	claim, err := ledger.ClaimBatch(ctx, connection(t, h, id), m.BatchKey, m.Size, app.DefaultTelemetryBudget, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	claimedAt := claim.ReceivedAt
	first := satellite.TelemetryBatch{SatelliteID: "sat-takeover", ConnectionID: id, Kind: m.Kind, BatchID: m.BatchID,
		Payload: m.Payload, Accepted: 2, ReceivedAt: claimedAt}
	if _, err := telemetryStore(t, h).Store(ctx, first); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(dynamo.InFlightTimeout + time.Second)
	ackIs(t, batch(t, h, h.message, id, body), 5.0, 2, 0, false)
	objects := telemetryObjects(t, h)
	if len(objects) != 1 {
		t.Fatalf("%d objects, want the first attempt's only", len(objects))
	}
	for _, b := range objects {
		var doc s3telemetry.Document
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if !doc.ReceivedAt.Equal(claimedAt) {
			t.Errorf("stored batch received at %s, want the first attempt's %s", doc.ReceivedAt, claimedAt)
		}
	}
	// And it is remembered: the next resend is re-acked without a PUT.
	h.calls["message"].Reset()
	ackIs(t, batch(t, h, h.message, id, body), 5.0, 2, 0, false)
	if n := s3Requests(h.calls["message"]); n != 0 {
		t.Errorf("%d S3 requests for a resend of a remembered batch", n)
	}
}

// telemetryStore is the telemetry bucket's store, as a function instance
// builds it.
func telemetryStore(t *testing.T, h *harness) *s3telemetry.Store {
	t.Helper()
	bucket := localaws.Bucket(h.env.S3Endpoint, h.env.TelemetryBucket)
	return s3telemetry.New(bucket)
}

// connection reads a connection's record as the message function does.
func connection(t *testing.T, h *harness, id string) satellite.Connection {
	t.Helper()
	c, err := h.env.Registry().Connection(ctx, id, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
