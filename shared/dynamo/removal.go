package dynamo

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Deleting a satellite deletes its satellite item, and with it the outbox
// every edge is published from. So the deletion writes, in the same
// transaction, the satellite's removal record: an item of its own
// partition (removalPrefix) holding the removed edge and the edges still
// pending on the satellite, in the Outbox index like any satellite with
// pending edges. Whoever deleted the satellite publishes the removed edge
// and confirms it; ConfirmEdge finds an edge there once the satellite item
// is gone, and the sweep publishes again whatever stays unconfirmed. Once
// the record's last edge is confirmed it leaves the Outbox index and
// expires removalKeep after the removal (the table's TTL).

// removalKeep is how long after its removal a deleted satellite's record
// stays, once every edge in it is confirmed published.
const removalKeep = 7 * 24 * time.Hour

// removalKey is the key of a deleted satellite's removal record.
func removalKey(satelliteID string) item {
	return item{SatellitesPartitionKey: str(removalPrefix + satelliteID), SatellitesSortKey: str(removalSort)}
}

// removedAttributes are what DeleteSatellite reads of each item of a
// satellite's partition: its sort key, and what the removal record takes
// from the satellite item.
var removedAttributes = []string{
	SatellitesSortKey, satelliteIDAttr, nameAttr, regionAttr, createdAtAttr,
	heartbeatAttr, legacyHeartbeatAttr, lastSeenAttr, pendingEdgesAttr, outboxAtAttr,
}

// removalRecord returns the removal record of the satellite whose item is
// sat (its removedAttributes, as DeleteSatellite reads them), removed at now, and its removed
// edge. The record carries the satellite's pending edges as they are.
func removalRecord(sat item, now time.Time) (item, satellite.LifecycleEvent) {
	s := satelliteFrom(sat)
	lastSeen := s.LastHeartbeatAt
	if lastSeen.IsZero() {
		lastSeen = getMillis(sat, lastSeenAttr)
	}
	edge := satellite.NewLifecycleEvent(satellite.EdgeRemoved, strconv.FormatInt(s.CreatedAt.UnixMilli(), 10), s, lastSeen, now)
	entry := item{entryEdgeField: str(string(edge.Edge)), entryAtField: millis(now), entryWriterField: str(newWriter())}
	if !lastSeen.IsZero() {
		entry[entryLastSeenField] = millis(lastSeen)
	}
	edges := item{}
	if m, ok := sat[pendingEdgesAttr].(*types.AttributeValueMemberM); ok {
		for id, v := range m.Value {
			edges[id] = v
		}
	}
	edges[edge.ID] = &types.AttributeValueMemberM{Value: entry}
	record := removalKey(s.ID)
	record[satelliteIDAttr] = str(s.ID)
	record[nameAttr] = str(s.Name)
	record[regionAttr] = str(s.Region)
	record[removedAtAttr] = millis(now)
	record[keepUntilAttr] = num(now.Add(removalKeep).Unix())
	record[pendingEdgesAttr] = &types.AttributeValueMemberM{Value: edges}
	record[outboxShardAttr] = str(outboxShard(s.ID))
	record[outboxAtAttr] = millis(now)
	if at, ok := sat[outboxAtAttr]; ok {
		record[outboxAtAttr] = at // when its oldest pending edge was recorded
	}
	if seen, ok := sat[lastSeenAttr]; ok {
		record[lastSeenAttr] = seen // for a pending disconnected edge
	}
	if !s.CreatedAt.IsZero() {
		record[createdAtAttr] = millis(s.CreatedAt)
	}
	return record, edge
}

// unchangedOutbox is the condition that the satellite item's outbox holds
// exactly the edges of sat: edges are only ever added and removed, so the
// same size with each of them present is the same set. Deleting the item
// under it loses no edge recorded, or confirmed, after sat was read.
func unchangedOutbox(sat item) *expr {
	e := whereExists(SatellitesPartitionKey)
	edges := e.attr(pendingEdgesAttr)
	var ids []string
	if m, ok := sat[pendingEdgesAttr].(*types.AttributeValueMemberM); ok {
		for id := range m.Value {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return e.when(or(notExists(edges), eq(size(edges), e.val("none", num(0)))))
	}
	sort.Strings(ids)
	e.when(eq(size(edges), e.val("pending", num(int64(len(ids))))))
	for i, id := range ids {
		e.when(exists(edges.dot(e.alias("pending"+strconv.Itoa(i), id))))
	}
	return e
}

// confirmRemovalEdge removes a published edge from a deleted satellite's
// removal record; the last one takes the record out of the Outbox index and
// sets its expiry. Confirming one that is not there changes nothing.
func (r *Registry) confirmRemovalEdge(ctx context.Context, satelliteID, edgeID string) error {
	key := removalKey(satelliteID)
	// The last one: the record leaves the Outbox index and expires.
	e := confirmLast(edgeID)
	e.setTo(e.attr(SatellitesTTLAttribute), e.attr(keepUntilAttr))
	_, err := r.db.UpdateItem(ctx, e.updateItem(r.tables.Satellites, key))
	if !conditionFailed(err) {
		return internal(err, "confirm published edge of a removed satellite")
	}
	_, err = r.db.UpdateItem(ctx, confirmOne(edgeID).updateItem(r.tables.Satellites, key))
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "confirm published edge of a removed satellite")
}
