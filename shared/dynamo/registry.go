package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// API is the part of the DynamoDB client the registry calls.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Tables names the three tables.
type Tables struct {
	Satellites  string
	Connections string
	Results     string
}

// Registry implements satellite.Registry on DynamoDB.
type Registry struct {
	db     API
	tables Tables
}

var _ satellite.Registry = (*Registry)(nil)

// NewRegistry returns a registry over the given tables.
func NewRegistry(db API, tables Tables) *Registry { return &Registry{db: db, tables: tables} }

type item = map[string]types.AttributeValue

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}
func millis(t time.Time) types.AttributeValue { return num(t.UnixMilli()) }

func getStr(it item, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getNum(it item, name string) int64 {
	if v, ok := it[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func getMillis(it item, name string) time.Time {
	if n := getNum(it, name); n != 0 {
		return time.UnixMilli(n).UTC()
	}
	return time.Time{}
}

func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// cancelled returns, for a cancelled transaction, which of its items failed
// their condition, and the reasons DynamoDB gave.
func cancelled(err error) (failed []bool, reasons []types.CancellationReason, ok bool) {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil, nil, false
	}
	failed = make([]bool, len(tce.CancellationReasons))
	for i, r := range tce.CancellationReasons {
		failed[i] = aws.ToString(r.Code) == "ConditionalCheckFailed"
	}
	return failed, tce.CancellationReasons, true
}

// transact runs a transaction, and runs it again when DynamoDB cancelled it
// only because another request was writing one of its items at that moment
// (TransactionConflict): a heartbeat landing on the satellite item during an
// authentication must not turn into a failed authentication.
func (r *Registry) transact(ctx context.Context, in *dynamodb.TransactWriteItemsInput) error {
	for attempt := 0; ; attempt++ {
		_, err := r.db.TransactWriteItems(ctx, in)
		failed, reasons, ok := cancelled(err)
		if !ok || attempt == 3 || slices.Contains(failed, true) {
			return err
		}
		conflict := false
		for _, reason := range reasons {
			conflict = conflict || aws.ToString(reason.Code) == "TransactionConflict"
		}
		if !conflict {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(5<<attempt) * time.Millisecond):
		}
	}
}

func internal(err error, what string) error { return satellite.Wrap(err, satellite.EINTERNAL, what) }

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

func connectionFrom(it item) satellite.Connection {
	c := satellite.Connection{
		ID:              getStr(it, ConnectionsPartitionKey),
		SatelliteID:     getStr(it, BySatelliteIndexPartKey),
		SatelliteName:   getStr(it, "satelliteName"),
		SatelliteRegion: getStr(it, "satelliteRegion"),
		ConnectedAt:     getMillis(it, "connectedAt"),
		AuthenticatedAt: getMillis(it, "authenticatedAt"),
	}
	if exp := getNum(it, ConnectionsTTLAttribute); exp != 0 {
		c.ExpiresAt = time.Unix(exp, 0).UTC()
	}
	return c
}

// Connection implements satellite.Registry.
func (r *Registry) Connection(ctx context.Context, connectionID string, now time.Time) (satellite.Connection, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &r.tables.Connections,
		Key:            item{ConnectionsPartitionKey: str(connectionID)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return satellite.Connection{}, internal(err, "read connection")
	}
	if out.Item == nil {
		return satellite.Connection{}, satellite.Errorf(satellite.ENOTFOUND, "no record of connection %s", connectionID)
	}
	c := connectionFrom(out.Item)
	if c.Expired(now) {
		return satellite.Connection{}, satellite.Errorf(satellite.ENOTFOUND, "connection %s has expired", connectionID)
	}
	return c, nil
}

// ClaimAuthentication implements satellite.Registry: one conditional write
// that both claims the attempt and returns the record, so an authenticate
// costs no more requests than reading the record did.
func (r *Registry) ClaimAuthentication(ctx context.Context, connectionID string, now time.Time) (satellite.Connection, error) {
	out, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &r.tables.Connections,
		Key:                                 item{ConnectionsPartitionKey: str(connectionID)},
		UpdateExpression:                    aws.String("SET authAttemptAt = :now"),
		ConditionExpression:                 aws.String("attribute_exists(#cid) AND attribute_not_exists(authAttemptAt) AND #exp > :nowSeconds"),
		ExpressionAttributeNames:            map[string]string{"#cid": ConnectionsPartitionKey, "#exp": ConnectionsTTLAttribute},
		ExpressionAttributeValues:           item{":now": millis(now), ":nowSeconds": num(now.Unix())},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
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
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &r.tables.Connections,
		Key:                      item{ConnectionsPartitionKey: str(connectionID)},
		UpdateExpression:         aws.String("REMOVE authAttemptAt"),
		ConditionExpression:      aws.String("attribute_exists(#cid) AND attribute_not_exists(#sid)"),
		ExpressionAttributeNames: map[string]string{"#cid": ConnectionsPartitionKey, "#sid": BySatelliteIndexPartKey},
	})
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "release authentication attempt")
}

