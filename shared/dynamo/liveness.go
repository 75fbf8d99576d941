package dynamo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
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
const liveness = heartbeatAttr + " = :now, liveShard = :shard, staleAt = :liveFrom + if_not_exists(offlineThresholdMs, :defaultThreshold)"

// The satellite item's attribute holding its last heartbeat, and the one
// that held it before (still read, and removed at the next disconnect).
const (
	heartbeatAttr       = "heartbeatAt"
	legacyHeartbeatAttr = "lastHeartbeatAt"
)

// connectionThresholdAttr is the connection record's copy of its
// satellite's threshold override (satellite.Connection.OfflineThreshold).
const connectionThresholdAttr = "offlineThresholdMs"

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

// oversizedWrite records one more close for a message over the limit at
// :now, moving the latest to the one before (:never, 0, when there was
// none); DynamoDB evaluates every operand against the item before the
// update.
const oversizedWrite = oversizedPrevAtAttr + " = if_not_exists(" + oversizedAtAttr + ", :never), " + oversizedAtAttr + " = :now, " +
	oversizedClosesAttr + " = if_not_exists(" + oversizedClosesAttr + ", :never) + :one"

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

// BindConnection implements satellite.Registry. The connected edge is
// marked as sat shows the satellite (satellite.ReconnectMarks); the write
// is conditional on the heartbeat-loss mark being still as sat shows it,
// and is made again when a sweep marked the satellite lost meanwhile, so a
// loss the sweep reported is always followed by a connected edge marked
// recovered.
func (r *Registry) BindConnection(ctx context.Context, connectionID string, sat satellite.Satellite, verifiedHash string, capabilities []string, now time.Time) (satellite.LifecycleEvent, error) {
	for attempt := 0; ; attempt++ {
		edge, lost, err := r.bindConnection(ctx, connectionID, sat, verifiedHash, capabilities, now)
		if lost == nil || attempt == 3 {
			return edge, err
		}
		sat.HeartbeatLostAt = *lost
	}
}

// bindConnection makes one attempt of BindConnection. lost is set, to the
// heartbeat-loss mark as stored, when that mark alone refused the write.
func (r *Registry) bindConnection(ctx context.Context, connectionID string, sat satellite.Satellite, verifiedHash string, capabilities []string, now time.Time) (edge satellite.LifecycleEvent, lost *time.Time, err error) {
	edge = satellite.NewLifecycleEvent(satellite.EdgeConnected, connectionID, sat, now, now)
	edge.EdgeMarks = sat.ReconnectMarks(now)
	recordEdge, edgeNames, satValues := edgeWrite(edge, newWriter())
	for k, v := range connectedValues(sat.ID, sat.OfflineThreshold, now) {
		satValues[k] = v
	}
	satValues[":conn"] = str(connectionID)
	satValues[":hash"] = str(verifiedHash)
	set, remove := "SET connectionId = :conn, "+connectedEdge+", "+recordEdge, " REMOVE closedConnectionId, authFailures, authFailedAt, "+heartbeatLostAttr
	condition := "attribute_exists(pk) AND tokenHash = :hash AND "
	if sat.HeartbeatLostAt.IsZero() {
		condition += "attribute_not_exists(" + heartbeatLostAttr + ")"
	} else {
		condition += heartbeatLostAttr + " = :lostAt"
		satValues[":lostAt"] = millis(sat.HeartbeatLostAt)
	}
	// nil keeps what is stored (an agent that does not send the field); a
	// list, even an empty one, replaces it. An empty list is stored as one,
	// so "said it offers nothing" stays apart from "never said".
	if capabilities != nil && (sat.Capabilities == nil || !slices.Equal(capabilities, sat.Capabilities)) {
		set += ", " + capabilitiesAttr + " = :caps"
		satValues[":caps"] = stringList(capabilities)
	}
	// The record carries the satellite's threshold override, as it carries
	// its name: a heartbeat rounds its key in the live index by it (see
	// LiveStep) without reading the satellite.
	recordSet, recordRemove, recordValues := "", ", "+connectionThresholdAttr, item{
		":sid": str(sat.ID), ":name": str(sat.Name), ":region": str(sat.Region),
		":now": millis(now), ":expiry": str(expiryShard(connectionID)), ":gen": num(sat.TokenGeneration),
	}
	if sat.OfflineThreshold > 0 {
		recordSet, recordRemove = ", "+connectionThresholdAttr+" = :threshold", ""
		recordValues[":threshold"] = num(sat.OfflineThreshold.Milliseconds())
	}
	err = r.transact(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{Update: &types.Update{
				TableName: &r.tables.Connections,
				Key:       item{ConnectionsPartitionKey: str(connectionID)},
				UpdateExpression: aws.String("SET #sid = :sid, satelliteName = :name, satelliteRegion = :region, authenticatedAt = :now, " +
					"tokenGeneration = :gen, #expiry = :expiry" + recordSet + " REMOVE #unauth, lastSatelliteId" + recordRemove),
				// The record must exist: one that is gone belongs to a closed
				// connection (its $disconnect, or the sweep, removed it), and
				// binding would bring it back.
				ConditionExpression: aws.String("attribute_exists(#cid) AND attribute_not_exists(#sid)"),
				ExpressionAttributeNames: map[string]string{
					"#cid": ConnectionsPartitionKey, "#sid": BySatelliteIndexPartKey,
					"#expiry": ExpiryIndexPartKey, "#unauth": UnauthenticatedIndexPartKey,
				},
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
				ExpressionAttributeValues:           recordValues,
			}},
			{Update: &types.Update{
				TableName:                           &r.tables.Satellites,
				Key:                                 item{SatellitesPartitionKey: str(satelliteKey(sat.ID)), SatellitesSortKey: str(satelliteSort)},
				UpdateExpression:                    aws.String(set + remove),
				ConditionExpression:                 aws.String(condition),
				ExpressionAttributeNames:            edgeNames,
				ExpressionAttributeValues:           satValues,
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
		},
	})
	if failed, reasons, ok := cancelled(err); ok && len(failed) == 2 {
		switch {
		case failed[0] && len(reasons[0].Item) == 0:
			return edge, nil, satellite.Errorf(satellite.EGONE, "connection %s is closed", connectionID)
		case failed[0]:
			return edge, nil, satellite.Errorf(satellite.ECONFLICT, "connection %s is already authenticated", connectionID)
		case failed[1] && len(reasons[1].Item) > 0 && getStr(reasons[1].Item, "tokenHash") == verifiedHash:
			at := getMillis(reasons[1].Item, heartbeatLostAttr)
			return edge, &at, satellite.Errorf(satellite.ECONFLICT, "satellite %s was found lost while it authenticated", sat.ID)
		case failed[1]:
			return edge, nil, satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s was deleted or its token rotated", sat.ID)
		}
	}
	return edge, nil, internal(err, "bind connection")
}

