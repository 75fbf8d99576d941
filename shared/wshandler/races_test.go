package wshandler_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// The satellite reconnects before its old socket's $disconnect is processed:
// the old disconnect must neither mark the satellite disconnected nor drop the
// new connection.
func TestRaceReconnectBeforeOldDisconnect(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-re")
	old := h.authenticate("sat-re", tok)
	h.clock.Advance(time.Second)
	fresh := h.authenticate("sat-re", tok)
	h.clock.Advance(time.Second)
	h.close(old)

	sat := h.stored("sat-re")
	if sat.LastConnectionEvent != satellite.EdgeConnected || sat.ConnectionID != fresh {
		t.Errorf("after stale disconnect: edge %q connectionId %q, want connected on %s", sat.LastConnectionEvent, sat.ConnectionID, fresh)
	}
	if got := sat.StatusAt(h.clock.Now()); got != satellite.StatusOnline {
		t.Errorf("status = %s, want online", got)
	}
	if _, err := h.env.Registry().Connection(ctx, fresh, h.clock.Now()); err != nil {
		t.Errorf("new connection's record: %v", err)
	}
	if got := h.eventTypes("sat-re"); slices.Contains(got, "satellite.disconnected") {
		t.Errorf("stale disconnect emitted: %v", got)
	}
	// Now the new connection closes: that one counts.
	h.close(fresh)
	if got := h.stored("sat-re").LastConnectionEvent; got != satellite.EdgeDisconnected {
		t.Errorf("edge after current disconnect = %s", got)
	}
}

// Both orders, run concurrently many times: the stale disconnect and the
// newer authentication race inside DynamoDB, not only in sequence.
func TestRaceReconnectConcurrentWithOldDisconnect(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-conc")
	for i := 0; i < 10; i++ {
		old := h.authenticate("sat-conc", tok)
		fresh := h.open()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			h.mgmt.Drop(old)
			if _, err := h.disconnect.WebSocket.Disconnect(ctx, testenv.Event(t, "disconnect", old)); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := h.message.WebSocket.Message(ctx, testenv.Message(t, "authenticate", fresh, map[string]any{"clientId": "sat-conc", "token": tok})); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		sat := h.stored("sat-conc")
		if sat.ConnectionID != fresh || sat.LastConnectionEvent != satellite.EdgeConnected {
			t.Fatalf("round %d: connectionId %q edge %q, want connected on %s", i, sat.ConnectionID, sat.LastConnectionEvent, fresh)
		}
		h.close(fresh)
	}
}

// A heartbeat after the sweep marked the satellite heartbeat_lost: the link
// recovered without a reconnect, so the connected edge fires again, once.
func TestRaceHeartbeatAfterHeartbeatLost(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-lost")
	id := h.authenticate("sat-lost", tok)
	h.clock.Advance(2 * time.Minute)
	h.markEdge("sat-lost", satellite.EdgeHeartbeatLost)

	h.send(testenv.Message(t, "heartbeat", id, nil))
	h.clock.Advance(15 * time.Second)
	h.send(testenv.Message(t, "heartbeat", id, nil))

	sat := h.stored("sat-lost")
	if sat.LastConnectionEvent != satellite.EdgeConnected || sat.ConnectionID != id {
		t.Errorf("edge %q connectionId %q, want connected on %s", sat.LastConnectionEvent, sat.ConnectionID, id)
	}
	if got := h.eventTypes("sat-lost"); !slices.Equal(got, []string{"satellite.connected", "satellite.connected"}) {
		t.Errorf("events = %v, want the authentication's and exactly one restoring connected", got)
	}
	// The satellite is back in the sparse live index, so the next loss is seen.
	if got := liveIndexCount(t, h); got != 1 {
		t.Errorf("%d satellites in the live index, want 1", got)
	}
}