// RecordAuthFailure implements satellite.Registry.
func (r *Registry) RecordAuthFailure(ctx context.Context, satelliteID string, now time.Time) error {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &r.tables.Satellites,
		Key:                       item{SatellitesPartitionKey: str(satelliteKey(satelliteID)), SatellitesSortKey: str(satelliteSort)},
		UpdateExpression:          aws.String("SET authFailedAt = :now ADD authFailures :one"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: item{":now": millis(now), ":one": num(1)},
	})
	if conditionFailed(err) {
		return nil // deleted meanwhile
	}
	return internal(err, "record authentication failure")
}

func satelliteFrom(it item) satellite.Satellite {
	s := satellite.Satellite{
		ID:                  getStr(it, "satelliteId"),
		Name:                getStr(it, "name"),
		Region:              getStr(it, "region"),
		TokenHash:           getStr(it, "tokenHash"),
		CreatedAt:           getMillis(it, "createdAt"),
		Version:             getStr(it, "version"),
		OfflineThreshold:    time.Duration(getNum(it, "offlineThresholdMs")) * time.Millisecond,
		LastHeartbeatAt:     getMillis(it, "lastHeartbeatAt"),
		LastConnectionEvent: satellite.Edge(getStr(it, "lastConnectionEvent")),
		ConnectionID:        getStr(it, "connectionId"),
		AuthFailures:        int(getNum(it, "authFailures")),
		AuthFailedAt:        getMillis(it, "authFailedAt"),
	}
	if tags, ok := it["tags"].(*types.AttributeValueMemberM); ok {
		s.Tags = make(map[string]string, len(tags.Value))
		for k := range tags.Value {
			s.Tags[k] = getStr(tags.Value, k)
		}
	}
	if id := getStr(it, "pendingEdgeId"); id != "" {
		s.Pending = &satellite.PendingEdge{
			ID: id, Edge: satellite.Edge(getStr(it, "pendingEdge")),
			At: getMillis(it, "pendingEdgeAt"), LastSeenAt: getMillis(it, "pendingLastSeenAt"),
		}
	}
	if m, ok := it["syncState"].(*types.AttributeValueMemberM); ok {
		st := &satellite.SyncState{
			Status:       satellite.SyncStatus(getStr(m.Value, "status")),
			ErrorMessage: getStr(m.Value, "errorMessage"),
			ReportedAt:   getMillis(m.Value, "reportedAt"),
		}
		if h, ok := m.Value["lockfileHash"].(*types.AttributeValueMemberS); ok {
			st.LockfileHash = aws.String(h.Value)
		}
		s.SyncState = st
	}
	return s
}

func assignmentFrom(it item) (satellite.Assignment, error) {
	raw := []byte(getStr(it, "assignment"))
	var a satellite.Assignment
	if err := json.Unmarshal(raw, &a); err != nil {
		return satellite.Assignment{}, internal(err, "decode stored assignment "+getStr(it, SatellitesSortKey))
	}
	a.Raw = raw
	return a, nil
}

// queryAll pages through a query.
func (r *Registry) queryAll(ctx context.Context, in *dynamodb.QueryInput, fn func(item) error) error {
	for {
		out, err := r.db.Query(ctx, in)
		if err != nil {
			return err
		}
		for _, it := range out.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Satellite implements satellite.Registry.
func (r *Registry) Satellite(ctx context.Context, satelliteID string) (satellite.Satellite, []satellite.Assignment, error) {
	var (
		sat         satellite.Satellite
		found       bool
		assignments []satellite.Assignment
	)
	err := r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey},
		ExpressionAttributeValues: item{":pk": str(satelliteKey(satelliteID))},
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
		switch sk := getStr(it, SatellitesSortKey); {
		case sk == satelliteSort:
			sat, found = satelliteFrom(it), true
		case isAssignmentSort(sk):
			a, err := assignmentFrom(it)
			if err != nil {
				return err
			}
			assignments = append(assignments, a)
		}
		return nil
	})
	if err != nil {
		return satellite.Satellite{}, nil, internal(err, "read satellite")
	}
	if !found {
		return satellite.Satellite{}, nil, satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
	}
	return sat, assignments, nil
}

