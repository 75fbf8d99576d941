package sweep_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/lifecyclelog"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

// failingSink fails the first n publications, as a sweep that dies (or an
// EventBridge outage) between its write and its publish.
type failingSink struct {
	satellite.LifecycleSink
	mu   sync.Mutex
	left int
}

func (f *failingSink) Emit(ctx context.Context, e satellite.LifecycleEvent) error {
	f.mu.Lock()
	if f.left > 0 {
		f.left--
		f.mu.Unlock()
		return errors.New("publication failed")
	}
	f.mu.Unlock()
	return f.LifecycleSink.Emit(ctx, e)
}

type harness struct {
	t      *testing.T
	env    *testenv.Env
	mgmt   *testenv.ManagementAPI
	clock  *testenv.Clock
	events *testenv.SafeBuffer
	reg    *dynamo.Registry
	a      *app.App
	calls  *testenv.Calls
	sink   *failingSink
	t0     time.Time
	logs   *testenv.SafeBuffer
	slept  []time.Duration // the sweep's waits between passes
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	h := &harness{t: t, env: testenv.New(t), mgmt: testenv.NewManagementAPI(t), clock: testenv.NewClock(t0), events: &testenv.SafeBuffer{}, t0: t0}
	log, logs := testenv.LogBuffer()
	h.sink = &failingSink{LifecycleSink: lifecyclelog.New(log, h.events)}
	h.a, h.calls = h.env.App(t, h.env.Config(h.mgmt.URL), app.Options{Now: h.clock.Now, Lifecycle: h.sink, Log: log})
	h.reg = h.env.Registry()
	h.logs = logs
	// Between passes the sweep waits on its clock, which the test moves.
	h.a.Sweep.Sleep = func(_ context.Context, d time.Duration) error {
		h.slept = append(h.slept, d)
		h.clock.Advance(d)
		return nil
	}
	return h
}

// connect makes a satellite with a live, authenticated connection whose last
// heartbeat was at.
func (h *harness) connect(id string, threshold time.Duration, at time.Time) string {
	h.t.Helper()
	sat := satellite.Satellite{ID: id, Name: "Sat " + id, Region: "r1", TokenHash: "hash", CreatedAt: at, OfflineThreshold: threshold}
	if err := h.reg.CreateSatellite(ctx, sat); err != nil {
		h.t.Fatal(err)
	}
	conn := "conn-" + id
	h.mgmt.Open(conn)
	if err := h.reg.OpenConnection(ctx, satellite.Connection{ID: conn, ConnectedAt: at, ExpiresAt: at.Add(satellite.ConnectionRecordTTL)}); err != nil {
		h.t.Fatal(err)
	}
	edge, err := h.reg.BindConnection(ctx, conn, sat, "hash", nil, at)
	if err != nil {
		h.t.Fatal(err)
	}
	// As the message function does once it published the connected edge.
	if err := h.reg.ConfirmEdge(ctx, id, edge.ID); err != nil {
		h.t.Fatal(err)
	}
	return conn
}

func (h *harness) sweep() sweepReport {
	h.t.Helper()
	r, err := h.a.Sweep.Sweep(ctx)
	if err != nil {
		h.t.Fatalf("sweep: %v", err)
	}
	return sweepReport{r.Stale, r.HeartbeatLost, r.Republished, r.ClosedUnauthenticated, r.RemovedExpired, r.Online}
}

type sweepReport struct{ stale, lost, republished, closedUnauth, removedExpired, online int }

func (h *harness) lines() []lifecyclelog.Line {
	var out []lifecyclelog.Line
	for _, l := range strings.Split(h.events.String(), "\n") {
		if l == "" {
			continue
		}
		var line lifecyclelog.Line
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, line)
	}
	return out
}

func (h *harness) lost() map[string][]string {
	out := map[string][]string{}
	for _, l := range h.lines() {
		if l.DetailType == "satellite.heartbeat_lost" {
			out[l.Detail.SatelliteID] = append(out[l.Detail.SatelliteID], l.Detail.EdgeID)
		}
	}
	return out
}

