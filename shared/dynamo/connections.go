package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// OpenConnection implements satellite.Registry.
func (r *Registry) OpenConnection(ctx context.Context, c satellite.Connection) error {
	_, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &r.tables.Connections,
		Item: item{
			ConnectionsPartitionKey:     str(c.ID),
			UnauthenticatedIndexSortKey: millis(c.ConnectedAt),
			ConnectionsTTLAttribute:     num(c.ExpiresAt.Unix()),
			UnauthenticatedIndexPartKey: str(unauthShard(c.ID)),
			ExpiryIndexPartKey:          str(expiryShard(c.ID)),
		},
	})
	return internal(err, "record connection")
}

// Connection implements satellite.Registry.
func (r *Registry) Connection(ctx context.Context, connectionID string, now time.Time) (satellite.Connection, error) {
	// An eventually consistent read costs half a strongly consistent one and
	// is what almost every frame gets: the record of a connection that
	// authenticated a while ago. Only a record that reads as missing or
	// not (yet) authenticated is read again, consistently: it may have just
	// been bound. An authenticated record read a moment late is as safe as
	// a cached binding: every write a frame causes is conditional on the
	// stored state.
	c, found, err := r.readConnection(ctx, connectionID, false)
	if err == nil && (!found || !c.Authenticated()) {
		c, found, err = r.readConnection(ctx, connectionID, true)
	}
	switch {
	case err != nil:
		return satellite.Connection{}, internal(err, "read connection")
	case !found:
		return satellite.Connection{}, satellite.Errorf(satellite.ENOTFOUND, "no record of connection %s", connectionID)
	case c.Expired(now):
		return satellite.Connection{}, satellite.Errorf(satellite.ENOTFOUND, "connection %s has expired", connectionID)
	}
	return c, nil
}

func (r *Registry) readConnection(ctx context.Context, connectionID string, consistent bool) (satellite.Connection, bool, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &r.tables.Connections,
		Key:            item{ConnectionsPartitionKey: str(connectionID)},
		ConsistentRead: aws.Bool(consistent),
	})
	if err != nil || out.Item == nil {
		return satellite.Connection{}, false, err
	}
	return connectionFrom(out.Item), true, nil
}

// ClaimAuthentication implements satellite.Registry: one conditional write
// that both claims the attempt and returns the record, so an authenticate
// costs no more requests than reading the record did.
func (r *Registry) ClaimAuthentication(ctx context.Context, connectionID string, now time.Time) (satellite.Connection, error) {
	e := newExpr()
	attempt := e.attr(authAttemptAtAttr)
	e.setTo(attempt, e.val("now", millis(now)))
	e.when(and(exists(e.attr(ConnectionsPartitionKey)), notExists(attempt), gt(e.attr(ConnectionsTTLAttribute), e.val("nowSeconds", num(now.Unix())))))
	in := e.updateItem(r.tables.Connections, item{ConnectionsPartitionKey: str(connectionID)})
	in.ReturnValues = types.ReturnValueAllNew
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	out, err := r.db.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		c := connectionFrom(ccf.Item)
		if len(ccf.Item) == 0 || c.Expired(now) {
			return satellite.Connection{}, satellite.Errorf(satellite.ENOTFOUND, "no live record of connection %s", connectionID)
		}
		return c, satellite.Errorf(satellite.ECONFLICT, "connection %s already made its authentication attempt", connectionID)
	}
	if err != nil {
		return satellite.Connection{}, internal(err, "claim authentication attempt")
	}
	return connectionFrom(out.Attributes), nil
}

// ReleaseAuthentication implements satellite.Registry. A connection that
// authenticated meanwhile keeps its mark.
func (r *Registry) ReleaseAuthentication(ctx context.Context, connectionID string) error {
	e := newExpr()
	e.removes(e.attr(authAttemptAtAttr))
	e.when(and(exists(e.attr(ConnectionsPartitionKey)), notExists(e.attr(BySatelliteIndexPartKey))))
	_, err := r.db.UpdateItem(ctx, e.updateItem(r.tables.Connections, item{ConnectionsPartitionKey: str(connectionID)}))
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "release authentication attempt")
}

// SatelliteConnections implements satellite.Registry.
func (r *Registry) SatelliteConnections(ctx context.Context, satelliteID string, now time.Time) ([]string, error) {
	var ids []string
	err := r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Connections,
		IndexName:                 aws.String(BySatelliteIndex),
		KeyConditionExpression:    aws.String("#sid = :sid"),
		ExpressionAttributeNames:  map[string]string{"#sid": BySatelliteIndexPartKey},
		ExpressionAttributeValues: item{":sid": str(satelliteID)},
	}, func(it item) error {
		if c := connectionFrom(it); !c.Expired(now) {
			ids = append(ids, c.ID)
		}
		return nil
	})
	if err != nil {
		return nil, internal(err, "list satellite connections")
	}
	return ids, nil
}