// AssignmentsForConfig implements satellite.Registry.
func (r *Registry) AssignmentsForConfig(ctx context.Context, satelliteID, configID string) ([]satellite.Assignment, error) {
	var assignments []satellite.Assignment
	err := r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		KeyConditionExpression:    aws.String("#pk = :pk AND begins_with(#sk, :prefix)"),
		ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey, "#sk": SatellitesSortKey},
		ExpressionAttributeValues: item{":pk": str(satelliteKey(satelliteID)), ":prefix": str(assignmentConfigPrefix(configID))},
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
		a, err := assignmentFrom(it)
		if err == nil {
			assignments = append(assignments, a)
		}
		return err
	})
	if err != nil {
		return nil, internal(err, "read assignments")
	}
	return assignments, nil
}

// DesiredLockfileHash implements satellite.Registry.
func (r *Registry) DesiredLockfileHash(ctx context.Context) (*string, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &r.tables.Satellites,
		Key:       item{SatellitesPartitionKey: str(packagesPart), SatellitesSortKey: str(packagesSort)},
	})
	if err != nil {
		return nil, internal(err, "read desired lockfile hash")
	}
	if h := getStr(out.Item, "lockfileHash"); h != "" {
		return &h, nil
	}
	return nil, nil
}

// connectedEdge is the update shared by authentication and a restoring
// heartbeat: the satellite is live, with a fresh heartbeat, in the sparse live
// index at the moment it will go stale.
const connectedEdge = "lastHeartbeatAt = :now, lastConnectionEvent = :connected, " +
	"liveShard = :shard, staleAt = :now + if_not_exists(offlineThresholdMs, :defaultThreshold)"

// clearPending removes the sweep's outbox entry: the write that supersedes a
// pending edge publishes it (from the old values it returns).
const clearPending = " REMOVE pendingEdgeId, pendingEdge, pendingEdgeAt, pendingLastSeenAt"

func connectedValues(satelliteID string, now time.Time) item {
	return item{
		":now":              millis(now),
		":connected":        str(string(satellite.EdgeConnected)),
		":shard":            str(liveShard(satelliteID)),
		":defaultThreshold": num(satellite.DefaultOfflineThreshold.Milliseconds()),
	}
}

// BindConnection implements satellite.Registry.
func (r *Registry) BindConnection(ctx context.Context, connectionID string, sat satellite.Satellite, verifiedHash string, now time.Time) error {
	satValues := connectedValues(sat.ID, now)
	satValues[":conn"] = str(connectionID)
	satValues[":hash"] = str(verifiedHash)
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{Update: &types.Update{
				TableName: &r.tables.Connections,
				Key:       item{ConnectionsPartitionKey: str(connectionID)},
				UpdateExpression: aws.String("SET #sid = :sid, satelliteName = :name, satelliteRegion = :region, authenticatedAt = :now, " +
					"#expiry = :expiry REMOVE #unauth, lastSatelliteId"),
				// The record must exist: one that is gone belongs to a closed
				// connection (its $disconnect, or the sweep, removed it), and
				// binding would bring it back.
				ConditionExpression: aws.String("attribute_exists(#cid) AND attribute_not_exists(#sid)"),
				ExpressionAttributeNames: map[string]string{
					"#cid": ConnectionsPartitionKey, "#sid": BySatelliteIndexPartKey,
					"#expiry": ExpiryIndexPartKey, "#unauth": UnauthenticatedIndexPartKey,
				},
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
				ExpressionAttributeValues: item{
					":sid": str(sat.ID), ":name": str(sat.Name), ":region": str(sat.Region),
					":now": millis(now), ":expiry": str(expiryShard(connectionID)),
				},
			}},
			{Update: &types.Update{
				TableName:                 &r.tables.Satellites,
				Key:                       item{SatellitesPartitionKey: str(satelliteKey(sat.ID)), SatellitesSortKey: str(satelliteSort)},
				UpdateExpression:          aws.String("SET connectionId = :conn, " + connectedEdge + clearPending + ", closedConnectionId, authFailures, authFailedAt"),
				ConditionExpression:       aws.String("attribute_exists(pk) AND tokenHash = :hash"),
				ExpressionAttributeValues: satValues,
			}},
		},
	})
	if failed, reasons, ok := cancelled(err); ok && len(failed) == 2 {
		switch {
		case failed[0] && len(reasons[0].Item) == 0:
			return satellite.Errorf(satellite.EGONE, "connection %s is closed", connectionID)
		case failed[0]:
			return satellite.Errorf(satellite.ECONFLICT, "connection %s is already authenticated", connectionID)
		case failed[1]:
			return satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s was deleted or its token rotated", sat.ID)
		}
	}
	return internal(err, "bind connection")
}