// A heartbeat after a $disconnect that got through while the connection was
// still alive (another connection of the satellite closed) restores it.
func TestRaceHeartbeatAfterDisconnectOfOtherConnection(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-two-links")
	older := h.authenticate("sat-two-links", tok)
	newer := h.authenticate("sat-two-links", tok)
	h.close(newer)
	if got := h.stored("sat-two-links").LastConnectionEvent; got != satellite.EdgeDisconnected {
		t.Fatalf("edge after current closed = %s", got)
	}
	h.send(testenv.Message(t, "heartbeat", older, nil))
	sat := h.stored("sat-two-links")
	if sat.LastConnectionEvent != satellite.EdgeConnected || sat.ConnectionID != older {
		t.Errorf("edge %q connectionId %q, want connected on the surviving %s", sat.LastConnectionEvent, sat.ConnectionID, older)
	}
}

// A heartbeat processed after its own connection's $disconnect (sent just
// before the close) must not bring the satellite back.
func TestRaceLateHeartbeatAfterOwnDisconnect(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-late")
	id := h.authenticate("sat-late", tok)
	// The message function read the connection record just before the close
	// was processed; its heartbeat write lands after the $disconnect.
	h.close(id)
	out, err := h.env.Registry().RecordHeartbeat(ctx, "sat-late", id, "1.0.0", nil, 0, h.clock.Now())
	if satellite.ErrorCode(err) != satellite.ECONFLICT {
		t.Fatalf("late heartbeat write: %+v, %v; want ECONFLICT", out, err)
	}
	// The same through the message function, which still trusts the binding
	// it cached at authentication: DynamoDB's condition refuses it.
	h.send(testenv.Message(t, "heartbeat", id, nil))
	if got := h.stored("sat-late").LastConnectionEvent; got != satellite.EdgeDisconnected {
		t.Errorf("edge = %s, want disconnected", got)
	}
}

// A result after reassignment is authorised against the new assignments at
// once.
func TestRaceResultAfterReassignment(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-move", assignment(t, "cfg-old", "sys-1"))
	id := h.authenticate("sat-move", tok)
	h.assign("sat-move", assignment(t, "cfg-new", "sys-1"))

	h.send(testenv.Message(t, "result", id, map[string]any{"configId": "cfg-old", "systemId": "sys-1"}))
	h.send(testenv.Message(t, "result", id, map[string]any{"configId": "cfg-new", "systemId": "sys-1"}))

	if r, _ := h.env.Registry().LatestResults(ctx, "cfg-old", "sys-1", nil, 5); len(r) != 0 {
		t.Errorf("result for the removed assignment stored")
	}
	if r, _ := h.env.Registry().LatestResults(ctx, "cfg-new", "sys-1", nil, 5); len(r) != 1 {
		t.Errorf("result for the new assignment: %d stored, want 1", len(r))
	}
}

// liveIndexCount counts the satellites in the sparse live index.
func liveIndexCount(t *testing.T, h *harness) int {
	t.Helper()
	n := 0
	for _, shard := range dynamo.LiveShardKeys() {
		out, err := h.env.DB.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(h.env.Tables.Satellites),
			IndexName:                 aws.String(dynamo.LiveIndex),
			KeyConditionExpression:    aws.String("liveShard = :s"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberS{Value: shard}},
		})
		if err != nil {
			t.Fatal(err)
		}
		n += len(out.Items)
	}
	return n
}

// TestLateHeartbeatOfAClosedOlderConnectionAdoptsNothing: A then B
// authenticate (B is current), A closes, B closes; a heartbeat A sent just
// before its close is handled last. The satellite has no current connection,
// and A's record is gone: it must stay disconnected, not adopt A.
func TestLateHeartbeatOfAClosedOlderConnectionAdoptsNothing(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-late")
	a := h.authenticate("sat-late", tok)
	b := h.authenticate("sat-late", tok)
	late := testenv.Message(t, "heartbeat", a, nil)
	h.close(a)
	h.close(b)
	h.send(late)
	if sat := h.stored("sat-late"); sat.ConnectionID != "" || sat.LastConnectionEvent != satellite.EdgeDisconnected {
		t.Errorf("after a late heartbeat of a closed connection: connection %q, edge %s; want none, disconnected", sat.ConnectionID, sat.LastConnectionEvent)
	}
	if got := h.eventTypes("sat-late"); !slices.Equal(got, []string{"satellite.connected", "satellite.connected", "satellite.disconnected"}) {
		t.Errorf("events %v", got)
	}
}

