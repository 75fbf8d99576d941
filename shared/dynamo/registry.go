package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

var (
	_ satellite.Registry   = (*Registry)(nil)
	_ satellite.Fleet      = (*Registry)(nil)
	_ satellite.SweepStore = (*Registry)(nil)
)

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
//
// Each attempt is a new request: the SDK fills ClientRequestToken into the
// input it is given, and a retry carrying the cancelled attempt's token is,
// to DynamoDB, the same request again.
func (r *Registry) transact(ctx context.Context, in *dynamodb.TransactWriteItemsInput) error {
	for attempt := 0; ; attempt++ {
		in.ClientRequestToken = nil
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
		TokenGeneration: getNum(it, "tokenGeneration"),
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
		TokenGeneration:     getNum(it, "tokenGeneration"),
	}
	if tags, ok := it["tags"].(*types.AttributeValueMemberM); ok {
		s.Tags = make(map[string]string, len(tags.Value))
		for k := range tags.Value {
			s.Tags[k] = getStr(tags.Value, k)
		}
	}
	s.Pending = pendingEdgesFrom(it)
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
	a.TokenGeneration = getNum(it, "tokenGeneration")
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

// liveness is the update of every heartbeat: a fresh heartbeat, in the
// sparse live index at the moment the satellite will go stale.
const liveness = "lastHeartbeatAt = :now, liveShard = :shard, staleAt = :now + if_not_exists(offlineThresholdMs, :defaultThreshold)"

// connectedEdge is liveness plus the connected edge: authentication and a
// restoring heartbeat.
const connectedEdge = liveness + ", lastConnectionEvent = :connected"

func connectedValues(satelliteID string, now time.Time) item {
	return item{
		":now":              millis(now),
		":connected":        str(string(satellite.EdgeConnected)),
		":shard":            str(liveShard(satelliteID)),
		":defaultThreshold": num(satellite.DefaultOfflineThreshold.Milliseconds()),
	}
}

// BindConnection implements satellite.Registry.
func (r *Registry) BindConnection(ctx context.Context, connectionID string, sat satellite.Satellite, verifiedHash string, now time.Time) (satellite.LifecycleEvent, error) {
	edge := satellite.NewLifecycleEvent(satellite.EdgeConnected, connectionID, sat, now, now)
	recordEdge, edgeNames, satValues := edgeWrite(edge, newWriter())
	for k, v := range connectedValues(sat.ID, now) {
		satValues[k] = v
	}
	satValues[":conn"] = str(connectionID)
	satValues[":hash"] = str(verifiedHash)
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{Update: &types.Update{
				TableName: &r.tables.Connections,
				Key:       item{ConnectionsPartitionKey: str(connectionID)},
				UpdateExpression: aws.String("SET #sid = :sid, satelliteName = :name, satelliteRegion = :region, authenticatedAt = :now, " +
					"tokenGeneration = :gen, #expiry = :expiry REMOVE #unauth, lastSatelliteId"),
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
					":now": millis(now), ":expiry": str(expiryShard(connectionID)), ":gen": num(sat.TokenGeneration),
				},
			}},
			{Update: &types.Update{
				TableName:                 &r.tables.Satellites,
				Key:                       item{SatellitesPartitionKey: str(satelliteKey(sat.ID)), SatellitesSortKey: str(satelliteSort)},
				UpdateExpression:          aws.String("SET connectionId = :conn, " + connectedEdge + ", " + recordEdge + " REMOVE closedConnectionId, authFailures, authFailedAt"),
				ConditionExpression:       aws.String("attribute_exists(pk) AND tokenHash = :hash"),
				ExpressionAttributeNames:  edgeNames,
				ExpressionAttributeValues: satValues,
			}},
		},
	})
	if failed, reasons, ok := cancelled(err); ok && len(failed) == 2 {
		switch {
		case failed[0] && len(reasons[0].Item) == 0:
			return edge, satellite.Errorf(satellite.EGONE, "connection %s is closed", connectionID)
		case failed[0]:
			return edge, satellite.Errorf(satellite.ECONFLICT, "connection %s is already authenticated", connectionID)
		case failed[1]:
			return edge, satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s was deleted or its token rotated", sat.ID)
		}
	}
	return edge, internal(err, "bind connection")
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
// A heartbeat from the satellite's current connection while it is marked
// connected (the steady state) is one write. Anything else is decided by
// what that write's failed condition returns:
//   - a heartbeat from an older connection while a newer one is current
//     refreshes liveness and keeps the current connection (an older
//     connection must not steal pushes from the newest);
//   - a satellite marked otherwise than connected is restored, and the
//     connected edge recorded in its outbox, by a write conditional on it
//     still being so: of two heartbeats racing, one restores;
//   - a satellite with no current connection adopts the heartbeat's only
//     while that connection's record is live and bound to the satellite, in
//     one transaction: a late frame from a closed connection brings nothing
//     back.
//
// A heartbeat from a connection whose close was already processed is refused
// (ECONFLICT).
func (r *Registry) RecordHeartbeat(ctx context.Context, satelliteID, connectionID, version string, now time.Time) (satellite.HeartbeatOutcome, error) {
	key := item{SatellitesPartitionKey: str(satelliteKey(satelliteID)), SatellitesSortKey: str(satelliteSort)}
	base := connectedValues(satelliteID, now)
	base[":conn"] = str(connectionID)
	base[":version"] = str(version)
	// update applies one conditional write; on a failed condition it returns
	// the item as it is, which decides the next step.
	update := func(expr, condition string, names map[string]string, extra item) (item, error) {
		values := item{}
		for _, m := range []item{base, extra} {
			for k, v := range m {
				values[k] = v
			}
		}
		values = used(values, expr, condition)
		in := &dynamodb.UpdateItemInput{
			TableName: &r.tables.Satellites, Key: key,
			UpdateExpression: aws.String(expr), ConditionExpression: aws.String(condition),
			ExpressionAttributeValues:           values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}
		if len(names) > 0 {
			in.ExpressionAttributeNames = names
		}
		_, err := r.db.UpdateItem(ctx, in)
		it, _ := conditionFailure(err)
		return it, err
	}
	steady := func() (item, error) {
		return update("SET version = :version, "+liveness, "lastConnectionEvent = :connected AND connectionId = :conn", nil, nil)
	}
	restore := satellite.NewLifecycleEvent(satellite.EdgeConnected, fmt.Sprintf("%s@%d", connectionID, now.UnixMilli()),
		satellite.Satellite{ID: satelliteID}, now, now)
	writer := newWriter()
	restored := func(sat satellite.Satellite) (satellite.HeartbeatOutcome, error) {
		restore.Name, restore.Region = sat.Name, sat.Region
		return satellite.HeartbeatOutcome{Restored: true, Edge: restore}, nil
	}

	it, err := steady()
	for attempt := 0; err != nil; attempt++ {
		if it == nil {
			return satellite.HeartbeatOutcome{}, internal(err, "record heartbeat")
		}
		sat := satelliteFrom(it)
		switch {
		case len(it) == 0:
			return satellite.HeartbeatOutcome{}, satellite.Errorf(satellite.ENOTFOUND, "satellite %s no longer exists", satelliteID)
		case wroteEdge(it, restore.ID, writer):
			// An earlier attempt of this write restored the edge; its answer
			// was lost.
			return restored(sat)
		case getStr(it, "closedConnectionId") == connectionID:
			return satellite.HeartbeatOutcome{}, satellite.Errorf(satellite.ECONFLICT, "connection %s was already closed", connectionID)
		case attempt == 4:
			return satellite.HeartbeatOutcome{}, satellite.Errorf(satellite.ECONFLICT, "satellite %s kept changing while its heartbeat was recorded", satelliteID)
		case sat.LastConnectionEvent == satellite.EdgeConnected && sat.ConnectionID == connectionID:
			it, err = steady() // restored by another heartbeat meanwhile
		case sat.LastConnectionEvent == satellite.EdgeConnected && sat.ConnectionID != "":
			// An older connection while a newer one is current: liveness
			// only.
			it, err = update("SET version = :version, "+liveness,
				"lastConnectionEvent = :connected AND connectionId = :current", nil, item{":current": str(sat.ConnectionID)})
		case sat.ConnectionID != "":
			// Marked heartbeat_lost with a current connection: restore the
			// edge and keep the connection.
			restore.Name, restore.Region = sat.Name, sat.Region
			recordEdge, names, values := edgeWrite(restore, writer)
			values[":current"] = str(sat.ConnectionID)
			if it, err = update("SET version = :version, "+connectedEdge+", "+recordEdge,
				"lastConnectionEvent <> :connected AND connectionId = :current", names, values); err == nil {
				return restored(sat)
			}
		default:
			// No current connection: adopt this one, if it is live.
			restore.Name, restore.Region = sat.Name, sat.Region
			if err = r.adopt(ctx, key, satelliteID, connectionID, restore, writer, base, now); err == nil {
				return restored(sat)
			}
			if satellite.ErrorCode(err) != "" {
				return satellite.HeartbeatOutcome{}, err
			}
			if it, err = r.satelliteItem(ctx, key); err != nil {
				return satellite.HeartbeatOutcome{}, err
			}
			err = errChanged
		}
	}
	return satellite.HeartbeatOutcome{}, nil
}