// UnbindConnection implements satellite.Registry.
func (r *Registry) UnbindConnection(ctx context.Context, connectionID, satelliteID string) error {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &r.tables.Connections,
		Key:       item{ConnectionsPartitionKey: str(connectionID)},
		// lastSatelliteId lets the close of this connection still find the
		// satellite whose current connection it is.
		UpdateExpression:          aws.String("SET #unauth = :unauth, lastSatelliteId = :sid REMOVE #sid, satelliteName, satelliteRegion, authenticatedAt, authAttemptAt"),
		ConditionExpression:       aws.String("#sid = :sid"),
		ExpressionAttributeNames:  map[string]string{"#sid": BySatelliteIndexPartKey, "#unauth": UnauthenticatedIndexPartKey},
		ExpressionAttributeValues: item{":sid": str(satelliteID), ":unauth": str(unauthShard(connectionID))},
	})
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "unbind connection")
}

// RecordHeartbeat implements satellite.Registry.
//
// The update keeps the current connection when there is one (an older
// connection's heartbeat must not steal pushes from the newest) and adopts the
// heartbeat's connection when the satellite has none. The condition refuses a
// heartbeat that arrives after its own connection's $disconnect was processed:
// a frame sent just before a close must not bring a closed connection back.
func (r *Registry) RecordHeartbeat(ctx context.Context, satelliteID, connectionID, version string, now time.Time) (satellite.HeartbeatOutcome, error) {
	values := connectedValues(satelliteID, now)
	values[":conn"] = str(connectionID)
	values[":version"] = str(version)
	out, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &r.tables.Satellites,
		Key:                                 item{SatellitesPartitionKey: str(satelliteKey(satelliteID)), SatellitesSortKey: str(satelliteSort)},
		UpdateExpression:                    aws.String("SET version = :version, connectionId = if_not_exists(connectionId, :conn), " + connectedEdge + clearPending),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND (attribute_not_exists(closedConnectionId) OR closedConnectionId <> :conn)"),
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueAllOld,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			if len(ccf.Item) == 0 {
				return satellite.HeartbeatOutcome{}, satellite.Errorf(satellite.ENOTFOUND, "satellite %s no longer exists", satelliteID)
			}
			return satellite.HeartbeatOutcome{}, satellite.Errorf(satellite.ECONFLICT, "connection %s was already closed", connectionID)
		}
		return satellite.HeartbeatOutcome{}, internal(err, "record heartbeat")
	}
	old := satelliteFrom(out.Attributes)
	return satellite.HeartbeatOutcome{Restored: old.LastConnectionEvent != satellite.EdgeConnected, Satellite: old}, nil
}

// resultTimeFormat sorts lexicographically in time order.
const resultTimeFormat = "2006-01-02T15:04:05.000000000Z"

// RecordResult implements satellite.Registry. The assignment check and the
// write are one transaction, so a result is authorised against the
// assignments at the moment it is stored.
func (r *Registry) RecordResult(ctx context.Context, res satellite.Result) error {
	it := item{
		ResultsPartitionKey: str(checkKey(res.ConfigID, res.SystemID)),
		ResultsSortKey:      str(res.ExecutedAt.UTC().Format(resultTimeFormat) + "#" + keyPart(res.SatelliteID) + "#" + res.ID),
		"configId":          str(res.ConfigID),
		"systemId":          str(res.SystemID),
		"satelliteId":       str(res.SatelliteID),
		"source":            str(res.Source),
		"status":            str(string(res.Status)),
		"executedAt":        str(res.ExecutedAt.UTC().Format(time.RFC3339Nano)),
		"receivedAt":        millis(res.ReceivedAt),
		ResultsTTLAttribute: num(res.ExpiresAt.Unix()),
	}
	if res.LatencyMs != nil {
		it["latencyMs"] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(*res.LatencyMs, 'f', -1, 64)}
	}
	if res.Detail != nil {
		it["result"] = str(string(res.Detail))
	}
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{ConditionCheck: &types.ConditionCheck{
				TableName:           &r.tables.Satellites,
				Key:                 item{SatellitesPartitionKey: str(satelliteKey(res.SatelliteID)), SatellitesSortKey: str(assignmentSort(res.ConfigID, res.SystemID))},
				ConditionExpression: aws.String("attribute_exists(pk)"),
			}},
			{Put: &types.Put{TableName: &r.tables.Results, Item: it}},
		},
	})
	if failed, _, ok := cancelled(err); ok && len(failed) > 0 && failed[0] {
		return satellite.Errorf(satellite.EFORBIDDEN, "satellite %s is not assigned configId %s systemId %s", res.SatelliteID, res.ConfigID, res.SystemID)
	}
	return internal(err, "store result")
}

