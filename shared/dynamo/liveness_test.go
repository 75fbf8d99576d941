package dynamo_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// bound opens a connection and binds it to a satellite, as authentication
// does.
func bound(t *testing.T, reg *dynamo.Registry, satelliteID, connectionID string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := reg.OpenConnection(ctx, satellite.Connection{ID: connectionID, ConnectedAt: now, ExpiresAt: now.Add(satellite.ConnectionRecordTTL)}); err != nil {
		t.Fatal(err)
	}
	sat, _, err := reg.Satellite(ctx, satelliteID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.BindConnection(ctx, connectionID, sat, sat.TokenHash, nil, now); err != nil {
		t.Fatal(err)
	}
}

// TestHeartbeatAdoptionRetriesAfterLosingARace: a heartbeat that finds its
// satellite without a current connection adopts its own; when another
// write changes the satellite between the heartbeat's read and its
// adoption, the heartbeat reads the satellite again and does what the new
// state calls for, instead of failing as an internal error. The other
// write lands through a hook the registry calls right before adopting.
func TestHeartbeatAdoptionRetriesAfterLosingARace(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// meanwhile is the concurrent write, through another registry (as
		// another function instance).
		meanwhile func(t *testing.T, other *dynamo.Registry, satelliteID string)
		// want is the satellite's current connection after the heartbeat:
		// "A" (the heartbeat's) or "C" (a newer one).
		want string
	}{
		{"a newer connection authenticates", func(t *testing.T, other *dynamo.Registry, satelliteID string) {
			bound(t, other, satelliteID, satelliteID+"-C", now)
		}, "C"},
		{"a concurrent heartbeat of the same connection adopts it first", func(t *testing.T, other *dynamo.Registry, satelliteID string) {
			out, err := other.RecordHeartbeat(ctx, satelliteID, satelliteID+"-A", "1.0.0", nil, 0, now)
			if err != nil || !out.Restored {
				t.Fatalf("the concurrent heartbeat: %+v, %v; want it to adopt", out, err)
			}
		}, "A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.New(t)
			reg, other := env.Registry(), env.Registry()
			id := "sat-adopt-race"
			if err := reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Edge", Region: "eu-west-1", TokenHash: "$2a$10$hash", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			// A, then B authenticate; B (the current one) closes: the
			// satellite has no current connection, A is alive and bound.
			bound(t, reg, id, id+"-A", now)
			bound(t, reg, id, id+"-B", now)
			if _, err := reg.CloseConnection(ctx, id+"-B", satellite.CloseStatus{}, now); err != nil {
				t.Fatal(err)
			}
			fired := 0
			dynamo.SetBeforeAdopt(reg, func() {
				if fired++; fired == 1 {
					tc.meanwhile(t, other, id)
				}
			})
			out, err := reg.RecordHeartbeat(ctx, id, id+"-A", "1.0.0", nil, 0, now.Add(time.Second))
			if err != nil {
				t.Fatalf("heartbeat after losing the adoption race: %v", err)
			}
			if fired == 0 {
				t.Fatal("the heartbeat never reached its adoption")
			}
			if out.Restored {
				t.Errorf("the heartbeat restored the edge the concurrent write already restored: %+v", out)
			}
			sat, _, err := reg.Satellite(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if sat.ConnectionID != id+"-"+tc.want || sat.LastConnectionEvent != satellite.EdgeConnected {
				t.Errorf("satellite on %q, edge %s; want connected on %s", sat.ConnectionID, sat.LastConnectionEvent, id+"-"+tc.want)
			}
			if !sat.LastHeartbeatAt.Equal(now.Add(time.Second)) {
				t.Errorf("last heartbeat %s, want the heartbeat's %s", sat.LastHeartbeatAt, now.Add(time.Second))
			}
		})
	}
}

