package dynamo_test

import (
	"context"
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
			out, err := other.RecordHeartbeat(ctx, satelliteID, satelliteID+"-A", "1.0.0", nil, now)
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
			out, err := reg.RecordHeartbeat(ctx, id, id+"-A", "1.0.0", nil, now.Add(time.Second))
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