// errChanged says a conditional write lost to a concurrent one and the item
// should be read again.
var errChanged = errors.New("changed meanwhile")

// adopt makes connectionID the current connection of a satellite that has
// none, with the connected edge recorded, in a transaction with a check that
// the connection's record is live and bound to the satellite. It returns nil
// on success, a coded error when the heartbeat is refused, and errChanged
// when the satellite changed and the caller should look again.
func (r *Registry) adopt(ctx context.Context, key item, satelliteID, connectionID string, restore satellite.LifecycleEvent, writer string, base item, now time.Time) error {
	recordEdge, names, values := edgeWrite(restore, writer)
	for k, v := range base {
		values[k] = v
	}
	values[":closed"] = str(connectionID)
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{
			TableName:                 &r.tables.Connections,
			Key:                       item{ConnectionsPartitionKey: str(connectionID)},
			ConditionExpression:       aws.String("#sid = :sid AND #exp > :nowSeconds"),
			ExpressionAttributeNames:  map[string]string{"#sid": BySatelliteIndexPartKey, "#exp": ConnectionsTTLAttribute},
			ExpressionAttributeValues: item{":sid": str(satelliteID), ":nowSeconds": num(now.Unix())},
		}},
		{Update: &types.Update{
			TableName: &r.tables.Satellites,
			Key:       key,
			UpdateExpression: aws.String("SET version = :version, connectionId = :conn, " + connectedEdge + ", " + recordEdge +
				" REMOVE closedConnectionId"),
			ConditionExpression: aws.String("attribute_exists(pk) AND attribute_not_exists(connectionId) AND " +
				"(attribute_not_exists(closedConnectionId) OR closedConnectionId <> :closed)"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
		}},
	}})
	failed, _, ok := cancelled(err)
	switch {
	case err == nil:
		return nil
	case ok && len(failed) == 2 && failed[0]:
		return satellite.Errorf(satellite.ECONFLICT, "connection %s is closed; its heartbeat cannot make it current", connectionID)
	case ok && len(failed) == 2 && failed[1]:
		return errChanged
	}
	return internal(err, "adopt connection")
}