// TestLiveIndexKeysNeverAfterTheDeadline checks the live index against the
// exact deadline (heartbeat + threshold): a satellite is stale from 1 ms
// after it, not a step later, and online until it, even while its key in
// the index (rounded down) has passed. The threshold a heartbeat is given
// only picks the rounding: a wrong one (the connection's copy, stale after
// an operator's change) moves nothing past the deadline.
func TestLiveIndexKeysNeverAfterTheDeadline(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	reg := env.Registry()
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name            string
		threshold, hint time.Duration
	}{
		{"default threshold", 0, 0},
		{"15 s threshold", 15 * time.Second, 15 * time.Second},
		{"10 min threshold", 10 * time.Minute, 10 * time.Minute},
		{"45 s threshold, heartbeat told 24 h", 0, 24 * time.Hour},
		{"24 h threshold, heartbeat told 15 s", 24 * time.Hour, 15 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "sat-" + strings.ReplaceAll(tc.name, " ", "-")
			if err := reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Edge", Region: "eu-west-1", TokenHash: "h", CreatedAt: t0, OfflineThreshold: tc.threshold}); err != nil {
				t.Fatal(err)
			}
			bound(t, reg, id, id+"-A", t0)
			last := t0.Add(37 * time.Second)
			if _, err := reg.RecordHeartbeat(ctx, id, id+"-A", "1.0.0", nil, tc.hint, last); err != nil {
				t.Fatal(err)
			}
			deadline := last.Add(satellite.Satellite{OfflineThreshold: tc.threshold}.Threshold())
			stale := func(now time.Time) bool {
				found, err := reg.StaleSatellites(ctx, now)
				if err != nil {
					t.Fatal(err)
				}
				return slices.ContainsFunc(found, func(s satellite.Stale) bool { return s.Satellite.ID == id })
			}
			online := func(now time.Time) bool {
				ids, err := reg.OnlineSatelliteIDs(ctx, now)
				if err != nil {
					t.Fatal(err)
				}
				return slices.Contains(ids, id)
			}
			for _, at := range []time.Time{last, deadline.Add(-dynamo.MaxLiveStep), deadline.Add(-time.Second), deadline} {
				if stale(at) || !online(at) {
					t.Errorf("at %s, deadline %s: stale %v, online %v; want online", at.Format(time.TimeOnly), deadline.Format(time.TimeOnly), stale(at), online(at))
				}
			}
			if at := deadline.Add(time.Millisecond); !stale(at) || online(at) {
				t.Errorf("1 ms after the deadline: stale %v, online %v; want stale", stale(at), online(at))
			}
		})
	}
}

// TestMarkHeartbeatLostLosesToAHeartbeatTheSweepDidNotSee: the sweep reads
// satellites eventually consistently, and a heartbeat moves the key in the
// live index only once per step. A heartbeat the sweep's read missed, which
// left the key where it was, must still make the sweep's write lose.
func TestMarkHeartbeatLostLosesToAHeartbeatTheSweepDidNotSee(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	reg := env.Registry()
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	const id = "sat-missed"
	if err := reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Edge", Region: "eu-west-1", TokenHash: "h", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	bound(t, reg, id, id+"-A", t0.Add(time.Second)) // deadline t0 + 46 s
	found, err := reg.StaleSatellites(ctx, t0.Add(50*time.Second))
	if err != nil || len(found) != 1 {
		t.Fatalf("stale at t0 + 50 s: %v, %v; want the satellite", found, err)
	}
	// The heartbeat the read did not show: same 30 s step, so the same key.
	if _, err := reg.RecordHeartbeat(ctx, id, id+"-A", "1.0.0", nil, 0, t0.Add(29*time.Second)); err != nil {
		t.Fatal(err)
	}
	won, _, err := reg.MarkHeartbeatLost(ctx, found[0], t0.Add(50*time.Second))
	if err != nil || won {
		t.Fatalf("mark lost over a heartbeat it did not see: won %v, %v; want lost to the heartbeat", won, err)
	}
	sat, _, err := reg.Satellite(ctx, id)
	if err != nil || sat.LastConnectionEvent != satellite.EdgeConnected {
		t.Errorf("satellite %s, %v; want still connected", sat.LastConnectionEvent, err)
	}
}