func TestSweepUsesEachSatellitesThreshold(t *testing.T) {
	h := newHarness(t)
	h.connect("sat-default", 0, h.t0)
	h.connect("sat-patient", 10*time.Minute, h.t0)
	h.connect("sat-recent", 0, h.t0.Add(40*time.Second))

	h.clock.Set(h.t0.Add(45 * time.Second))
	if r := h.sweep(); r.lost != 0 {
		t.Errorf("at exactly the threshold: %+v, want nothing lost", r)
	}
	h.clock.Set(h.t0.Add(50 * time.Second))
	if r := h.sweep(); r.stale != 1 || r.lost != 1 {
		t.Errorf("at 50 s: %+v, want sat-default lost", r)
	}
	lost := h.lost()
	if len(lost) != 1 || len(lost["sat-default"]) != 1 {
		t.Fatalf("events: %v", lost)
	}
	line := h.lines()[0]
	if p := line.Detail; p.Status != satellite.StatusOffline || p.Name != "Sat sat-default" || p.Region != "r1" || p.LastSeenAt == nil || *p.LastSeenAt != "2026-11-27T08:00:00Z" {
		t.Errorf("payload = %+v", p)
	}
	if want := dynamo.HeartbeatLostEdgeID("sat-default", h.t0.Add(45*time.Second)); line.Detail.EdgeID != want {
		t.Errorf("edgeId %s, want %s", line.Detail.EdgeID, want)
	}
	sat, _, _ := h.reg.Satellite(ctx, "sat-default")
	if sat.LastConnectionEvent != satellite.EdgeHeartbeatLost || sat.Pending != nil {
		t.Errorf("after sweep: edge %s pending %+v, want heartbeat_lost and confirmed", sat.LastConnectionEvent, sat.Pending)
	}
	h.clock.Set(h.t0.Add(55 * time.Second))
	if r := h.sweep(); r.lost != 0 || r.stale != 0 {
		t.Errorf("second sweep: %+v, want nothing new", r)
	}
	h.clock.Set(h.t0.Add(11 * time.Minute))
	if r := h.sweep(); r.lost != 2 {
		t.Errorf("at 11 min: %+v, want the other two lost", r)
	}
}

func TestHeartbeatAfterLossThenLosingAgainFiresAgain(t *testing.T) {
	h := newHarness(t)
	conn := h.connect("sat-flap", 0, h.t0)
	h.clock.Set(h.t0.Add(time.Minute))
	h.sweep()
	// The link recovers without a reconnect.
	if out, err := h.reg.RecordHeartbeat(ctx, "sat-flap", conn, "1", nil, 0, h.clock.Now()); err != nil || !out.Restored {
		t.Fatalf("heartbeat: %+v, %v", out, err)
	}
	h.clock.Set(h.t0.Add(3 * time.Minute))
	h.sweep()
	if ids := h.lost()["sat-flap"]; len(ids) != 2 || ids[0] == ids[1] {
		t.Errorf("heartbeat_lost edges %v, want two distinct", ids)
	}
}

