package dynamo

import (
	"context"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// DeleteSatellite removes a satellite, its assignments and the records of
// its connections, and returns its removed edge, recorded in its removal
// record (see removal.go) in the write that deletes the satellite item.
// ENOTFOUND when it does not exist.
func (r *Registry) DeleteSatellite(ctx context.Context, satelliteID string, now time.Time) (satellite.LifecycleEvent, error) {
	pk := str(satelliteKey(satelliteID))
	var (
		keys []string
		sat  item
	)
	e := newExpr()
	e.key(eq(e.attr(SatellitesPartitionKey), e.val("pk", pk)))
	e.project(removedAttributes...)
	err := r.queryAll(ctx, e.query(r.tables.Satellites, true), func(it item) error {
		sk := getStr(it, SatellitesSortKey)
		if sk == satelliteSort {
			sat = it
		}
		keys = append(keys, sk)
		return nil
	})
	if err != nil {
		return satellite.LifecycleEvent{}, internal(err, "read satellite items")
	}
	if len(keys) == 0 {
		return satellite.LifecycleEvent{}, satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
	}
	conns, err := r.SatelliteConnections(ctx, satelliteID, now.Add(-satellite.ConnectionRecordTTL))
	if err != nil {
		return satellite.LifecycleEvent{}, err
	}
	// Assignments first, and the satellite and profile items last and
	// together, so that a failure part way leaves a satellite that can be
	// deleted again, and a profile write (tags, a sync-state report), which
	// checks that the satellite item exists in its own transaction, cannot
	// bring the profile back after it.
	keys = slices.DeleteFunc(keys, func(sk string) bool { return sk == satelliteSort || sk == profileSort })
	for _, sk := range keys {
		if _, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: &r.tables.Satellites,
			Key:       item{SatellitesPartitionKey: pk, SatellitesSortKey: str(sk)},
		}); err != nil {
			return satellite.LifecycleEvent{}, internal(err, "delete satellite item")
		}
	}
	edge, err := r.removeSatelliteItem(ctx, satelliteID, sat, now)
	if err != nil {
		return satellite.LifecycleEvent{}, err
	}
	for _, id := range conns {
		if _, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: &r.tables.Connections,
			Key:       item{ConnectionsPartitionKey: str(id)},
		}); err != nil {
			return edge, internal(err, "delete connection record")
		}
	}
	return edge, nil
}

// removeSatelliteItem deletes the satellite and profile items and writes
// the satellite's removal record with its removed edge, in one transaction
// conditional on the satellite's outbox being as read (sat; nil when there
// was no satellite item). An edge recorded or confirmed meanwhile makes it
// read the satellite item again and retry. ENOTFOUND when the satellite
// item is gone.
func (r *Registry) removeSatelliteItem(ctx context.Context, satelliteID string, sat item, now time.Time) (satellite.LifecycleEvent, error) {
	pk := str(satelliteKey(satelliteID))
	key := item{SatellitesPartitionKey: pk, SatellitesSortKey: str(satelliteSort)}
	for attempt := 0; ; attempt++ {
		if len(sat) == 0 {
			return satellite.LifecycleEvent{}, satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
		}
		record, edge := removalRecord(sat, now)
		err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Delete: unchangedOutbox(sat).transactDelete(r.tables.Satellites, key)},
			{Delete: &types.Delete{TableName: &r.tables.Satellites, Key: profileKey(satelliteID)}},
			{Put: &types.Put{TableName: &r.tables.Satellites, Item: record}},
		}})
		failed, _, ok := cancelled(err)
		switch {
		case err == nil:
			return edge, nil
		case ok && len(failed) > 0 && failed[0] && attempt < deleteRetries:
			// Its outbox changed (or it is gone): read it again.
			if sat, err = r.satelliteItem(ctx, key); err != nil {
				return satellite.LifecycleEvent{}, err
			}
			continue
		}
		return satellite.LifecycleEvent{}, internal(err, "delete satellite item")
	}
}
