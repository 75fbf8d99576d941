package dynamo

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

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
		return true, hb.Add(satellite.Satellite{OfflineThreshold: time.Duration(getNum(it, satelliteThresholdAttr)) * time.Millisecond}.Threshold())
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
	e := newExpr()
	nowValue, staleAt, heartbeat := e.val("now", millis(now)), e.attr(LiveIndexSortKey), e.attr(heartbeatAttr)
	e.setTo(e.attr(lastEdgeAttr), e.val("lost", str(string(satellite.EdgeHeartbeatLost))))
	e.setTo(e.attr(heartbeatLostAttr), nowValue)
	recordEdge(e, edge, writer)
	e.removes(e.attr(LiveIndexPartKey), staleAt)
	sameHeartbeat := notExists(heartbeat)
	if !s.HeartbeatAt.IsZero() {
		sameHeartbeat = eq(heartbeat, e.val("heartbeat", millis(s.HeartbeatAt)))
	}
	e.when(and(eq(e.attr(lastEdgeAttr), connected(e)), eq(staleAt, e.val("observed", millis(s.StaleAt))), lt(staleAt, nowValue), sameHeartbeat))
	in := e.updateItem(r.tables.Satellites, satelliteItemKey(s.Satellite.ID))
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	_, err = r.db.UpdateItem(ctx, in)
	if it, failed := conditionFailure(err); failed {
		return wroteEdge(it, edge.ID, writer), edge, nil
	}
	if err != nil {
		return false, edge, internal(err, "mark heartbeat lost")
	}
	return true, edge, nil
}