func TestConcurrentSweepsPublishEachEdgeOnce(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 20; i++ {
		h.connect(fmt.Sprintf("sat-%02d", i), 0, h.t0)
	}
	h.clock.Set(h.t0.Add(time.Minute))
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.a.Sweep.Sweep(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	lost := h.lost()
	if len(lost) != 20 {
		t.Errorf("%d satellites got heartbeat_lost, want 20", len(lost))
	}
	for id, ids := range lost {
		if len(ids) != 1 {
			t.Errorf("%s: %d events, want exactly 1", id, len(ids))
		}
	}
}

func TestEdgeSurvivesACrashBetweenWriteAndPublish(t *testing.T) {
	h := newHarness(t)
	h.connect("sat-crash", 0, h.t0)
	h.clock.Set(h.t0.Add(time.Minute))
	h.sink.left = 1
	if _, err := h.a.Sweep.Sweep(ctx); err == nil {
		t.Fatal("sweep with a failed publication reported success")
	}
	if len(h.lost()) != 0 {
		t.Fatal("event published despite the failure")
	}
	sat, _, _ := h.reg.Satellite(ctx, "sat-crash")
	if sat.LastConnectionEvent != satellite.EdgeHeartbeatLost || len(sat.Pending) != 1 {
		t.Fatalf("edge not stored as pending: %+v", sat)
	}
	// A sweep soon after does not republish (the first might still be
	// publishing); one after RepublishAfter does, with the same edge id.
	h.clock.Set(h.t0.Add(90 * time.Second))
	if r := h.sweep(); r.republished != 0 {
		t.Errorf("republished within the grace period")
	}
	h.clock.Set(h.t0.Add(4 * time.Minute))
	if r := h.sweep(); r.republished != 1 {
		t.Errorf("report %+v, want the pending edge republished", r)
	}
	ids := h.lost()["sat-crash"]
	if len(ids) != 1 || ids[0] != sat.Pending[0].ID {
		t.Errorf("events %v, want one with the stored edge id %s", ids, sat.Pending[0].ID)
	}
	h.clock.Set(h.t0.Add(10 * time.Minute))
	if r := h.sweep(); r.republished != 0 {
		t.Errorf("confirmed edge republished again")
	}
}

// TestPendingEdgeSurvivesTheHeartbeatThatSupersedesIt checks an edge the
// sweep recorded but died before publishing is still published when a
// heartbeat restores the satellite first: both edges are in the outbox, the
// heartbeat publishes its own, and the sweep the other.
func TestPendingEdgeSurvivesTheHeartbeatThatSupersedesIt(t *testing.T) {
	h := newHarness(t)
	conn := h.connect("sat-super", 0, h.t0)
	h.clock.Set(h.t0.Add(time.Minute))
	// The sweep's write lands; the sweep dies before publishing.
	stale, err := h.reg.StaleSatellites(ctx, h.clock.Now())
	if err != nil || len(stale) != 1 {
		t.Fatalf("stale = %v, %v", stale, err)
	}
	won, lost, err := h.reg.MarkHeartbeatLost(ctx, stale[0], h.clock.Now())
	if !won || err != nil {
		t.Fatalf("mark: %v %v", won, err)
	}
	// A heartbeat through the message function comes first.
	ev := testenv.Message(t, "heartbeat", conn, nil)
	h.clock.Set(h.t0.Add(70 * time.Second))
	if _, err := h.a.WebSocket.Message(ctx, ev); err != nil {
		t.Fatal(err)
	}
	types := func() string {
		var out []string
		for _, l := range h.lines() {
			out = append(out, l.DetailType)
		}
		return strings.Join(out, ",")
	}
	if got := types(); got != "satellite.connected" {
		t.Fatalf("events %v, want the heartbeat's connected", got)
	}
	h.clock.Set(h.t0.Add(4 * time.Minute))
	if r := h.sweep(); r.republished != 1 {
		t.Errorf("report %+v, want the sweep's lost edge published", r)
	}
	if got := types(); !strings.HasPrefix(got, "satellite.connected,satellite.heartbeat_lost") {
		t.Errorf("events %v, want the heartbeat's connected, then the sweep's lost edge (consumers order them by time)", got)
	}
	if ids := h.lost()["sat-super"]; len(ids) == 0 || ids[0] != lost.ID || slices.Index(ids[1:], lost.ID) >= 0 {
		t.Errorf("heartbeat_lost events %v, want the recorded edge %s exactly once", ids, lost.ID)
	}
	h.clock.Set(h.t0.Add(10 * time.Minute))
	if r := h.sweep(); r.republished != 0 {
		t.Errorf("a confirmed edge was republished")
	}
}

// TestSweepReadsGrowWithStaleSatellitesNotTheFleet counts what one sweep
// reads with 2,000 connected satellites of which 5 are stale.
func TestSweepReadsGrowWithStaleSatellitesNotTheFleet(t *testing.T) {
	h := newHarness(t)
	const fleet, staleCount = 2000, 5
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id := fmt.Sprintf("sat-%04d", i)
				at := h.t0.Add(time.Minute)
				if i < staleCount {
					at = h.t0
				}
				sat := satellite.Satellite{ID: id, Name: id, Region: "r", TokenHash: "h", CreatedAt: h.t0}
				if err := h.reg.CreateSatellite(ctx, sat); err != nil {
					t.Error(err)
					continue
				}
				if err := h.reg.OpenConnection(ctx, satellite.Connection{ID: "conn-" + id, ConnectedAt: at, ExpiresAt: at.Add(satellite.ConnectionRecordTTL)}); err != nil {
					t.Error(err)
					continue
				}
				if _, err := h.reg.BindConnection(ctx, "conn-"+id, sat, "h", nil, at); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := 0; i < fleet; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	// A first sweep, before any is stale, finds the fleet index complete
	// (every satellite was created with its entry): from then on this
	// instance does not look again.
	if r := h.sweep(); r.stale != 0 {
		t.Fatalf("first sweep: %+v, want nothing stale yet", r)
	}
	h.clock.Set(h.t0.Add(50 * time.Second))
	h.calls.Reset()
	r := h.sweep()
	if r.lost != staleCount {
		t.Fatalf("report %+v, want %d lost", r, staleCount)
	}
	reads, counts, items := 0, 0, h.calls.ItemsRead()
	for _, c := range h.calls.All() {
		if q, ok := c.Input.(*dynamodb.QueryInput); ok && q.Select == types.SelectCount {
			counts++ // the online gauge: counted, not read
			continue
		}
		if c.Operation == "Query" || c.Operation == "Scan" || c.Operation == "GetItem" || c.Operation == "BatchGetItem" {
			reads++
		}
	}
	// Constant: one query per shard of the live index, the outbox and the
	// two connection indexes, and one batch read of the stale satellites'
	// items. Items: exactly the stale satellites, their keys from the index
	// (which projects keys only) and then their items.
	if wantReads := dynamo.LiveShards + dynamo.OutboxShards + 2*dynamo.ConnectionShards + 1; reads > wantReads || items != 2*staleCount {
		t.Errorf("sweep read %d items in %d requests; want %d items in at most %d requests", items, reads, 2*staleCount, wantReads)
	}
	// The gauge of satellites online counts the live index, one page per
	// shard at this size; it returns no items.
	if counts != dynamo.LiveShards || r.online != fleet-staleCount {
		t.Errorf("online gauge: %d count queries, %d online; want %d queries, %d online", counts, r.online, dynamo.LiveShards, fleet-staleCount)
	}
	t.Logf("2,000 satellites, %d stale: %d read requests, %d items read, %d count queries, %d DynamoDB requests in all", staleCount, reads, items, counts, h.calls.Count("DynamoDB"))

	// The steady state, nothing stale, for the cost model (make cost): a
	// full pass (the minute's first) and a later pass, which reads one
	// query per live shard and nothing else.
	h.calls.Reset()
	h.sweep()
	full, fullRequests, fullQueries, gauge := testenv.Capacity{}, 0, 0, testenv.Capacity{}
	for _, c := range h.calls.All() {
		q, ok := c.Input.(*dynamodb.QueryInput)
		if ok && q.Select == types.SelectCount {
			gauge = gauge.Add(c.Capacity)
			continue
		}
		if ok {
			fullQueries++
		}
		full, fullRequests = full.Add(c.Capacity), fullRequests+1
	}
	fullMs := testenv.MedianMs(t, 5, func() error { _, err := h.a.Sweep.Sweep(ctx); return err })
	h.calls.Reset()
	if _, err := h.a.Sweep.StalePass(ctx); err != nil {
		t.Fatal(err)
	}
	later, laterRequests := h.calls.Capacity(), h.calls.Count("DynamoDB")
	if laterRequests != dynamo.LiveShards || h.calls.ItemsRead() != 0 {
		t.Errorf("a later pass with nothing stale: %d requests, %d items; want %d queries and no item", laterRequests, h.calls.ItemsRead(), dynamo.LiveShards)
	}
	laterMs := testenv.MedianMs(t, 21, func() error { _, err := h.a.Sweep.StalePass(ctx); return err })
	t.Logf("steady state: full pass %d requests, %.1f read units, %.1f ms; later pass %d requests, %.1f read units, %.1f ms; online gauge %.1f read units for %d",
		fullRequests, full.Read, fullMs, laterRequests, later.Read, laterMs, gauge.Read, fleet-staleCount)
	testenv.WriteFigures(t, "sweep.json", map[string]float64{
		"fullPassRequests": float64(fullRequests), "fullPassQueries": float64(fullQueries), "fullPassReadUnits": full.Read, "fullPassMs": fullMs,
		"laterPassRequests": float64(laterRequests), "laterPassReadUnits": later.Read, "laterPassMs": laterMs,
		"gaugeReadUnits": gauge.Read, "gaugeSatellites": float64(fleet - staleCount),
	})
}

func TestUnauthenticatedConnectionsAreClosedAfterTheDeadline(t *testing.T) {
	h := newHarness(t)
	authed := h.connect("sat-ok", 10*time.Minute, h.t0)
	for _, id := range []string{"conn-silent", "conn-young", "conn-vanished"} {
		at := h.t0
		if id == "conn-young" {
			at = h.t0.Add(20 * time.Second)
		}
		if id != "conn-vanished" {
			h.mgmt.Open(id)
		}
		if err := h.reg.OpenConnection(ctx, satellite.Connection{ID: id, ConnectedAt: at, ExpiresAt: at.Add(satellite.ConnectionRecordTTL)}); err != nil {
			t.Fatal(err)
		}
	}
	h.clock.Set(h.t0.Add(31 * time.Second))
	r := h.sweep()
	if r.closedUnauth != 2 {
		t.Errorf("report %+v, want 2 closed (silent, vanished)", r)
	}
	if !h.mgmt.Closed("conn-silent") || h.mgmt.Closed("conn-young") || h.mgmt.Closed(authed) {
		t.Errorf("closed: silent %v young %v authenticated %v", h.mgmt.Closed("conn-silent"), h.mgmt.Closed("conn-young"), h.mgmt.Closed(authed))
	}
	for id, want := range map[string]bool{"conn-silent": false, "conn-vanished": false, "conn-young": true, authed: true} {
		_, err := h.reg.Connection(ctx, id, h.clock.Now())
		if got := err == nil; got != want {
			t.Errorf("record of %s present = %v, want %v", id, got, want)
		}
	}
}

// TestConnectionIndexesAreSharded checks that no connection index puts every
// connection in one partition (a partition takes about 1,000 writes/s, and
// every $connect writes both indexes), and that the sweep still finds what
// it must in every shard.
func TestConnectionIndexesAreSharded(t *testing.T) {
	h := newHarness(t)
	const n = 64
	for i := range n {
		id := fmt.Sprintf("conn-shard-%02d=", i)
		h.mgmt.Open(id)
		if err := h.reg.OpenConnection(ctx, satellite.Connection{ID: id, ConnectedAt: h.t0, ExpiresAt: h.t0.Add(satellite.ConnectionRecordTTL)}); err != nil {
			t.Fatal(err)
		}
	}
	bound := h.connect("sat-shard", 24*time.Hour, h.t0)
	partitions := map[string]map[string]bool{dynamo.UnauthenticatedIndexPartKey: {}, dynamo.ExpiryIndexPartKey: {}}
	for _, it := range testenv.ScanAll(t, h.env.DB, h.env.Tables.Connections) {
		for attr, seen := range partitions {
			if v, ok := it[attr].(*types.AttributeValueMemberS); ok {
				seen[v.Value] = true
			}
		}
	}
	for attr, seen := range partitions {
		if len(seen) != dynamo.ConnectionShards {
			t.Errorf("%s takes %d values over %d connections, want %d shards: %v", attr, len(seen), n+1, dynamo.ConnectionShards, seen)
		}
	}

	h.clock.Set(h.t0.Add(31 * time.Second))
	if r := h.sweep(); r.closedUnauth != n {
		t.Errorf("report %+v, want all %d unauthenticated connections closed", r, n)
	}
	h.clock.Set(h.t0.Add(satellite.ConnectionRecordTTL + time.Minute))
	if r := h.sweep(); r.removedExpired != 1 {
		t.Errorf("report %+v, want the bound connection's expired record removed", r)
	}
	if _, err := h.reg.Connection(ctx, bound, h.t0); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("expired record still stored: %v", err)
	}
}

