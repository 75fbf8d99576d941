package dynamo

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// StaleSatellites returns the satellites still marked connected whose
// heartbeat deadline (lastHeartbeatAt + their own threshold) is before now.
// It reads only those: one query per live shard over the sparse index,
// bounded by the deadline.
func (r *Registry) StaleSatellites(ctx context.Context, now time.Time) ([]satellite.Stale, error) {
	var out []satellite.Stale
	for _, shard := range LiveShardKeys() {
		err := r.queryIndex(ctx, shard, now, func(it item) {
			out = append(out, satellite.Stale{Satellite: satelliteFrom(it), StaleAt: getMillis(it, LiveIndexSortKey)})
		})
		if err != nil {
			return nil, internal(err, "read stale satellites")
		}
	}
	return out, nil
}

// CountOnline returns how many satellites are online at now: marked
// connected in the live index with a deadline not yet passed. It counts
// (Select COUNT) rather than reads items, but DynamoDB still bills the index
// items it counts: about 0.5 read units per 4 KB of index, once per sweep.
func (r *Registry) CountOnline(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for _, shard := range LiveShardKeys() {
		in := &dynamodb.QueryInput{
			TableName:                 &r.tables.Satellites,
			IndexName:                 aws.String(LiveIndex),
			Select:                    types.SelectCount,
			KeyConditionExpression:    aws.String("#shard = :shard AND #at >= :now"),
			ExpressionAttributeNames:  map[string]string{"#shard": LiveIndexPartKey, "#at": LiveIndexSortKey},
			ExpressionAttributeValues: item{":shard": str(shard), ":now": millis(now)},
		}
		for {
			out, err := r.db.Query(ctx, in)
			if err != nil {
				return 0, internal(err, "count satellites online")
			}
			total += int(out.Count)
			if len(out.LastEvaluatedKey) == 0 {
				break
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
	return total, nil
}

func (r *Registry) queryIndex(ctx context.Context, shard string, before time.Time, fn func(item)) error {
	return r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		IndexName:                 aws.String(LiveIndex),
		KeyConditionExpression:    aws.String("#shard = :shard AND #at < :before"),
		ExpressionAttributeNames:  map[string]string{"#shard": LiveIndexPartKey, "#at": LiveIndexSortKey},
		ExpressionAttributeValues: item{":shard": str(shard), ":before": millis(before)},
	}, func(it item) error { fn(it); return nil })
}

// HeartbeatLostEdgeID is the id of the heartbeat_lost edge of a satellite
// that passed deadline staleAt: every sweep that sees the same edge computes
// the same id.
func HeartbeatLostEdgeID(satelliteID string, staleAt time.Time) string {
	return satellite.EdgeID(satelliteID, satellite.EdgeHeartbeatLost, strconv.FormatInt(staleAt.UnixMilli(), 10))
}

// MarkHeartbeatLost moves a stale satellite to heartbeat_lost, out of the
// live index, and records the edge in its outbox, in one write conditional
// on the satellite still being connected with the deadline the sweep read.
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
	names["#shard"], names["#at"] = LiveIndexPartKey, LiveIndexSortKey
	values[":lost"] = str(string(satellite.EdgeHeartbeatLost))
	values[":connected"] = str(string(satellite.EdgeConnected))
	values[":now"], values[":observed"] = millis(now), millis(s.StaleAt)
	_, err = r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &r.tables.Satellites,
		Key:                                 item{SatellitesPartitionKey: str(satelliteKey(s.Satellite.ID)), SatellitesSortKey: str(satelliteSort)},
		UpdateExpression:                    aws.String("SET lastConnectionEvent = :lost, " + recordEdge + " REMOVE #shard, #at"),
		ConditionExpression:                 aws.String("lastConnectionEvent = :connected AND #at = :observed AND #at < :now"),
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

// UnauthenticatedConnections returns connections that connected before
// before and have not authenticated: one query per shard of the index.
func (r *Registry) UnauthenticatedConnections(ctx context.Context, before time.Time) ([]satellite.Connection, error) {
	return r.connectionsBefore(ctx, UnauthenticatedIndex, UnauthenticatedIndexPartKey, shardKeys(unauthShardPrefix, ConnectionShards), UnauthenticatedIndexSortKey, millis(before))
}

// ExpiredConnections returns connection records past their expiry at now,
// which DynamoDB's TTL has not deleted yet: one query per shard of the index.
func (r *Registry) ExpiredConnections(ctx context.Context, now time.Time) ([]satellite.Connection, error) {
	return r.connectionsBefore(ctx, ExpiryIndex, ExpiryIndexPartKey, shardKeys(expiryShardPrefix, ConnectionShards), ExpiryIndexSortKey, num(now.Unix()))
}

func (r *Registry) connectionsBefore(ctx context.Context, index, partKey string, shards []string, sortKey string, before types.AttributeValue) ([]satellite.Connection, error) {
	var out []satellite.Connection
	for _, shard := range shards {
		err := r.queryAll(ctx, &dynamodb.QueryInput{
			TableName:                 &r.tables.Connections,
			IndexName:                 aws.String(index),
			KeyConditionExpression:    aws.String("#p = :p AND #s < :before"),
			ExpressionAttributeNames:  map[string]string{"#p": partKey, "#s": sortKey},
			ExpressionAttributeValues: item{":p": str(shard), ":before": before},
		}, func(it item) error { out = append(out, connectionFrom(it)); return nil })
		if err != nil {
			return nil, internal(err, "read connections from "+index)
		}
	}
	return out, nil
}
