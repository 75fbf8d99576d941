package dynamo

import (
	"context"
	"slices"
	"time"

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
	// The satellite item: the connection current, connected, the edge in
	// its outbox, on condition that the token is still the verified one
	// and the heartbeat-loss mark still as sat shows it.
	sate := newExpr()
	sate.setTo(sate.attr(currentConnAttr), sate.val("conn", str(connectionID)))
	setConnected(sate, sat.ID, sat.OfflineThreshold, now)
	recordEdge(sate, edge, newWriter())
	sate.removes(sate.attr(closedConnectionAttr), sate.attr(authFailuresAttr), sate.attr(authFailedAtAttr), sate.attr(heartbeatLostAttr))
	lostMark := notExists(sate.attr(heartbeatLostAttr))
	if !sat.HeartbeatLostAt.IsZero() {
		lostMark = eq(sate.attr(heartbeatLostAttr), sate.val("lostAt", millis(sat.HeartbeatLostAt)))
	}
	sate.when(and(exists(sate.attr(SatellitesPartitionKey)), eq(sate.attr(tokenHashAttr), sate.val("hash", str(verifiedHash))), lostMark))
	// nil keeps what is stored (an agent that does not send the field); a
	// list, even an empty one, replaces it. An empty list is stored as one,
	// so "said it offers nothing" stays apart from "never said".
	if capabilities != nil && (sat.Capabilities == nil || !slices.Equal(capabilities, sat.Capabilities)) {
		sate.setTo(sate.attr(capabilitiesAttr), sate.val("caps", stringList(capabilities)))
	}
	// The record: bound to the satellite, out of the Unauthenticated index.
	// It carries the satellite's threshold override, as it carries its
	// name: a heartbeat rounds its key in the live index by it (see
	// LiveStep) without reading the satellite.
	rec := newExpr()
	rec.setTo(rec.attr(BySatelliteIndexPartKey), rec.val("sid", str(sat.ID)))
	rec.setTo(rec.attr(satelliteNameAttr), rec.val("name", str(sat.Name)))
	rec.setTo(rec.attr(satelliteRegionAttr), rec.val("region", str(sat.Region)))
	rec.setTo(rec.attr(authenticatedAtAttr), rec.val("now", millis(now)))
	rec.setTo(rec.attr(tokenGenerationAttr), rec.val("gen", num(sat.TokenGeneration)))
	rec.setTo(rec.attr(ExpiryIndexPartKey), rec.val("expiry", str(expiryShard(connectionID))))
	rec.removes(rec.attr(UnauthenticatedIndexPartKey), rec.attr(lastSatelliteAttr))
	if sat.OfflineThreshold > 0 {
		rec.setTo(rec.attr(connectionThresholdAttr), rec.val("threshold", num(sat.OfflineThreshold.Milliseconds())))
	} else {
		rec.removes(rec.attr(connectionThresholdAttr))
	}
	// The record must exist: one that is gone belongs to a closed
	// connection (its $disconnect, or the sweep, removed it), and binding
	// would bring it back.
	rec.when(and(exists(rec.attr(ConnectionsPartitionKey)), notExists(rec.attr(BySatelliteIndexPartKey))))
	recUpdate := rec.transactUpdate(r.tables.Connections, item{ConnectionsPartitionKey: str(connectionID)})
	recUpdate.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	satUpdate := sate.transactUpdate(r.tables.Satellites, satelliteItemKey(sat.ID))
	satUpdate.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	err = r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{{Update: recUpdate}, {Update: satUpdate}}})
	if failed, reasons, ok := cancelled(err); ok && len(failed) == 2 {
		switch {
		case failed[0] && len(reasons[0].Item) == 0:
			return edge, nil, satellite.Errorf(satellite.EGONE, "connection %s is closed", connectionID)
		case failed[0]:
			return edge, nil, satellite.Errorf(satellite.ECONFLICT, "connection %s is already authenticated", connectionID)
		case failed[1] && len(reasons[1].Item) > 0 && getStr(reasons[1].Item, tokenHashAttr) == verifiedHash:
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
	// lastSatelliteId lets the close of this connection still find the
	// satellite whose current connection it is.
	e := newExpr()
	sid := e.val("sid", str(satelliteID))
	e.setTo(e.attr(UnauthenticatedIndexPartKey), e.val("unauth", str(unauthShard(connectionID))))
	e.setTo(e.attr(lastSatelliteAttr), sid)
	e.removes(e.attr(BySatelliteIndexPartKey), e.attr(satelliteNameAttr), e.attr(satelliteRegionAttr), e.attr(authenticatedAtAttr), e.attr(authAttemptAtAttr))
	e.when(eq(e.attr(BySatelliteIndexPartKey), sid))
	_, err := r.db.UpdateItem(ctx, e.updateItem(r.tables.Connections, item{ConnectionsPartitionKey: str(connectionID)}))
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "unbind connection")
}
