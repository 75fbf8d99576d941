package dynamo

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// recordOversizedClose adds to e the record of one more close for a
// message over the limit at now, moving the latest to the one before (0
// when there was none); DynamoDB evaluates every operand against the item
// before the update.
func recordOversizedClose(e *expr, now time.Time) {
	never := e.val("never", num(0))
	e.setTo(e.attr(oversizedPrevAtAttr), ifNotExists(e.attr(oversizedAtAttr), never))
	e.setTo(e.attr(oversizedAtAttr), e.val("now", millis(now)))
	e.setTo(e.attr(oversizedClosesAttr), plus(ifNotExists(e.attr(oversizedClosesAttr), never), e.val("one", num(1))))
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
		closed.SatelliteID = getStr(rec.Item, lastSatelliteAttr)
	}
	if closed.SatelliteID != "" {
		satKey := satelliteItemKey(closed.SatelliteID)
		sat := satellite.Satellite{ID: closed.SatelliteID, Name: conn.SatelliteName, Region: conn.SatelliteRegion}
		edge := satellite.NewLifecycleEvent(satellite.EdgeDisconnected, connectionID, sat, time.Time{}, now)
		edge.CloseCode = status.Code
		writer := newWriter()
		e := newExpr()
		conn := e.val("conn", str(connectionID))
		e.setTo(e.attr(lastEdgeAttr), e.val("disconnected", str(string(satellite.EdgeDisconnected))))
		e.setTo(e.attr(closedConnectionAttr), conn)
		e.setTo(e.attr(lastDisconnectAttr), e.val("now", millis(now)))
		e.setTo(e.attr(lastSeenAttr), ifNotExists(e.attr(heartbeatAttr), e.val("never", num(0))))
		recordEdge(e, edge, writer)
		if status.MessageTooBig() {
			recordOversizedClose(e, now)
		}
		e.removes(e.attr(heartbeatAttr), e.attr(legacyHeartbeatAttr), e.attr(currentConnAttr), e.attr(LiveIndexPartKey), e.attr(LiveIndexSortKey))
		e.when(eq(e.attr(currentConnAttr), conn))
		in := e.updateItem(r.tables.Satellites, satKey)
		in.ReturnValues = types.ReturnValueAllOld
		in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		upd, err := r.db.UpdateItem(ctx, in)
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
	e := whereExists(SatellitesPartitionKey)
	recordOversizedClose(e, now)
	in := e.updateItem(r.tables.Satellites, key)
	in.ReturnValues = types.ReturnValueAllOld
	upd, err := r.db.UpdateItem(ctx, in)
	if conditionFailed(err) {
		return nil, nil // deleted meanwhile
	}
	if err != nil {
		return nil, internal(err, "record oversized message close")
	}
	before := satelliteFrom(upd.Attributes).Oversized
	return &satellite.OversizedClose{Before: before, After: before.Closed(now)}, nil
}
