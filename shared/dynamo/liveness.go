package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// setLiveness adds to e the update of every heartbeat: a fresh heartbeat
// at now, in the sparse live index at the moment the satellite will go
// stale, rounded down: now rounded down to the step of a satellite whose
// threshold is thought to be threshold (0: the default), plus the
// threshold stored on the item. The guess only picks the rounding step,
// so a wrong one never makes the key later than the exact deadline.
//
// The heartbeat's time is heartbeatAttr, which the live index does not
// project: stacks created before this version project lastHeartbeatAt
// (legacyHeartbeatAttr) into it, and DynamoDB cannot change an index's
// projection in place, so the attribute moved instead (a heartbeat that
// changed a projected attribute would write the index every time).
func setLiveness(e *expr, satelliteID string, threshold time.Duration, now time.Time) {
	e.setTo(e.attr(heartbeatAttr), e.val("now", millis(now)))
	e.setTo(e.attr(LiveIndexPartKey), e.val("shard", str(liveShard(satelliteID))))
	defaultThreshold := e.val("defaultThreshold", num(satellite.DefaultOfflineThreshold.Milliseconds()))
	e.setTo(e.attr(LiveIndexSortKey), plus(e.val("liveFrom", millis(liveFrom(now, threshold))), ifNotExists(e.attr(satelliteThresholdAttr), defaultThreshold)))
}

// setConnected adds to e liveness plus the connected edge: authentication
// and a restoring heartbeat.
func setConnected(e *expr, satelliteID string, threshold time.Duration, now time.Time) {
	setLiveness(e, satelliteID, threshold, now)
	e.setTo(e.attr(lastEdgeAttr), connected(e))
}

// connected is the connected edge's value, as lastEdgeAttr holds it.
func connected(e *expr) value { return e.val("connected", str(string(satellite.EdgeConnected))) }

// MaxLiveStep is the longest LiveStep: a satellite's key in the live index
// is never more than this before its exact deadline.
const MaxLiveStep = time.Minute

// LiveStep is the step to which a heartbeat rounds its time down before it
// adds the satellite's threshold to make its key in the live index
// (staleAt). The key is therefore never after the exact deadline
// (heartbeat + threshold, which the admin API's status reads) and at most
// one step before it: a sweep pass reading staleAt < now finds every
// satellite past its exact deadline, and reads the item to tell those from
// the ones whose deadline is still ahead.
//
// The step is the longest of MaxLiveStep, 30 s and 15 s that is at most
// threshold - satellite.AgentHeartbeatInterval. Then the key of a satellite
// heartbeating on time stays after every moment before its next heartbeat,
// so no pass reads a healthy satellite, while the key moves (a delete and a
// put in the index, two write units) as rarely as that allows: once a
// minute from a 75 s threshold, every 30 s from 45 s (the default), on
// every heartbeat below that (where a threshold under 30 s also makes a
// pass read the satellite now and then).
func LiveStep(threshold time.Duration) time.Duration {
	if threshold <= 0 {
		threshold = satellite.DefaultOfflineThreshold
	}
	for _, step := range []time.Duration{MaxLiveStep, 30 * time.Second} {
		if step <= threshold-satellite.AgentHeartbeatInterval {
			return step
		}
	}
	return 15 * time.Second
}

// liveFrom is now rounded down to the step of a satellite with threshold
// (see LiveStep).
func liveFrom(now time.Time, threshold time.Duration) time.Time {
	return now.Truncate(LiveStep(threshold))
}