// UnbindConnection implements satellite.Registry.
func (r *Registry) UnbindConnection(ctx context.Context, connectionID, satelliteID string) error {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &r.tables.Connections,
		Key:       item{ConnectionsPartitionKey: str(connectionID)},
		// lastSatelliteId lets the close of this connection still find the
		// satellite whose current connection it is.
		UpdateExpression:          aws.String("SET #unauth = :unauth, lastSatelliteId = :sid REMOVE #sid, satelliteName, satelliteRegion, authenticatedAt, authAttemptAt"),
		ConditionExpression:       aws.String("#sid = :sid"),
		ExpressionAttributeNames:  map[string]string{"#sid": BySatelliteIndexPartKey, "#unauth": UnauthenticatedIndexPartKey},
		ExpressionAttributeValues: item{":sid": str(satelliteID), ":unauth": str(unauthShard(connectionID))},
	})
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "unbind connection")
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
		case getStr(it, "closedConnectionId") == connectionID:
			return satellite.HeartbeatOutcome{}, satellite.Errorf(satellite.ECONFLICT, "connection %s was already closed", connectionID)
		case attempt == 4:
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
				" REMOVE closedConnectionId, " + heartbeatLostAttr),
			ConditionExpression: aws.String("attribute_exists(pk) AND attribute_not_exists(connectionId) AND " +
				"(attribute_not_exists(closedConnectionId) OR closedConnectionId <> :closed)"),
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
// satellite is updated before the record is deleted: a close that dies
// between the two leaves a record the sweep removes later (closing it again
// changes nothing), never a satellite connected to a closed connection.
//
// A close for a message over the limit is recorded on the satellite in the
// same write; only when the connection was no longer the current one (its
// satellite reconnected first) does recording it take a write of its own.
func (r *Registry) CloseConnection(ctx context.Context, connectionID string, status satellite.CloseStatus, now time.Time) (satellite.Closed, error) {
	key := item{ConnectionsPartitionKey: str(connectionID)}
	rec, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &r.tables.Connections, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return satellite.Closed{}, internal(err, "read connection record")
	}
	if rec.Item == nil {
		return satellite.Closed{}, nil // closed already
	}
	conn := connectionFrom(rec.Item)
	closed := satellite.Closed{SatelliteID: conn.SatelliteID}
	if closed.SatelliteID == "" {
		closed.SatelliteID = getStr(rec.Item, "lastSatelliteId")
	}
	if closed.SatelliteID != "" {
		satKey := item{SatellitesPartitionKey: str(satelliteKey(closed.SatelliteID)), SatellitesSortKey: str(satelliteSort)}
		sat := satellite.Satellite{ID: closed.SatelliteID, Name: conn.SatelliteName, Region: conn.SatelliteRegion}
		edge := satellite.NewLifecycleEvent(satellite.EdgeDisconnected, connectionID, sat, time.Time{}, now)
		edge.CloseCode = status.Code
		writer := newWriter()
		recordEdge, names, values := edgeWrite(edge, writer)
		values[":disconnected"] = str(string(satellite.EdgeDisconnected))
		values[":conn"] = str(connectionID)
		values[":now"] = millis(now)
		values[":never"] = num(0)
		set := "SET lastConnectionEvent = :disconnected, closedConnectionId = :conn, lastDisconnectedAt = :now, " +
			lastSeenAttr + " = if_not_exists(" + heartbeatAttr + ", :never), " + recordEdge
		if status.MessageTooBig() {
			set += ", " + oversizedWrite
			values[":one"] = num(1)
		}
		upd, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                           &r.tables.Satellites,
			Key:                                 satKey,
			UpdateExpression:                    aws.String(set + " REMOVE " + heartbeatAttr + ", " + legacyHeartbeatAttr + ", connectionId, liveShard, staleAt"),
			ConditionExpression:                 aws.String("connectionId = :conn"),
			ExpressionAttributeNames:            names,
			ExpressionAttributeValues:           values,
			ReturnValues:                        types.ReturnValueAllOld,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		it, failed := conditionFailure(err)
		switch {
		case failed && wroteEdge(it, edge.ID, writer):
			// An earlier attempt of this write made the edge; its answer was
			// lost, and with it the last heartbeat.
			edge.LastSeenAt = getMillis(it, lastSeenAttr)
			closed.Disconnected, closed.Edge = true, edge
			if status.MessageTooBig() {
				// The record before is the one after less this close; the
				// close before the last is unknown, so this rare path may
				// log once more than once an hour.
				after := satelliteFrom(it).Oversized
				closed.Oversized = &satellite.OversizedClose{
					Before: satellite.OversizedMessages{Closes: after.Closes - 1, LastAt: after.PreviousAt}, After: after,
				}
			}
		case failed && status.MessageTooBig() && len(it) > 0:
			// Not the satellite's current connection: its state stays, but
			// the close still says what its agent sends.
			if closed.Oversized, err = r.recordOversized(ctx, satKey, now); err != nil {
				return closed, err
			}
		case failed:
			// Not the satellite's current connection: nothing to change.
		case err != nil:
			return closed, internal(err, "mark satellite disconnected")
		default:
			old := satelliteFrom(upd.Attributes)
			edge.Name, edge.Region, edge.LastSeenAt = old.Name, old.Region, old.LastHeartbeatAt
			closed.Disconnected, closed.Edge = true, edge
			if status.MessageTooBig() {
				closed.Oversized = &satellite.OversizedClose{Before: old.Oversized, After: old.Oversized.Closed(now)}
			}
		}
	}
	if _, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &r.tables.Connections, Key: key}); err != nil {
		return closed, internal(err, "delete connection record")
	}
	return closed, nil
}