func TestExpiredConnectionRecordsAreRemoved(t *testing.T) {
	h := newHarness(t)
	conn := h.connect("sat-old", 24*time.Hour, h.t0)
	h.clock.Set(h.t0.Add(satellite.ConnectionRecordTTL + time.Minute))
	r := h.sweep()
	if r.removedExpired != 1 {
		t.Errorf("report %+v, want 1 expired record removed", r)
	}
	if _, err := h.reg.Connection(ctx, conn, h.t0); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("expired record still stored: %v", err)
	}
	sat, _, _ := h.reg.Satellite(ctx, "sat-old")
	if sat.LastConnectionEvent != satellite.EdgeDisconnected {
		t.Errorf("satellite whose current connection expired: edge %s, want disconnected", sat.LastConnectionEvent)
	}
	if !bytes.Contains([]byte(h.events.String()), []byte("satellite.disconnected")) {
		t.Errorf("no disconnected event")
	}
}

// TestSweepPolicyGrantsExactlyWhatItCalls runs every kind of sweep work and
// checks SweepFunction's IAM policy against the requests it made.
func TestSweepPolicyGrantsExactlyWhatItCalls(t *testing.T) {
	eb := testenv.NewEventBridge(t)
	h := newHarness(t)
	cfg := h.env.Config(h.mgmt.URL)
	cfg.EventBusName = "default"
	log, _ := testenv.LogBuffer()
	a, calls := h.env.App(t, cfg, app.Options{Now: h.clock.Now, Log: log, Endpoints: app.Endpoints{EventBridge: eb.URL}})
	h.connect("sat-iam", 0, h.t0)
	conn := h.connect("sat-expiring", 24*time.Hour, h.t0)
	h.mgmt.Open("conn-unauth")
	if err := h.reg.OpenConnection(ctx, satellite.Connection{ID: "conn-unauth", ConnectedAt: h.t0, ExpiresAt: h.t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(h.t0.Add(time.Minute))
	if _, err := a.Sweep.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(h.t0.Add(satellite.ConnectionRecordTTL + time.Minute))
	if _, err := a.Sweep.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reg.Connection(ctx, conn, h.t0); err == nil {
		t.Fatal("scenario did not remove an expired record")
	}
	testenv.CheckPolicy(t, testenv.Template(t), "SweepFunction", calls, h.env.TableNames, "")
}

// TestScheduleFixture invokes the Lambda handler with events/sweep-schedule.json,
// the event EventBridge sends.
func TestScheduleFixture(t *testing.T) {
	h := newHarness(t)
	h.connect("sat-fixture", 0, h.t0)
	h.clock.Set(h.t0.Add(time.Minute))
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "events", "sweep-schedule.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(b, &ev); err != nil || ev.DetailType != "Scheduled Event" {
		t.Fatalf("fixture: %+v, %v", ev, err)
	}
	if err := h.a.Sweep.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if len(h.lost()["sat-fixture"]) != 1 {
		t.Errorf("sweep through the handler did not report the lost satellite")
	}
}

// TestSweepRecordsTheFleetGauges checks the metrics a sweep invocation
// writes: the satellites online, the stale ones its passes found, the
// heartbeat_lost edges they published and each pass's duration, in one
// flush at the end of the invocation.
func TestSweepRecordsTheFleetGauges(t *testing.T) {
	h := newHarness(t)
	out := &testenv.SafeBuffer{}
	cfg := h.env.Config(h.mgmt.URL)
	cfg.StackName = "prod-eu"
	a, _ := h.env.App(t, cfg, app.Options{Now: h.clock.Now, Lifecycle: h.sink, MetricsOutput: out})
	a.Sweep.Sleep = h.a.Sweep.Sleep
	// Online through the invocation's four passes.
	for i := range 3 {
		h.connect(fmt.Sprintf("sat-live-%d", i), 2*time.Minute, h.t0.Add(-30*time.Second))
	}
	h.connect("sat-quiet", time.Minute, h.t0.Add(-3*time.Minute))
	// A sweep outside the first minute of a sweep.OnlineEvery period
	// takes no gauge; the one inside does.
	h.clock.Set(h.t0.Add(-150 * time.Second))
	if r := h.sweep(); r.online != -1 || r.stale != 0 {
		t.Fatalf("sweep at %s: %+v; want no count and nothing stale", h.clock.Now().Format(time.TimeOnly), r)
	}
	h.clock.Set(h.t0.Add(time.Second))
	if err := a.Sweep.Handle(ctx, events.CloudWatchEvent{}); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float64{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		ms, ok := metrics.Decode([]byte(line))
		if !ok {
			t.Fatalf("not an EMF line: %s", line)
		}
		for _, m := range ms {
			if m.Dimensions[metrics.StackDimension] != "prod-eu" {
				t.Errorf("%s has Stack %q", m.Name, m.Dimensions[metrics.StackDimension])
			}
			name := m.Name
			if edge := m.Dimensions["Edge"]; edge != "" {
				name += "/" + edge
			}
			got[name] = append(got[name], m.Values...)
		}
	}
	for name, want := range map[string]float64{"SatellitesOnline": 3, "StaleSatellites": 1, "Edges/heartbeat_lost": 1} {
		if v := got[name]; len(v) != 1 || v[0] != want {
			t.Errorf("%s = %v, want %v (all: %v)", name, v, want, got)
		}
	}
	// One sample a pass, timed with the injected clock, which stands still
	// while a pass runs here; the gauge and the stale count come from the
	// first pass (the count is summed over the passes).
	if v := got["SweepDuration"]; len(v) != sweep.Passes || slices.Max(v) != 0 {
		t.Errorf("SweepDuration = %v, want %d samples of 0 ms", v, sweep.Passes)
	}
}

// TestSweepStopsBeforeItsDeadline runs a sweep whose invocation is already
// within sweep.DeadlineMargin of its deadline: it starts nothing, reports
// what it left, and the next sweep does it all.
func TestSweepStopsBeforeItsDeadline(t *testing.T) {
	h := newHarness(t)
	for i := range 25 {
		h.connect(fmt.Sprintf("sat-%02d", i), time.Minute, h.t0)
	}
	h.clock.Set(h.t0.Add(3 * time.Minute))
	late, cancel := context.WithDeadline(ctx, time.Now().Add(sweep.DeadlineMargin-time.Millisecond))
	defer cancel()
	r, err := h.a.Sweep.Sweep(late)
	if err != nil || r.Stale != 25 || r.HeartbeatLost != 0 || r.Deferred != 25 {
		t.Fatalf("sweep near its deadline: %+v, %v; want 25 stale, none lost, 25 deferred", r, err)
	}
	if got := h.sweep(); got.lost != 25 {
		t.Fatalf("next sweep: %+v; want all 25 lost", got)
	}
	if got := strings.Count(h.events.String(), "heartbeat_lost"); got != 25 {
		t.Fatalf("%d heartbeat_lost events published, want 25", got)
	}
}

// TestSweepHandsUnpublishedEdgesToALaterSweep marks satellites lost in a
// sweep that cannot publish (as one the deadline stops between marking and
// publishing): the edges stay in the outbox and a later sweep republishes
// every one.
func TestSweepHandsUnpublishedEdgesToALaterSweep(t *testing.T) {
	h := newHarness(t)
	for i := range 12 {
		h.connect(fmt.Sprintf("sat-%02d", i), time.Minute, h.t0)
	}
	h.clock.Set(h.t0.Add(3 * time.Minute))
	h.sink.mu.Lock()
	h.sink.left = 12 // every publication of this sweep fails
	h.sink.mu.Unlock()
	if r, err := h.a.Sweep.Sweep(ctx); err == nil || r.HeartbeatLost != 0 {
		t.Fatalf("sweep with publication failing: %+v, %v; want an error and nothing published", r, err)
	}
	h.clock.Advance(h.env.Config("").RepublishAfter + time.Second)
	if r := h.sweep(); r.republished != 12 || r.lost != 0 {
		t.Fatalf("later sweep: %+v; want 12 republished", r)
	}
}