// RecordHeartbeat implements satellite.Registry.
//
// A heartbeat from the satellite's current connection while it is marked
// connected (the steady state) is one write. Anything else is decided by
// what that write's failed condition returns:
//   - a heartbeat from an older connection while a newer one is current
//     refreshes liveness and keeps the current connection (an older
//     connection must not steal pushes from the newest);
//   - a satellite marked otherwise than connected is restored, and the
//     connected edge recorded in its outbox, by a write conditional on it
//     still being so: of two heartbeats racing, one restores;
//   - a satellite with no current connection adopts the heartbeat's only
//     while that connection's record is live and bound to the satellite, in
//     one transaction: a late frame from a closed connection brings nothing
//     back.
//
// A heartbeat from a connection whose close was already processed is refused
// (ECONFLICT).
func (r *Registry) RecordHeartbeat(ctx context.Context, satelliteID, connectionID, version string, capabilities []string, threshold time.Duration, now time.Time) (satellite.HeartbeatOutcome, error) {
	key := satelliteItemKey(satelliteID)
	// heartbeat is what every path writes: liveness, the agent's version,
	// and its capabilities when the heartbeat carries them (in the same
	// write).
	heartbeat := func() *expr {
		e := newExpr()
		e.setTo(e.attr(agentVersionAttr), e.val("version", str(version)))
		if capabilities != nil {
			e.setTo(e.attr(capabilitiesAttr), e.val("caps", stringList(capabilities)))
		}
		setLiveness(e, satelliteID, threshold, now)
		return e
	}
	// update applies one conditional write; on a failed condition it returns
	// the item as it is, which decides the next step.
	update := func(e *expr) (item, error) {
		in := e.updateItem(r.tables.Satellites, key)
		in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		_, err := r.db.UpdateItem(ctx, in)
		it, _ := conditionFailure(err)
		return it, err
	}
	// connectedOn is the condition that the satellite is marked connected
	// with conn as its current connection.
	connectedOn := func(e *expr, conn string) condition {
		return and(eq(e.attr(lastEdgeAttr), connected(e)), eq(e.attr(currentConnAttr), e.val("conn", str(conn))))
	}
	steady := func() (item, error) {
		e := heartbeat()
		return update(e.when(connectedOn(e, connectionID)))
	}
	restore := satellite.NewLifecycleEvent(satellite.EdgeConnected, fmt.Sprintf("%s@%d", connectionID, now.UnixMilli()),
		satellite.Satellite{ID: satelliteID}, now, now)
	writer := newWriter()
	restored := func(sat satellite.Satellite) (satellite.HeartbeatOutcome, error) {
		restore.Name, restore.Region = sat.Name, sat.Region
		return satellite.HeartbeatOutcome{Restored: true, Edge: restore}, nil
	}

	it, err := steady()
	for attempt := 0; err != nil; attempt++ {
		if it == nil {
			return satellite.HeartbeatOutcome{}, internal(err, "record heartbeat")
		}
		sat := satelliteFrom(it)
		switch {
		case len(it) == 0:
			return satellite.HeartbeatOutcome{}, satellite.Errorf(satellite.ENOTFOUND, "satellite %s no longer exists", satelliteID)
		case wroteEdge(it, restore.ID, writer):
			// An earlier attempt of this write restored the edge; its answer
			// was lost.
			return restored(sat)
		case getStr(it, closedConnectionAttr) == connectionID:
			return satellite.HeartbeatOutcome{}, satellite.Errorf(satellite.ECONFLICT, "connection %s was already closed", connectionID)
		case attempt == heartbeatRetries:
			return satellite.HeartbeatOutcome{}, satellite.Errorf(satellite.ECONFLICT, "satellite %s kept changing while its heartbeat was recorded", satelliteID)
		case sat.LastConnectionEvent == satellite.EdgeConnected && sat.ConnectionID == connectionID:
			it, err = steady() // restored by another heartbeat meanwhile
		case sat.LastConnectionEvent == satellite.EdgeConnected && sat.ConnectionID != "":
			// An older connection while a newer one is current: liveness
			// only.
			e := heartbeat()
			it, err = update(e.when(connectedOn(e, sat.ConnectionID)))
		case sat.ConnectionID != "":
			// Marked heartbeat_lost with a current connection: restore the
			// edge and keep the connection.
			// The sweep marked it heartbeat_lost, so this edge ends the loss.
			restore.Name, restore.Region, restore.Recovered = sat.Name, sat.Region, true
			e := heartbeat()
			e.setTo(e.attr(lastEdgeAttr), connected(e))
			recordEdge(e, restore, writer)
			e.removes(e.attr(heartbeatLostAttr))
			e.when(and(ne(e.attr(lastEdgeAttr), connected(e)), eq(e.attr(currentConnAttr), e.val("current", str(sat.ConnectionID)))))
			if it, err = update(e); err == nil {
				return restored(sat)
			}
		default:
			// No current connection: adopt this one, if it is live.
			restore.Name, restore.Region, restore.Recovered = sat.Name, sat.Region, !sat.HeartbeatLostAt.IsZero()
			if r.beforeAdopt != nil {
				r.beforeAdopt()
			}
			if err = r.adopt(ctx, key, satelliteID, connectionID, heartbeat(), restore, writer, now); err == nil {
				return restored(sat)
			}
			if !errors.Is(err, errChanged) {
				// Refused (the connection is closed) or failed; errChanged
				// alone means the satellite moved on: look again. (Not a
				// test of ErrorCode: it reads any plain error, errChanged
				// too, as EINTERNAL.)
				return satellite.HeartbeatOutcome{}, err
			}
			if it, err = r.satelliteItem(ctx, key); err != nil {
				return satellite.HeartbeatOutcome{}, err
			}
			err = errChanged
		}
	}
	return satellite.HeartbeatOutcome{}, nil
}

// errChanged says a conditional write lost to a concurrent one and the item
// should be read again.
var errChanged = errors.New("changed meanwhile")

// adopt makes connectionID the current connection of a satellite that has
// none, with heartbeat's writes and the connected edge recorded, in a
// transaction with a check that the connection's record is live and bound
// to the satellite. It returns nil on success, a coded error when the
// heartbeat is refused, and errChanged when the satellite changed and the
// caller should look again.
func (r *Registry) adopt(ctx context.Context, key item, satelliteID, connectionID string, heartbeat *expr, restore satellite.LifecycleEvent, writer string, now time.Time) error {
	bound := newExpr()
	bound.when(and(
		eq(bound.attr(BySatelliteIndexPartKey), bound.val("sid", str(satelliteID))),
		gt(bound.attr(ConnectionsTTLAttribute), bound.val("nowSeconds", num(now.Unix()))),
	))
	e := heartbeat
	e.setTo(e.attr(currentConnAttr), e.val("conn", str(connectionID)))
	e.setTo(e.attr(lastEdgeAttr), connected(e))
	recordEdge(e, restore, writer)
	e.removes(e.attr(closedConnectionAttr), e.attr(heartbeatLostAttr))
	closed := e.attr(closedConnectionAttr)
	e.when(and(
		exists(e.attr(SatellitesPartitionKey)),
		notExists(e.attr(currentConnAttr)),
		or(notExists(closed), ne(closed, e.val("closed", str(connectionID)))),
	))
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{ConditionCheck: bound.conditionCheck(r.tables.Connections, item{ConnectionsPartitionKey: str(connectionID)})},
		{Update: e.transactUpdate(r.tables.Satellites, key)},
	}})
	failed, _, ok := cancelled(err)
	switch {
	case err == nil:
		return nil
	case ok && len(failed) == 2 && failed[0]:
		return satellite.Errorf(satellite.ECONFLICT, "connection %s is closed; its heartbeat cannot make it current", connectionID)
	case ok && len(failed) == 2 && failed[1]:
		return errChanged
	}
	return internal(err, "adopt connection")
}
