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
// saw it authenticate, for three thresholds: the default 45 s, an override
// of 5 minutes and one of 30 s. The satellite carries the largest profile
// the admin API accepts (50 tags of 128 + 256 characters, about 19 KB),
// which a heartbeat must not pay for.
//
// What it holds, per heartbeat: no read unit; exactly one write unit on the
// table (the satellite item stays under 1 KB); and the live index written
// only when the rounded deadline moves, once per dynamo.LiveStep (a delete
// and a put: two units). So at the default threshold (a 30 s step) 40
// heartbeats cost 40 + 2 x 20 units, 2.0 on average; from a 75 s threshold
// (a minute) 1.5; at 30 s (15 s, every heartbeat) 3.0. Before every
// heartbeat a sweep pass runs at the moment the heartbeat arrives and must
// read nothing: a satellite heartbeating on time is never a candidate. And
// the rounding delays nothing: the satellite is found lost by the first
// pass after its exact deadline, not before it.
func TestHeartbeatCapacityInSteadyState(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold time.Duration // 0: the default
		step      time.Duration
		perBeat   float64
	}{
		{"default threshold", 0, 30 * time.Second, 2.0},
		{"5 min threshold", 5 * time.Minute, time.Minute, 1.5},
		{"30 s threshold", 30 * time.Second, 15 * time.Second, 3.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dynamo.LiveStep(tc.threshold); got != tc.step {
				t.Fatalf("LiveStep(%s) = %s, want %s", tc.threshold, got, tc.step)
			}
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
				OfflineThreshold: tc.threshold,
			}); err != nil {
				t.Fatal(err)
			}
			// Off the minute, as a satellite's clock would be.
			h.clock.Advance(7 * time.Second)
			conn := h.authenticateWith(id, tok, map[string]any{"capabilities": []string{"scripts", "scrape", "telemetry"}})
			calls, sweeps := h.calls["message"], h.calls["sweep"]

			const interval, period = 15 * time.Second, 10 * time.Minute
			beats := int(period / interval)
			var total testenv.Capacity
			sweeps.Reset()
			for range beats {
				h.clock.Advance(interval)
				// A pass as the heartbeat arrives, before it is recorded.
				if _, err := sweeper.Sweep.StalePass(ctx); err != nil {
					t.Fatal(err)
				}
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
			if n := sweeps.ItemsRead(); n != 0 {
				t.Errorf("%d sweep passes, each as a heartbeat arrived, read %d items; want none", beats, n)
			}
			moves := int(period / tc.step)
			if total.IndexWrite > float64(2*moves) {
				t.Errorf("%d heartbeats wrote %.0f units to the live index, want at most %d (one move per %s)", beats, total.IndexWrite, 2*moves, tc.step)
			}
			avg := total.Write / float64(beats)
			t.Logf("%d heartbeats over %s, threshold %s: %.0f write units (%.0f on the live index), %.0f read units; %.2f write units per heartbeat",
				beats, period, satellite.Satellite{OfflineThreshold: tc.threshold}.Threshold(), total.Write, total.IndexWrite, total.Read, avg)
			if avg > tc.perBeat {
				t.Errorf("%.2f write units per heartbeat, want at most %.1f", avg, tc.perBeat)
			}
			if tc.threshold == 0 {
				testenv.WriteFigures(t, "heartbeat.json", map[string]float64{
					"heartbeats": float64(beats), "intervalSeconds": interval.Seconds(),
					"readUnits": total.Read / float64(beats), "writeUnits": avg, "indexWriteUnits": total.IndexWrite / float64(beats),
				})
			}

			// The rounding delays nothing: the satellite is not found at its
			// exact deadline, and is found by a pass just after it.
			last := h.clock.Now()
			deadline := last.Add(satellite.Satellite{OfflineThreshold: tc.threshold}.Threshold())
			h.clock.Set(deadline)
			if r, err := sweeper.Sweep.Sweep(ctx); err != nil || r.HeartbeatLost != 0 {
				t.Fatalf("sweep at the exact deadline: %+v, %v; want nothing lost yet", r, err)
			}
			h.clock.Set(deadline.Add(time.Millisecond))
			if r, err := sweeper.Sweep.Sweep(ctx); err != nil || r.HeartbeatLost != 1 {
				t.Fatalf("sweep 1 ms after the exact deadline: %+v, %v; want the satellite lost", r, err)
			}
			if sat := h.stored(id); sat.LastConnectionEvent != satellite.EdgeHeartbeatLost || len(sat.Tags) != 50 || sat.Version != "1.4.2" {
				t.Fatalf("stored %s with %d tags, version %q; want heartbeat_lost, 50 tags, 1.4.2", sat.LastConnectionEvent, len(sat.Tags), sat.Version)
			}
		})
	}
}
