package wshandler_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

// TestHeartbeatCapacityInSteadyState measures, with DynamoDB's own
// ReturnConsumedCapacity, what a connected satellite's heartbeats cost
// over ten minutes at the default 15 s interval, on the warm instance that
// saw it authenticate. The satellite carries the largest profile the admin
// API accepts (50 tags of 128 + 256 characters, about 19 KB), which a
// heartbeat must not pay for.
//
// What it holds, per heartbeat: no read unit; exactly one write unit on the
// table (the satellite item stays under 1 KB); and the live index written
// only when the rounded deadline moves, once per dynamo.DeadlineStep (a
// delete and a put: two units). So 40 heartbeats cost 40 + 2 x 10 units,
// 1.5 on average. Less is not possible while every heartbeat is recorded
// (DynamoDB bills at least one unit per write) and the sweep reads only
// stale satellites (which needs an index keyed by a deadline that moves).
func TestHeartbeatCapacityInSteadyState(t *testing.T) {
	h := newHarness(t)
	sweeper := h.build("sweep")
	tok, err := token.New()
	if err != nil {
		t.Fatal(err)
	}
	hash, err := token.Hash(tok)
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for i := range 50 {
		tags[fmt.Sprintf("%03d-%s", i, strings.Repeat("k", 124))] = strings.Repeat("v", 256)
	}
	const id = "sat-steady"
	if err := h.env.Registry().CreateSatellite(ctx, satellite.Satellite{
		ID: id, Name: strings.Repeat("n", 128), Region: "eu-central-1", Tags: tags, TokenHash: hash, CreatedAt: h.clock.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	// Off the minute, as a satellite's clock would be.
	h.clock.Advance(7 * time.Second)
	conn := h.authenticateWith(id, tok, map[string]any{"capabilities": []string{"scripts", "scrape", "telemetry"}})
	calls := h.calls["message"]

	const interval, period = 15 * time.Second, 10 * time.Minute
	beats := int(period / interval)
	var total testenv.Capacity
	for range beats {
		h.clock.Advance(interval)
		calls.Reset()
		h.send(testenv.Message(t, "heartbeat", conn, map[string]any{"version": "1.4.2"}))
		units := calls.Capacity()
		if units.Read != 0 {
			t.Errorf("heartbeat at %s: %.1f read units, want 0", h.clock.Now().Format(time.TimeOnly), units.Read)
		}
		if table := units.Write - units.IndexWrite; table != 1 {
			t.Errorf("heartbeat at %s: %.1f write units on the table, want 1", h.clock.Now().Format(time.TimeOnly), table)
		}
		total = total.Add(units)
	}
	moves := int(period / dynamo.DeadlineStep)
	if total.IndexWrite > float64(2*moves) {
		t.Errorf("%d heartbeats wrote %.0f units to the live index, want at most %d (one move per %s)", beats, total.IndexWrite, 2*moves, dynamo.DeadlineStep)
	}
	avg := total.Write / float64(beats)
	t.Logf("%d heartbeats over %s: %.0f write units (%.0f on the live index), %.0f read units; %.2f write units per heartbeat",
		beats, period, total.Write, total.IndexWrite, total.Read, avg)
	if avg > 1.5 {
		t.Errorf("%.2f write units per heartbeat, want at most 1.5", avg)
	}
	writeFigures(t, "heartbeat.json", map[string]float64{
		"heartbeats": float64(beats), "intervalSeconds": interval.Seconds(),
		"readUnits": total.Read / float64(beats), "writeUnits": avg, "indexWriteUnits": total.IndexWrite / float64(beats),
	})

	// The rounding delays nothing beyond one step: the satellite is found
	// stale once its exact deadline plus one step has passed, not before
	// its exact deadline.
	last := h.clock.Now()
	h.clock.Set(last.Add(satellite.DefaultOfflineThreshold))
	if r, err := sweeper.Sweep.Sweep(ctx); err != nil || r.HeartbeatLost != 0 {
		t.Fatalf("sweep at the exact deadline: %+v, %v; want nothing lost yet", r, err)
	}
	h.clock.Set(last.Add(satellite.DefaultOfflineThreshold + dynamo.DeadlineStep + time.Millisecond))
	if r, err := sweeper.Sweep.Sweep(ctx); err != nil || r.HeartbeatLost != 1 {
		t.Fatalf("sweep one step after the deadline: %+v, %v; want the satellite lost", r, err)
	}
	if sat := h.stored(id); sat.LastConnectionEvent != satellite.EdgeHeartbeatLost || len(sat.Tags) != 50 || sat.Version != "1.4.2" {
		t.Fatalf("stored %s with %d tags, version %q; want heartbeat_lost, 50 tags, 1.4.2", sat.LastConnectionEvent, len(sat.Tags), sat.Version)
	}
}
