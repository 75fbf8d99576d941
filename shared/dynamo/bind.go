package dynamo

import (
	"context"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// BindConnection implements satellite.Registry. The connected edge is
// marked as sat shows the satellite (satellite.ReconnectMarks); the write
// is conditional on the heartbeat-loss mark being still as sat shows it,
// and is made again when a sweep marked the satellite lost meanwhile, so a
// loss the sweep reported is always followed by a connected edge marked
// recovered.
func (r *Registry) BindConnection(ctx context.Context, connectionID string, sat satellite.Satellite, verifiedHash string, capabilities []string, now time.Time) (satellite.LifecycleEvent, error) {
	for attempt := 0; ; attempt++ {
		edge, lost, err := r.bindConnection(ctx, connectionID, sat, verifiedHash, capabilities, now)
		if lost == nil || attempt == bindRetries {
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
	set, remove := "SET connectionId = :conn, "+connectedEdge+", "+recordEdge, " REMOVE "+closedConnectionAttr+", authFailures, authFailedAt, "+heartbeatLostAttr
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
					"tokenGeneration = :gen, #expiry = :expiry" + recordSet + " REMOVE #unauth, " + lastSatelliteAttr + recordRemove),
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
		UpdateExpression:          aws.String("SET #unauth = :unauth, " + lastSatelliteAttr + " = :sid REMOVE #sid, satelliteName, satelliteRegion, authenticatedAt, authAttemptAt"),
		ConditionExpression:       aws.String("#sid = :sid"),
		ExpressionAttributeNames:  map[string]string{"#sid": BySatelliteIndexPartKey, "#unauth": UnauthenticatedIndexPartKey},
		ExpressionAttributeValues: item{":sid": str(satelliteID), ":unauth": str(unauthShard(connectionID))},
	})
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "unbind connection")
}
