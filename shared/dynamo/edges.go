package dynamo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// The outbox of lifecycle edges. Every write that moves a satellite to an
// edge (connected, disconnected, heartbeat_lost) also records the edge in the
// satellite item's pendingEdges map, keyed by its stable id, in the same
// conditional write. Whoever made the edge publishes it and then confirms it
// (removes it from the map); an edge whose publication failed, or whose
// writer died, stays in the map, and the sweep publishes it again. So every
// edge is published at least once, and a writer whose first response was
// lost recognises its own edge in the map when its retry's condition fails.
//
// Satellites with pending edges are in the sparse Outbox index (outboxShard,
// outboxAt: when the oldest pending edge was recorded). The attributes are
// in attributes.go.

// newWriter returns a token naming one call's writes of an edge. Several
// writers can record the same edge (two sweeps finding one satellite stale):
// the token tells a writer whose condition failed whether the edge it finds
// is its own earlier attempt (its answer lost) or another writer's.
func newWriter() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// recordEdge adds to e the write that records ev, written by writer, in
// the outbox: "SET pendingEdges.#edge = :edge, outboxShard = ...,
// outboxAt = ...".
func recordEdge(e *expr, ev satellite.LifecycleEvent, writer string) {
	entry := item{entryEdgeField: str(string(ev.Edge)), entryAtField: millis(ev.At), entryWriterField: str(writer)}
	if !ev.LastSeenAt.IsZero() {
		entry[entryLastSeenField] = millis(ev.LastSeenAt)
	}
	for k, v := range edgeMarksItem(ev.EdgeMarks) {
		entry[k] = v
	}
	e.setTo(e.attr(pendingEdgesAttr).dot(e.alias("edge", ev.ID)), e.val("edge", &types.AttributeValueMemberM{Value: entry}))
	shard, at := e.attr(outboxShardAttr), e.attr(outboxAtAttr)
	e.setTo(shard, ifNotExists(shard, e.val("outboxShard", str(outboxShard(ev.SatelliteID)))))
	e.setTo(at, ifNotExists(at, e.val("edgeAt", millis(ev.At))))
}

// edgeMarksItem is how an outbox entry keeps an edge's marks: only those
// that apply, so a routine edge's entry is as small as before.
func edgeMarksItem(m satellite.EdgeMarks) item {
	out := item{}
	if m.CloseCode != 0 {
		out[entryCloseCodeField] = num(int64(m.CloseCode))
	}
	if m.Recovered {
		out[entryRecoveredField] = boolean(true)
	}
	if m.Flapping {
		out[entryReconnectAfterField] = num(m.ReconnectAfter.Milliseconds())
	}
	return out
}

// edgeMarksFrom reads the marks of an outbox entry.
func edgeMarksFrom(entry item) satellite.EdgeMarks {
	m := satellite.EdgeMarks{CloseCode: int(getNum(entry, entryCloseCodeField)), Recovered: getBool(entry, entryRecoveredField)}
	if _, ok := entry[entryReconnectAfterField]; ok {
		m.Flapping, m.ReconnectAfter = true, time.Duration(getNum(entry, entryReconnectAfterField))*time.Millisecond
	}
	return m
}

// wroteEdge reports whether a satellite item (as a failed condition returned
// it) holds edge id in its outbox as writer wrote it: the write whose
// condition failed had been applied by an earlier attempt whose answer was
// lost.
func wroteEdge(it item, id, writer string) bool {
	m, ok := it[pendingEdgesAttr].(*types.AttributeValueMemberM)
	if !ok {
		return false
	}
	entry, ok := m.Value[id].(*types.AttributeValueMemberM)
	return ok && getStr(entry.Value, entryWriterField) == writer
}

// ConfirmEdge implements satellite.Registry: it removes a published edge
// from the satellite's outbox, and the satellite from the Outbox index when
// it was the last; once the satellite is deleted, from its removal record's
// (confirmRemovalEdge). Confirming an edge twice changes nothing.
func (r *Registry) ConfirmEdge(ctx context.Context, satelliteID, edgeID string) error {
	key := satelliteItemKey(satelliteID)
	_, err := r.db.UpdateItem(ctx, confirmLast(edgeID).updateItem(r.tables.Satellites, key))
	if !conditionFailed(err) {
		return internal(err, "confirm published edge")
	}
	// Not the only pending edge (or already confirmed): remove just this
	// one; the satellite stays in the index for the others.
	in := confirmOne(edgeID).updateItem(r.tables.Satellites, key)
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	_, err = r.db.UpdateItem(ctx, in)
	if it, failed := conditionFailure(err); failed {
		if len(it) == 0 {
			// No satellite item: it was deleted, and its pending edges
			// moved to its removal record.
			return r.confirmRemovalEdge(ctx, satelliteID, edgeID)
		}
		return nil // confirmed already
	}
	return internal(err, "confirm published edge")
}

// confirmLast removes edge edgeID from an item's outbox, and the item from
// the Outbox index, on condition that it is the only pending edge.
func confirmLast(edgeID string) *expr {
	e := newExpr()
	edges := e.attr(pendingEdgesAttr)
	edge := edges.dot(e.alias("edge", edgeID))
	e.removes(edge, e.attr(outboxShardAttr), e.attr(outboxAtAttr))
	return e.when(and(exists(edge), eq(size(edges), e.val("one", num(1)))))
}

// confirmOne removes edge edgeID from an item's outbox, on condition that
// it is there.
func confirmOne(edgeID string) *expr {
	e := newExpr()
	edge := e.attr(pendingEdgesAttr).dot(e.alias("edge", edgeID))
	return e.removes(edge).when(exists(edge))
}

// PendingEdges returns the satellites holding an edge recorded before
// before that is not confirmed published: one query per shard of the
// Outbox index.
func (r *Registry) PendingEdges(ctx context.Context, before time.Time) ([]satellite.Satellite, error) {
	var out []satellite.Satellite
	for _, shard := range shardKeys(outboxShardPrefix, OutboxShards) {
		err := r.queryAll(ctx, &dynamodb.QueryInput{
			TableName:                 &r.tables.Satellites,
			IndexName:                 aws.String(OutboxIndex),
			KeyConditionExpression:    aws.String("#shard = :shard AND #at < :before"),
			ExpressionAttributeNames:  map[string]string{"#shard": outboxShardAttr, "#at": outboxAtAttr},
			ExpressionAttributeValues: item{":shard": str(shard), ":before": millis(before)},
		}, func(it item) error { out = append(out, satelliteFrom(it)); return nil })
		if err != nil {
			return nil, internal(err, "read pending edges")
		}
	}
	return out, nil
}