// SaveSyncState implements satellite.Registry.
func (r *Registry) SaveSyncState(ctx context.Context, satelliteID string, s satellite.SyncState) error {
	state := item{
		"status":     str(string(s.Status)),
		"reportedAt": millis(s.ReportedAt),
	}
	if s.LockfileHash != nil {
		state["lockfileHash"] = str(*s.LockfileHash)
	} else {
		state["lockfileHash"] = &types.AttributeValueMemberNULL{Value: true}
	}
	if s.ErrorMessage != "" {
		state["errorMessage"] = str(s.ErrorMessage)
	}
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &r.tables.Satellites,
		Key:                                 item{SatellitesPartitionKey: str(satelliteKey(satelliteID)), SatellitesSortKey: str(satelliteSort)},
		UpdateExpression:                    aws.String("SET syncState = :state"),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND (attribute_not_exists(syncState) OR syncState.reportedAt <= :at)"),
		ExpressionAttributeValues:           item{":state": &types.AttributeValueMemberM{Value: state}, ":at": millis(s.ReportedAt)},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if len(ccf.Item) == 0 {
			return satellite.Errorf(satellite.ENOTFOUND, "satellite %s no longer exists", satelliteID)
		}
		return nil // a later report is already stored
	}
	return internal(err, "store script-package sync state")
}

// CloseConnection implements satellite.Registry. The disconnect edge is
// guarded by connectionId = the closing connection, so a stale $disconnect
// that arrives after the satellite reconnected changes nothing.
func (r *Registry) CloseConnection(ctx context.Context, connectionID string, now time.Time) (satellite.Closed, error) {
	out, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:    &r.tables.Connections,
		Key:          item{ConnectionsPartitionKey: str(connectionID)},
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return satellite.Closed{}, internal(err, "delete connection record")
	}
	satelliteID := getStr(out.Attributes, BySatelliteIndexPartKey)
	if satelliteID == "" {
		satelliteID = getStr(out.Attributes, "lastSatelliteId")
	}
	if satelliteID == "" {
		return satellite.Closed{}, nil
	}
	upd, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &r.tables.Satellites,
		Key:       item{SatellitesPartitionKey: str(satelliteKey(satelliteID)), SatellitesSortKey: str(satelliteSort)},
		UpdateExpression: aws.String("SET lastConnectionEvent = :disconnected, closedConnectionId = :conn, lastDisconnectedAt = :now " +
			"REMOVE lastHeartbeatAt, connectionId, liveShard, staleAt, pendingEdgeId, pendingEdge, pendingEdgeAt, pendingLastSeenAt"),
		ConditionExpression: aws.String("connectionId = :conn"),
		ExpressionAttributeValues: item{
			":disconnected": str(string(satellite.EdgeDisconnected)),
			":conn":         str(connectionID),
			":now":          millis(now),
		},
		ReturnValues: types.ReturnValueAllOld,
	})
	if conditionFailed(err) {
		return satellite.Closed{SatelliteID: satelliteID}, nil
	}
	if err != nil {
		return satellite.Closed{SatelliteID: satelliteID}, internal(err, "mark satellite disconnected")
	}
	return satellite.Closed{SatelliteID: satelliteID, Disconnected: true, Satellite: satelliteFrom(upd.Attributes)}, nil
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

// AuthenticatedConnections implements satellite.Registry. It scans the sparse
// BySatellite index, which holds only authenticated connections.
func (r *Registry) AuthenticatedConnections(ctx context.Context, now time.Time, fn func(satellite.Connection) bool) error {
	in := &dynamodb.ScanInput{TableName: &r.tables.Connections, IndexName: aws.String(BySatelliteIndex)}
	for {
		out, err := r.db.Scan(ctx, in)
		if err != nil {
			return internal(err, "list authenticated connections")
		}
		for _, it := range out.Items {
			if c := connectionFrom(it); !c.Expired(now) && !fn(c) {
				return nil
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}