// TestHeartbeatOfALiveConnectionIsAdopted: a satellite that lost its
// current connection record but whose other connection is alive and bound
// takes that connection back on its heartbeat.
func TestHeartbeatOfALiveConnectionIsAdopted(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-adopt")
	a := h.authenticate("sat-adopt", tok)
	b := h.authenticate("sat-adopt", tok)
	h.close(b) // the current one: disconnected, no current connection
	h.clock.Advance(10 * time.Second)
	h.send(testenv.Message(t, "heartbeat", a, nil))
	if sat := h.stored("sat-adopt"); sat.ConnectionID != a || sat.LastConnectionEvent != satellite.EdgeConnected {
		t.Errorf("after a heartbeat of the live connection: connection %q, edge %s; want %q, connected", sat.ConnectionID, sat.LastConnectionEvent, a)
	}
	if got := h.eventTypes("sat-adopt"); len(got) != 4 || got[3] != "satellite.connected" {
		t.Errorf("events %v, want the adoption's connected last", got)
	}
}

// afterAuthorisation runs fn once, right after the first consistent read of
// an assignment item (the read that authorises a result) returns.
func afterAuthorisation(fn func()) harnessOption {
	var once sync.Once
	return func(_ *app.Config, o *app.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("test.afterAuthorisation",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					out, md, err := next.HandleInitialize(ctx, in)
					if get, ok := in.Parameters.(*dynamodb.GetItemInput); ok && aws.ToBool(get.ConsistentRead) {
						if sk, _ := get.Key["sk"].(*types.AttributeValueMemberS); sk != nil && strings.HasPrefix(sk.Value, "ASSIGN#") {
							once.Do(fn)
						}
					}
					return out, md, err
				}), middleware.After)
		})
	}
}

// TestRotationBoundsResultsByTheirArrival holds the revocation guarantee of
// a result, a consistent read and a put: a token rotated at T refuses every
// result handled after T (it reaches the backend after T), on the very
// instance that trusts the connection's binding in its cache; a result
// already authorised when the rotation commits, sent before T, is stored
// by the invocation handling it, at the latest the message function's
// timeout after T. The rotation here commits between the read and the put.
func TestRotationBoundsResultsByTheirArrival(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-flight", assignment(t, "cfg-1", "sys-1"))
	var rotated bool
	msg := h.build("message-rotated-in-flight", afterAuthorisation(func() {
		if err := h.env.Registry().SetTokenHash(ctx, "sat-flight", "$2a$10$rotated"); err != nil {
			t.Error(err)
		}
		rotated = true
	}))
	id := h.open()
	if _, err := msg.WebSocket.Message(ctx, testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-flight", "token": tok})); err != nil {
		t.Fatal(err)
	}
	result := func(resultID string) {
		t.Helper()
		ev := testenv.Message(t, "result", id, map[string]any{"configId": "cfg-1", "systemId": "sys-1"})
		ev.RequestContext.RequestID = resultID
		if _, err := msg.WebSocket.Message(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	result("in-flight=")
	if !rotated {
		t.Fatal("the rotation did not run inside the result's handling")
	}
	h.clock.Advance(time.Second)
	result("after-rotation=")

	stored, err := h.env.Registry().LatestResults(ctx, "cfg-1", "sys-1", nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range stored {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"in-flight="}) {
		t.Errorf("stored results %q; want only the one authorised before the rotation", ids)
	}
	frames := h.mgmt.Frames(t, id)
	if last := frames[len(frames)-1]; last["type"] != "auth_failed" || !h.mgmt.Closed(id) {
		t.Errorf("the result after the rotation got %v (closed %v), want auth_failed and the close", last, h.mgmt.Closed(id))
	}
}
