package dynamo

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
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

// keepUntilAttr is the epoch second a removal record's expiresAt takes
// when its last edge is confirmed.
const keepUntilAttr = "keepUntil"

// removalKey is the key of a deleted satellite's removal record.
func removalKey(satelliteID string) item {
	return item{SatellitesPartitionKey: str(removalPrefix + satelliteID), SatellitesSortKey: str(removalSort)}
}

// removedProjection reads, of a satellite's partition, each item's sort key
// and what the removal record takes from the satellite item.
var removedProjection = map[string]string{
	"#sk": SatellitesSortKey, "#id": "satelliteId", "#name": "name", "#region": "region", "#created": "createdAt",
	"#hb": heartbeatAttr, "#legacyHb": legacyHeartbeatAttr, "#seen": lastSeenAttr, "#edges": pendingEdgesAttr, "#outboxAt": outboxAtAttr,
}

const removedProjectionExpression = "#sk, #id, #name, #region, #created, #hb, #legacyHb, #seen, #edges, #outboxAt"

// removalRecord returns the removal record of the satellite whose item is
// sat (as removedProjection reads it), removed at now, and its removed
// edge. The record carries the satellite's pending edges as they are.
func removalRecord(sat item, now time.Time) (item, satellite.LifecycleEvent) {
	s := satelliteFrom(sat)
	lastSeen := s.LastHeartbeatAt
	if lastSeen.IsZero() {
		lastSeen = getMillis(sat, lastSeenAttr)
	}
	edge := satellite.NewLifecycleEvent(satellite.EdgeRemoved, strconv.FormatInt(s.CreatedAt.UnixMilli(), 10), s, lastSeen, now)
	entry := item{"edge": str(string(edge.Edge)), "at": millis(now), "by": str(newWriter())}
	if !lastSeen.IsZero() {
		entry["lastSeenAt"] = millis(lastSeen)
	}
	edges := item{}
	if m, ok := sat[pendingEdgesAttr].(*types.AttributeValueMemberM); ok {
		for id, v := range m.Value {
			edges[id] = v
		}
	}
	edges[edge.ID] = &types.AttributeValueMemberM{Value: entry}
	record := removalKey(s.ID)
	record["satelliteId"] = str(s.ID)
	record["name"] = str(s.Name)
	record["region"] = str(s.Region)
	record["removedAt"] = millis(now)
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
		record["createdAt"] = millis(s.CreatedAt)
	}
	return record, edge
}

// unchangedOutbox is the condition that the satellite item's outbox holds
// exactly the edges of sat: edges are only ever added and removed, so the
// same size with each of them present is the same set. Deleting the item
// under it loses no edge recorded, or confirmed, after sat was read.
func unchangedOutbox(sat item) (condition string, names map[string]string, values item) {
	names = map[string]string{"#pk": SatellitesPartitionKey, "#edges": pendingEdgesAttr}
	var ids []string
	if m, ok := sat[pendingEdgesAttr].(*types.AttributeValueMemberM); ok {
		for id := range m.Value {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return "attribute_exists(#pk) AND (attribute_not_exists(#edges) OR size(#edges) = :none)", names, item{":none": num(0)}
	}
	sort.Strings(ids)
	condition = "attribute_exists(#pk) AND size(#edges) = :pending"
	for i, id := range ids {
		ph := "#pending" + strconv.Itoa(i)
		names[ph] = id
		condition += " AND attribute_exists(#edges." + ph + ")"
	}
	return condition, names, item{":pending": num(int64(len(ids)))}
}

// confirmRemovalEdge removes a published edge from a deleted satellite's
// removal record; the last one takes the record out of the Outbox index and
// sets its expiry. Confirming one that is not there changes nothing.
func (r *Registry) confirmRemovalEdge(ctx context.Context, satelliteID, edgeID string) error {
	key := removalKey(satelliteID)
	names := map[string]string{"#edges": pendingEdgesAttr, "#edge": edgeID, "#exp": SatellitesTTLAttribute, "#keep": keepUntilAttr}
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &r.tables.Satellites,
		Key:                       key,
		UpdateExpression:          aws.String("SET #exp = #keep REMOVE #edges.#edge, " + outboxShardAttr + ", " + outboxAtAttr),
		ConditionExpression:       aws.String("attribute_exists(#edges.#edge) AND size(#edges) = :one"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: item{":one": num(1)},
	})
	if !conditionFailed(err) {
		return internal(err, "confirm published edge of a removed satellite")
	}
	_, err = r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &r.tables.Satellites,
		Key:                      key,
		UpdateExpression:         aws.String("REMOVE #edges.#edge"),
		ConditionExpression:      aws.String("attribute_exists(#edges.#edge)"),
		ExpressionAttributeNames: map[string]string{"#edges": pendingEdgesAttr, "#edge": edgeID},
	})
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "confirm published edge of a removed satellite")
}
