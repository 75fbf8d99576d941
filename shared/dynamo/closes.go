package dynamo

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// oversizedWrite records one more close for a message over the limit at
// :now, moving the latest to the one before (:never, 0, when there was
// none); DynamoDB evaluates every operand against the item before the
// update.
const oversizedWrite = oversizedPrevAtAttr + " = if_not_exists(" + oversizedAtAttr + ", :never), " + oversizedAtAttr + " = :now, " +
	oversizedClosesAttr + " = if_not_exists(" + oversizedClosesAttr + ", :never) + :one"

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
		closed.SatelliteID = getStr(rec.Item, lastSatelliteAttr)
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
		set := "SET lastConnectionEvent = :disconnected, " + closedConnectionAttr + " = :conn, lastDisconnectedAt = :now, " +
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