// AuthenticatedConnections calls fn for every live, authenticated connection
// until fn returns false. It scans the sparse BySatellite index, which holds
// only authenticated connections, in one go: tests read the registry with
// it; fan-outs scan it in resumable segments (ScanAuthenticatedConnections).
func (r *Registry) AuthenticatedConnections(ctx context.Context, now time.Time, fn func(satellite.Connection) bool) error {
	pages := dynamodb.NewScanPaginator(r.db, &dynamodb.ScanInput{TableName: &r.tables.Connections, IndexName: aws.String(BySatelliteIndex)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return internal(err, "list authenticated connections")
		}
		for _, it := range page.Items {
			if c := connectionFrom(it); !c.Expired(now) && !fn(c) {
				return nil
			}
		}
	}
	return nil
}

// RelabelConnections copies a renamed satellite's name and region onto its
// live connection records, which label its results.
func (r *Registry) RelabelConnections(ctx context.Context, satelliteID, name, region string, now time.Time) error {
	ids, err := r.SatelliteConnections(ctx, satelliteID, now)
	if err != nil {
		return err
	}
	for _, id := range ids {
		e := newExpr()
		e.setTo(e.attr(satelliteNameAttr), e.val("name", str(name)))
		e.setTo(e.attr(satelliteRegionAttr), e.val("region", str(region)))
		e.when(eq(e.attr(BySatelliteIndexPartKey), e.val("sid", str(satelliteID))))
		_, err := r.db.UpdateItem(ctx, e.updateItem(r.tables.Connections, item{ConnectionsPartitionKey: str(id)}))
		if err != nil && !conditionFailed(err) {
			return internal(err, "relabel connection")
		}
	}
	return nil
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

var _ satellite.ConnectionScan = (*Registry)(nil)

// connectionCursor is where a scan of the BySatellite index continues: the
// index key and the table key of the record it continues after.
type connectionCursor struct {
	ConnectionID string `json:"c"`
	SatelliteID  string `json:"s"`
}

func encodeCursor(it item) string {
	b, _ := json.Marshal(connectionCursor{ConnectionID: getStr(it, ConnectionsPartitionKey), SatelliteID: getStr(it, BySatelliteIndexPartKey)})
	return string(b)
}

func decodeCursor(cursor string) (item, error) {
	var c connectionCursor
	if err := json.Unmarshal([]byte(cursor), &c); err != nil || c.ConnectionID == "" || c.SatelliteID == "" {
		return nil, satellite.Errorf(satellite.EINTERNAL, "connection scan cursor %q is not one this adapter wrote", cursor)
	}
	return item{ConnectionsPartitionKey: str(c.ConnectionID), BySatelliteIndexPartKey: str(c.SatelliteID)}, nil
}

// ScanAuthenticatedConnections implements satellite.ConnectionScan: one
// Scan request of one segment of the sparse BySatellite index, which holds
// only authenticated connections.
func (r *Registry) ScanAuthenticatedConnections(ctx context.Context, segment, segments int, cursor string, limit int, now time.Time) (satellite.ConnectionPage, error) {
	in := &dynamodb.ScanInput{
		TableName: &r.tables.Connections, IndexName: aws.String(BySatelliteIndex),
		Segment: aws.Int32(int32(segment)), TotalSegments: aws.Int32(int32(segments)), Limit: aws.Int32(int32(limit)),
	}
	if cursor != "" {
		start, err := decodeCursor(cursor)
		if err != nil {
			return satellite.ConnectionPage{}, err
		}
		in.ExclusiveStartKey = start
	}
	out, err := r.db.Scan(ctx, in)
	if err != nil {
		return satellite.ConnectionPage{}, internal(err, "scan authenticated connections")
	}
	var page satellite.ConnectionPage
	for _, it := range out.Items {
		if c := connectionFrom(it); !c.Expired(now) {
			page.Connections = append(page.Connections, c)
			page.Cursors = append(page.Cursors, encodeCursor(it))
		}
	}
	if len(out.LastEvaluatedKey) > 0 {
		page.Next = encodeCursor(out.LastEvaluatedKey)
	}
	return page, nil
}

// CountAuthenticatedConnections implements satellite.ConnectionScan with
// Select COUNT: DynamoDB bills the index data it reads, but sends no items.
func (r *Registry) CountAuthenticatedConnections(ctx context.Context, segment, segments int, now time.Time) (int, error) {
	live := newExpr()
	live.when(gt(live.attr(ConnectionsTTLAttribute), live.val("nowSeconds", num(now.Unix()))))
	in := live.scan(r.tables.Connections)
	in.IndexName, in.Select = aws.String(BySatelliteIndex), types.SelectCount
	in.Segment, in.TotalSegments = aws.Int32(int32(segment)), aws.Int32(int32(segments))
	n := 0
	pages := dynamodb.NewScanPaginator(r.db, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return 0, internal(err, "count authenticated connections")
		}
		n += int(page.Count)
	}
	return n, nil
}
