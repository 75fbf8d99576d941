package dynamo_test

import (
	"context"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// TestAReconnectRacingTheSweepStillReportsTheRecovery: a new connection
// authenticates with the satellite as read before a sweep found it lost.
// The loss was reported, so the connected edge that follows must say it
// recovered: the binding notices the mark it did not read and is made
// again.
func TestAReconnectRacingTheSweepStillReportsTheRecovery(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	reg := env.Registry()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	id := "sat-race-lost"
	if err := reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Edge", Region: "eu-west-1", TokenHash: "$2a$10$hash", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	bound(t, reg, id, id+"-A", now)
	later := now.Add(satellite.DefaultOfflineThreshold + 2*time.Minute)
	read, _, err := reg.Satellite(ctx, id) // authentication reads the satellite
	if err != nil {
		t.Fatal(err)
	}
	stale, err := reg.StaleSatellites(ctx, later)
	if err != nil || len(stale) != 1 {
		t.Fatalf("stale satellites %+v, %v", stale, err)
	}
	if won, _, err := reg.MarkHeartbeatLost(ctx, stale[0], later); err != nil || !won {
		t.Fatalf("mark lost: %v, %v", won, err)
	}
	if err := reg.OpenConnection(ctx, satellite.Connection{ID: id + "-B", ConnectedAt: later, ExpiresAt: later.Add(satellite.ConnectionRecordTTL)}); err != nil {
		t.Fatal(err)
	}
	edge, err := reg.BindConnection(ctx, id+"-B", read, read.TokenHash, nil, later)
	if err != nil {
		t.Fatal(err)
	}
	if !edge.Recovered {
		t.Errorf("connected edge %+v after a loss the binding did not read; want it marked recovered", edge)
	}
	sat, _, _ := reg.Satellite(ctx, id)
	if !sat.HeartbeatLostAt.IsZero() || sat.LastConnectionEvent != satellite.EdgeConnected || sat.ConnectionID != id+"-B" {
		t.Errorf("satellite %s on %q, lost mark %v; want connected on B, the mark gone", sat.LastConnectionEvent, sat.ConnectionID, sat.HeartbeatLostAt)
	}
	// Nothing here publishes: the outbox holds every edge, the recovered
	// one as recorded.
	recovered := 0
	for _, p := range sat.Pending {
		if p.Recovered && p.Edge == satellite.EdgeConnected && p.ID == edge.ID {
			recovered++
		}
	}
	if recovered != 1 {
		t.Errorf("outbox %+v; want the connected edge recorded as recovered", sat.Pending)
	}
}

// TestOversizedClosesAreRecordedOnTheSatellite: each close with 1009 of a
// satellite's connection is recorded in the write that closes it: a count,
// the latest and the one before, which mark the satellite.
func TestOversizedClosesAreRecordedOnTheSatellite(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	reg := env.Registry()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	id := "sat-oversized"
	if err := reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Edge", Region: "eu-west-1", TokenHash: "$2a$10$hash", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	tooBig := satellite.CloseStatus{Code: satellite.CloseMessageTooBig, Reason: "Message too big"}
	bound(t, reg, id, id+"-A", now)
	closed, err := reg.CloseConnection(ctx, id+"-A", tooBig, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if o := closed.Oversized; o == nil || o.Before.Closes != 0 || o.After.Closes != 1 || o.After.Repeated() {
		t.Errorf("first close: %+v", o)
	}
	if closed.Edge.CloseCode != satellite.CloseMessageTooBig {
		t.Errorf("disconnected edge %+v, want close code 1009", closed.Edge)
	}
	bound(t, reg, id, id+"-B", now.Add(2*time.Second))
	if _, err := reg.CloseConnection(ctx, id+"-B", satellite.CloseStatus{Code: 1000}, now.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	bound(t, reg, id, id+"-C", now.Add(4*time.Second))
	closed, err = reg.CloseConnection(ctx, id+"-C", tooBig, now.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if o := closed.Oversized; o == nil || o.Before.Closes != 1 || !o.After.Repeated() || !satellite.FirstRepeatedInHour(o.Before, o.After) {
		t.Errorf("second close: %+v; want repeated, the first of its hour", o)
	}
	sat, _, _ := reg.Satellite(ctx, id)
	want := satellite.OversizedMessages{Closes: 2, LastAt: now.Add(5 * time.Second), PreviousAt: now.Add(time.Second)}
	if sat.Oversized != want || !sat.Oversized.MarkedAt(now.Add(time.Hour)) {
		t.Errorf("stored %+v, want %+v, marked", sat.Oversized, want)
	}
}
