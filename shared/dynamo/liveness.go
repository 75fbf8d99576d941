package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// liveness is the update of every heartbeat: a fresh heartbeat, in the
// sparse live index at the moment the satellite will go stale, rounded down
// (:liveFrom is now rounded down to the satellite's LiveStep; the threshold
// is the item's own).
//
// The heartbeat's time is heartbeatAttr, which the live index does not
// project: stacks created before this version project lastHeartbeatAt
// (legacyHeartbeatAttr) into it, and DynamoDB cannot change an index's
// projection in place, so the attribute moved instead (a heartbeat that
// changed a projected attribute would write the index every time).
const liveness = heartbeatAttr + " = :now, liveShard = :shard, staleAt = :liveFrom + if_not_exists(" + satelliteThresholdAttr + ", :defaultThreshold)"

// The satellite item's attribute holding its last heartbeat, and the one
// that held it before (still read, and removed at the next disconnect).
const (
	heartbeatAttr       = "heartbeatAt"
	legacyHeartbeatAttr = "lastHeartbeatAt"
)

// satelliteThresholdAttr is the satellite item's threshold override
// (satellite.Satellite.OfflineThreshold), which liveness adds to a
// heartbeat to make its key in the live index.
const satelliteThresholdAttr = "offlineThresholdMs"

// connectionThresholdAttr is the connection record's copy of its
// satellite's threshold override (satellite.Connection.OfflineThreshold).
const connectionThresholdAttr = "offlineThresholdMs"

// closedConnectionAttr is the satellite item's last closed connection: a
// heartbeat from that connection is refused and cannot make it current
// again.
const closedConnectionAttr = "closedConnectionId"

// lastSatelliteAttr is the connection record's satellite after it was
// unbound, so that the close of the connection still finds the satellite
// whose current connection it is.
const lastSatelliteAttr = "lastSatelliteId"

// The satellite item's marks of what its connections went through: when
// its heartbeats were found lost (until its next connected edge), and its
// connections closed for a message over API Gateway's limit (a count, the
// latest and the one before).
const (
	heartbeatLostAttr   = "heartbeatLostAt"
	oversizedClosesAttr = "oversizedCloses"
	oversizedAtAttr     = "oversizedAt"
	oversizedPrevAtAttr = "oversizedPrevAt"
)

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

// connectedEdge is liveness plus the connected edge: authentication and a
// restoring heartbeat.
const connectedEdge = liveness + ", lastConnectionEvent = :connected"

// connectedValues are liveness's values for a heartbeat at now of a
// satellite whose threshold is thought to be threshold (0: the default). It
// only picks the rounding step: the key adds the threshold stored on the
// item, so a wrong guess never makes it later than the exact deadline.
func connectedValues(satelliteID string, threshold time.Duration, now time.Time) item {
	return item{
		":now":              millis(now),
		":liveFrom":         millis(liveFrom(now, threshold)),
		":connected":        str(string(satellite.EdgeConnected)),
		":shard":            str(liveShard(satelliteID)),
		":defaultThreshold": num(satellite.DefaultOfflineThreshold.Milliseconds()),
	}
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
	key := item{SatellitesPartitionKey: str(satelliteKey(satelliteID)), SatellitesSortKey: str(satelliteSort)}
	base := connectedValues(satelliteID, threshold, now)
	base[":conn"] = str(connectionID)
	base[":version"] = str(version)
	// What every path writes besides liveness: the agent's version, and its
	// capabilities when the heartbeat carries them (in the same write).
	setVersion := "SET version = :version, "
	if capabilities != nil {
		setVersion = "SET version = :version, " + capabilitiesAttr + " = :caps, "
		base[":caps"] = stringList(capabilities)
	}
	// update applies one conditional write; on a failed condition it returns
	// the item as it is, which decides the next step.
	update := func(expr, condition string, names map[string]string, extra item) (item, error) {
		values := item{}
		for _, m := range []item{base, extra} {
			for k, v := range m {
				values[k] = v
			}
		}
		values = used(values, expr, condition)
		in := &dynamodb.UpdateItemInput{
			TableName: &r.tables.Satellites, Key: key,
			UpdateExpression: aws.String(expr), ConditionExpression: aws.String(condition),
			ExpressionAttributeValues:           values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}
		if len(names) > 0 {
			in.ExpressionAttributeNames = names
		}
		_, err := r.db.UpdateItem(ctx, in)
		it, _ := conditionFailure(err)
		return it, err
	}
	steady := func() (item, error) {
		return update(setVersion+liveness, "lastConnectionEvent = :connected AND connectionId = :conn", nil, nil)
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
			it, err = update(setVersion+liveness,
				"lastConnectionEvent = :connected AND connectionId = :current", nil, item{":current": str(sat.ConnectionID)})
		case sat.ConnectionID != "":
			// Marked heartbeat_lost with a current connection: restore the
			// edge and keep the connection.
			// The sweep marked it heartbeat_lost, so this edge ends the loss.
			restore.Name, restore.Region, restore.Recovered = sat.Name, sat.Region, true
			recordEdge, names, values := edgeWrite(restore, writer)
			values[":current"] = str(sat.ConnectionID)
			if it, err = update(setVersion+connectedEdge+", "+recordEdge+" REMOVE "+heartbeatLostAttr,
				"lastConnectionEvent <> :connected AND connectionId = :current", names, values); err == nil {
				return restored(sat)
			}
		default:
			// No current connection: adopt this one, if it is live.
			restore.Name, restore.Region, restore.Recovered = sat.Name, sat.Region, !sat.HeartbeatLostAt.IsZero()
			if r.beforeAdopt != nil {
				r.beforeAdopt()
			}
			if err = r.adopt(ctx, key, satelliteID, connectionID, setVersion, restore, writer, base, now); err == nil {
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
// none, with the connected edge recorded, in a transaction with a check that
// the connection's record is live and bound to the satellite. It returns nil
// on success, a coded error when the heartbeat is refused, and errChanged
// when the satellite changed and the caller should look again.
func (r *Registry) adopt(ctx context.Context, key item, satelliteID, connectionID, setVersion string, restore satellite.LifecycleEvent, writer string, base item, now time.Time) error {
	recordEdge, names, values := edgeWrite(restore, writer)
	for k, v := range base {
		values[k] = v
	}
	values[":closed"] = str(connectionID)
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{
			TableName:                 &r.tables.Connections,
			Key:                       item{ConnectionsPartitionKey: str(connectionID)},
			ConditionExpression:       aws.String("#sid = :sid AND #exp > :nowSeconds"),
			ExpressionAttributeNames:  map[string]string{"#sid": BySatelliteIndexPartKey, "#exp": ConnectionsTTLAttribute},
			ExpressionAttributeValues: item{":sid": str(satelliteID), ":nowSeconds": num(now.Unix())},
		}},
		{Update: &types.Update{
			TableName: &r.tables.Satellites,
			Key:       key,
			UpdateExpression: aws.String(setVersion + "connectionId = :conn, " + connectedEdge + ", " + recordEdge +
				" REMOVE " + closedConnectionAttr + ", " + heartbeatLostAttr),
			ConditionExpression: aws.String("attribute_exists(pk) AND attribute_not_exists(connectionId) AND " +
				"(attribute_not_exists(" + closedConnectionAttr + ") OR " + closedConnectionAttr + " <> :closed)"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
		}},
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

// CloseConnection implements satellite.Registry. The disconnect edge is
// guarded by connectionId = the closing connection, so a stale $disconnect
// that arrives after the satellite reconnected changes nothing. The