// recordOversized records a close for a message over the limit on a
// satellite, if it still exists, and returns its record before and after.
func (r *Registry) recordOversized(ctx context.Context, key item, now time.Time) (*satellite.OversizedClose, error) {
	upd, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &r.tables.Satellites,
		Key:                       key,
		UpdateExpression:          aws.String("SET " + oversizedWrite),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: item{":now": millis(now), ":never": num(0), ":one": num(1)},
		ReturnValues:              types.ReturnValueAllOld,
	})
	if conditionFailed(err) {
		return nil, nil // deleted meanwhile
	}
	if err != nil {
		return nil, internal(err, "record oversized message close")
	}
	before := satelliteFrom(upd.Attributes).Oversized
	return &satellite.OversizedClose{Before: before, After: before.Closed(now)}, nil
}

// OnlineSatelliteIDs returns the satellites online at now: marked connected
// and not past their exact deadline (heartbeat + threshold, as the admin
// API's status reads it). The live index keys each satellite at most
// MaxLiveStep before that deadline, so one query per shard from now -
// MaxLiveStep returns every one of them; those keyed before now (a satellite
// that has missed heartbeats, never one heartbeating on time) are read to
// see which are still within their exact deadline.
func (r *Registry) OnlineSatelliteIDs(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	var doubtful []item
	for _, shard := range LiveShardKeys() {
		err := r.queryAll(ctx, &dynamodb.QueryInput{
			TableName:                 &r.tables.Satellites,
			IndexName:                 aws.String(LiveIndex),
			KeyConditionExpression:    aws.String("#shard = :shard AND #at >= :from"),
			ExpressionAttributeNames:  map[string]string{"#shard": LiveIndexPartKey, "#at": LiveIndexSortKey},
			ExpressionAttributeValues: item{":shard": str(shard), ":from": millis(now.Add(-MaxLiveStep))},
		}, func(it item) error {
			if getMillis(it, LiveIndexSortKey).Before(now) {
				doubtful = append(doubtful, item{SatellitesPartitionKey: it[SatellitesPartitionKey], SatellitesSortKey: it[SatellitesSortKey]})
			} else {
				ids = append(ids, satelliteIDOf(it))
			}
			return nil
		})
		if err != nil {
			return nil, internal(err, "list online satellites")
		}
	}
	items, err := r.batchGet(ctx, r.tables.Satellites, doubtful, false)
	if err != nil {
		return nil, internal(err, "list online satellites")
	}
	for _, it := range items {
		if live, at := liveDeadline(it); live && !at.Before(now) {
			ids = append(ids, satelliteIDOf(it))
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// liveDeadline reads a satellite item's exact heartbeat deadline: its
// heartbeat plus its threshold, or, for an item written before heartbeats
// were stored as heartbeatAttr, its key in the live index (then rounded up
// past the deadline). live is false when the item is no longer in the live
// index.
func liveDeadline(it item) (live bool, deadline time.Time) {
	at := getMillis(it, LiveIndexSortKey)
	if at.IsZero() || getStr(it, LiveIndexPartKey) == "" {
		return false, time.Time{}
	}
	if hb := getMillis(it, heartbeatAttr); !hb.IsZero() {
		return true, hb.Add(satellite.Satellite{OfflineThreshold: time.Duration(getNum(it, "offlineThresholdMs")) * time.Millisecond}.Threshold())
	}
	return true, at
}

// StaleSatellites returns the satellites still marked connected whose exact
// heartbeat deadline is before now. It reads only satellites that missed
// heartbeats: one query per live shard over the sparse index, bounded by
// now (a satellite's key there is at most MaxLiveStep before its exact
// deadline, never after it), then their items in batches, which tell the
// ones past their exact deadline from the ones whose deadline is still
// ahead (left for a later pass). A satellite whose item shows a heartbeat
// after the index was read is left out too.
func (r *Registry) StaleSatellites(ctx context.Context, now time.Time) ([]satellite.Stale, error) {
	var keys []item
	for _, shard := range LiveShardKeys() {
		n := 0
		err := r.queryIndex(ctx, shard, now, func(it item) error {
			keys = append(keys, item{SatellitesPartitionKey: it[SatellitesPartitionKey], SatellitesSortKey: it[SatellitesSortKey]})
			if n++; n == MaxStalePerShard {
				return errEnough
			}
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			return nil, internal(err, "read stale satellites")
		}
	}
	items, err := r.batchGet(ctx, r.tables.Satellites, keys, false)
	if err != nil {
		return nil, internal(err, "read stale satellites")
	}
	out := make([]satellite.Stale, 0, len(items))
	for _, it := range items {
		live, deadline := liveDeadline(it)
		at := getMillis(it, LiveIndexSortKey)
		if !live || !at.Before(now) || !deadline.Before(now) {
			continue
		}
		out = append(out, satellite.Stale{Satellite: satelliteFrom(it), StaleAt: at, HeartbeatAt: getMillis(it, heartbeatAttr)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StaleAt.Before(out[j].StaleAt) })
	return out, nil
}

// satelliteIDOf is the satellite id of an item of its partition (an index
// that projects keys only has no satelliteId attribute).
func satelliteIDOf(it item) string {
	return strings.TrimPrefix(getStr(it, SatellitesPartitionKey), satellitePrefix)
}

// CountOnline returns how many satellites are online at now: marked
// connected in the live index with a key not yet passed. It counts (Select
// COUNT) rather than reads items, but DynamoDB still bills the index items
// it counts: about 0.5 read units per 4 KB of index, once per count. A
// satellite that has missed heartbeats may leave the count up to
// MaxLiveStep before its exact deadline (OnlineSatelliteIDs reads those
// items; a gauge need not).
func (r *Registry) CountOnline(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for _, shard := range LiveShardKeys() {
		pages := dynamodb.NewQueryPaginator(r.db, &dynamodb.QueryInput{
			TableName:                 &r.tables.Satellites,
			IndexName:                 aws.String(LiveIndex),
			Select:                    types.SelectCount,
			KeyConditionExpression:    aws.String("#shard = :shard AND #at >= :now"),
			ExpressionAttributeNames:  map[string]string{"#shard": LiveIndexPartKey, "#at": LiveIndexSortKey},
			ExpressionAttributeValues: item{":shard": str(shard), ":now": millis(now)},
		})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return 0, internal(err, "count satellites online")
			}
			total += int(page.Count)
		}
	}
	return total, nil
}

func (r *Registry) queryIndex(ctx context.Context, shard string, before time.Time, fn func(item) error) error {
	return r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		IndexName:                 aws.String(LiveIndex),
		KeyConditionExpression:    aws.String("#shard = :shard AND #at < :before"),
		ExpressionAttributeNames:  map[string]string{"#shard": LiveIndexPartKey, "#at": LiveIndexSortKey},
		ExpressionAttributeValues: item{":shard": str(shard), ":before": millis(before)},
	}, fn)
}

// MaxStalePerShard bounds the satellites one sweep pass reads from each live
// shard, oldest key first: after a mass disconnect a pass reads and handles
// at most LiveShards times this many (8,000), well inside its budget, and
// leaves the rest, still in the index, to the next pass.
const MaxStalePerShard = 1000

// errEnough stops a query whose reader has what it needs.
var errEnough = errors.New("enough")

// HeartbeatLostEdgeID is the id of the heartbeat_lost edge of a satellite
// that passed deadline staleAt: every sweep that sees the same edge computes
// the same id.
func HeartbeatLostEdgeID(satelliteID string, staleAt time.Time) string {
	return satellite.EdgeID(satelliteID, satellite.EdgeHeartbeatLost, strconv.FormatInt(staleAt.UnixMilli(), 10))
}

// MarkHeartbeatLost moves a stale satellite to heartbeat_lost, out of the
// live index, and records the edge in its outbox, in one write conditional
// on the satellite still being connected with the key and the heartbeat the
// sweep read (the key alone may survive a heartbeat the sweep's eventually
// consistent read missed: a heartbeat moves it only once per LiveStep).
// won is false when another writer got there first (another sweep, or a
// heartbeat that arrived meanwhile); then it must not publish. An earlier
// attempt of this write whose answer was lost is recognised by its edge.
func (r *Registry) MarkHeartbeatLost(ctx context.Context, s satellite.Stale, now time.Time) (won bool, edge satellite.LifecycleEvent, err error) {
	edge = satellite.LifecycleEvent{
		ID: HeartbeatLostEdgeID(s.Satellite.ID, s.StaleAt), Edge: satellite.EdgeHeartbeatLost, SatelliteID: s.Satellite.ID,
		Name: s.Satellite.Name, Region: s.Satellite.Region, Status: satellite.StatusOffline,
		LastSeenAt: s.Satellite.LastHeartbeatAt, At: now,
	}
	writer := newWriter()
	recordEdge, names, values := edgeWrite(edge, writer)
	names["#shard"], names["#at"], names["#hb"] = LiveIndexPartKey, LiveIndexSortKey, heartbeatAttr
	values[":lost"] = str(string(satellite.EdgeHeartbeatLost))
	values[":connected"] = str(string(satellite.EdgeConnected))
	values[":now"], values[":observed"] = millis(now), millis(s.StaleAt)
	heartbeat := "attribute_not_exists(#hb)"
	if !s.HeartbeatAt.IsZero() {
		heartbeat, values[":heartbeat"] = "#hb = :heartbeat", millis(s.HeartbeatAt)
	}
	_, err = r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &r.tables.Satellites,
		Key:                                 item{SatellitesPartitionKey: str(satelliteKey(s.Satellite.ID)), SatellitesSortKey: str(satelliteSort)},
		UpdateExpression:                    aws.String("SET lastConnectionEvent = :lost, " + heartbeatLostAttr + " = :now, " + recordEdge + " REMOVE #shard, #at"),
		ConditionExpression:                 aws.String("lastConnectionEvent = :connected AND #at = :observed AND #at < :now AND " + heartbeat),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if it, failed := conditionFailure(err); failed {
		return wroteEdge(it, edge.ID, writer), edge, nil
	}
	if err != nil {
		return false, edge, internal(err, "mark heartbeat lost")
	}
	return true, edge, nil
}