// satelliteItem reads a satellite item consistently (empty when there is
// none).
func (r *Registry) satelliteItem(ctx context.Context, key item) (item, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &r.tables.Satellites, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, internal(err, "read satellite")
	}
	if out.Item == nil {
		return item{}, nil
	}
	return out.Item, nil
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
				TableName:                           &r.tables.Satellites,
				Key:                                 item{SatellitesPartitionKey: str(satelliteKey(res.SatelliteID)), SatellitesSortKey: str(assignmentSort(res.ConfigID, res.SystemID))},
				ConditionExpression:                 aws.String("attribute_exists(pk) AND tokenGeneration = :gen"),
				ExpressionAttributeValues:           item{":gen": num(res.TokenGeneration)},
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			{Put: &types.Put{TableName: &r.tables.Results, Item: it}},
		},
	})
	if failed, reasons, ok := cancelled(err); ok && len(failed) > 0 && failed[0] {
		if len(reasons[0].Item) > 0 {
			return satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s's token was rotated since this connection authenticated", res.SatelliteID)
		}
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
// that arrives after the satellite reconnected changes nothing. The
// satellite is updated before the record is deleted: a close that dies
// between the two leaves a record the sweep removes later (closing it again
// changes nothing), never a satellite connected to a closed connection.
func (r *Registry) CloseConnection(ctx context.Context, connectionID string, now time.Time) (satellite.Closed, error) {
	key := item{ConnectionsPartitionKey: str(connectionID)}
	rec, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &r.tables.Connections, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return satellite.Closed{}, internal(err, "read connection record")
	}
	if rec.Item == nil {
		return satellite.Closed{}, nil // closed already
	}
	conn := connectionFrom(rec.Item)
	closed := satellite.Closed{SatelliteID: conn.SatelliteID}
	if closed.SatelliteID == "" {
		closed.SatelliteID = getStr(rec.Item, "lastSatelliteId")
	}
	if closed.SatelliteID != "" {
		sat := satellite.Satellite{ID: closed.SatelliteID, Name: conn.SatelliteName, Region: conn.SatelliteRegion}
		edge := satellite.NewLifecycleEvent(satellite.EdgeDisconnected, connectionID, sat, time.Time{}, now)
		writer := newWriter()
		recordEdge, names, values := edgeWrite(edge, writer)
		values[":disconnected"] = str(string(satellite.EdgeDisconnected))
		values[":conn"] = str(connectionID)
		values[":now"] = millis(now)
		values[":never"] = num(0)
		upd, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &r.tables.Satellites,
			Key:       item{SatellitesPartitionKey: str(satelliteKey(closed.SatelliteID)), SatellitesSortKey: str(satelliteSort)},
			UpdateExpression: aws.String("SET lastConnectionEvent = :disconnected, closedConnectionId = :conn, lastDisconnectedAt = :now, " +
				lastSeenAttr + " = if_not_exists(lastHeartbeatAt, :never), " + recordEdge +
				" REMOVE lastHeartbeatAt, connectionId, liveShard, staleAt"),
			ConditionExpression:                 aws.String("connectionId = :conn"),
			ExpressionAttributeNames:            names,
			ExpressionAttributeValues:           values,
			ReturnValues:                        types.ReturnValueAllOld,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		it, failed := conditionFailure(err)
		switch {
		case failed && wroteEdge(it, edge.ID, writer):
			// An earlier attempt of this write made the edge; its answer was
			// lost, and with it the last heartbeat.
			edge.LastSeenAt = getMillis(it, lastSeenAttr)
			closed.Disconnected, closed.Edge = true, edge
		case failed:
			// Not the satellite's current connection: nothing to change.
		case err != nil:
			return closed, internal(err, "mark satellite disconnected")
		default:
			old := satelliteFrom(upd.Attributes)
			edge.Name, edge.Region, edge.LastSeenAt = old.Name, old.Region, old.LastHeartbeatAt
			closed.Disconnected, closed.Edge = true, edge
		}
	}
	if _, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &r.tables.Connections, Key: key}); err != nil {
		return closed, internal(err, "delete connection record")
	}
	return closed, nil
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
