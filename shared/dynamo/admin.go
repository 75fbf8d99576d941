package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// maxTransactItems is DynamoDB's limit on one TransactWriteItems request.
const maxTransactItems = 100

// CreateSatellite stores a new satellite. ECONFLICT when the id is taken.
func (r *Registry) CreateSatellite(ctx context.Context, s satellite.Satellite) error {
	it := item{
		SatellitesPartitionKey: str(satelliteKey(s.ID)),
		SatellitesSortKey:      str(satelliteSort),
		"satelliteId":          str(s.ID),
		"name":                 str(s.Name),
		"region":               str(s.Region),
		"tokenHash":            str(s.TokenHash),
		"createdAt":            millis(s.CreatedAt),
		// The outbox exists from the start: an edge is written into it as
		// pendingEdges.<id>, which needs the map to be there.
		pendingEdgesAttr: &types.AttributeValueMemberM{Value: item{}},
	}
	if len(s.Tags) > 0 {
		tags := make(item, len(s.Tags))
		for k, v := range s.Tags {
			tags[k] = str(v)
		}
		it["tags"] = &types.AttributeValueMemberM{Value: tags}
	}
	if s.OfflineThreshold > 0 {
		it["offlineThresholdMs"] = num(s.OfflineThreshold.Milliseconds())
	}
	_, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           &r.tables.Satellites,
		Item:                it,
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if conditionFailed(err) {
		return satellite.Errorf(satellite.ECONFLICT, "satellite %s already exists", s.ID)
	}
	return internal(err, "create satellite")
}

// partitionState is what a change to a satellite's assignment set reads
// first, in one consistent query of its partition.
type partitionState struct {
	exists      bool
	generation  int64           // the satellite's token generation
	version     int64           // changes of the assignment set so far
	assignments map[string]bool // sort keys of the assignment items
}

func (r *Registry) readPartition(ctx context.Context, satelliteID string) (partitionState, error) {
	st := partitionState{assignments: map[string]bool{}}
	err := r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey, "#sk": SatellitesSortKey},
		ExpressionAttributeValues: item{":pk": str(satelliteKey(satelliteID))},
		ProjectionExpression:      aws.String("#sk, tokenGeneration, version"),
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
		switch sk := getStr(it, SatellitesSortKey); {
		case sk == satelliteSort:
			st.exists, st.generation = true, getNum(it, "tokenGeneration")
		case sk == versionSort:
			st.version = getNum(it, "version")
		case isAssignmentSort(sk):
			st.assignments[sk] = true
		}
		return nil
	})
	if err != nil {
		return st, internal(err, "read satellite partition")
	}
	if !st.exists {
		return st, satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
	}
	return st, nil
}

// bumpVersion is the transaction item that moves the assignment set's
// version on from the one read, failing if another change came first.
func (r *Registry) bumpVersion(pk types.AttributeValue, read int64) types.TransactWriteItem {
	put := &types.Put{
		TableName: &r.tables.Satellites,
		Item:      item{SatellitesPartitionKey: pk, SatellitesSortKey: str(versionSort), "version": num(read + 1)},
	}
	if read == 0 {
		put.ConditionExpression = aws.String("attribute_not_exists(pk)")
	} else {
		put.ConditionExpression = aws.String("version = :read")
		put.ExpressionAttributeValues = item{":read": num(read)}
	}
	return types.TransactWriteItem{Put: put}
}

// errSetChanged is why a change to an assignment set lost to another.
func errSetChanged(satelliteID string) error {
	return satellite.Errorf(satellite.ECONFLICT, "the assignments of satellite %s changed while this change was made; read them again and retry", satelliteID)
}

// ReplaceAssignments makes assignments the satellite's complete set in one
// transaction, so a concurrently arriving result is authorised against either
// the old set or the new one, never a mix. The transaction is conditional on
// the set's version read with the current items, so of two replacements
// racing one wins and the other fails with ECONFLICT instead of merging the
// two sets. ENOTFOUND when the satellite does not exist; EINVALID when the
// set is too large for one transaction.
func (r *Registry) ReplaceAssignments(ctx context.Context, satelliteID string, assignments []satellite.Assignment) error {
	pk := str(satelliteKey(satelliteID))
	st, err := r.readPartition(ctx, satelliteID)
	if err != nil {
		return err
	}
	writes := []types.TransactWriteItem{{ConditionCheck: &types.ConditionCheck{
		TableName:           &r.tables.Satellites,
		Key:                 item{SatellitesPartitionKey: pk, SatellitesSortKey: str(satelliteSort)},
		ConditionExpression: aws.String("attribute_exists(pk)"),
	}}, r.bumpVersion(pk, st.version)}
	keep := map[string]bool{}
	for _, a := range assignments {
		raw, err := json.Marshal(a)
		if err != nil {
			return satellite.Wrap(err, satellite.EINVALID, "encode assignment")
		}
		sk := assignmentSort(a.ConfigID, a.SystemID)
		if keep[sk] {
			return satellite.Errorf(satellite.EINVALID, "assignment configId %s systemId %s appears twice", a.ConfigID, a.SystemID)
		}
		keep[sk] = true
		writes = append(writes, types.TransactWriteItem{Put: &types.Put{
			TableName: &r.tables.Satellites,
			Item: item{
				SatellitesPartitionKey: pk, SatellitesSortKey: str(sk),
				"configId": str(a.ConfigID), "systemId": str(a.SystemID), "assignment": str(string(raw)),
				"tokenGeneration": num(st.generation),
			},
		}})
	}
	for sk := range st.assignments {
		if !keep[sk] {
			writes = append(writes, types.TransactWriteItem{Delete: &types.Delete{
				TableName: &r.tables.Satellites,
				Key:       item{SatellitesPartitionKey: pk, SatellitesSortKey: str(sk)},
			}})
		}
	}
	if len(writes) > maxTransactItems {
		return satellite.Errorf(satellite.EINVALID, "at most %d assignments can change at once, got %s",
			maxTransactItems-2, strconv.Itoa(len(writes)-2))
	}
	err = r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: writes})
	if failed, _, ok := cancelled(err); ok && len(failed) > 1 {
		switch {
		case failed[0]:
			return satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
		case failed[1]:
			return errSetChanged(satelliteID)
		}
	}
	return internal(err, "replace assignments")
}

// SetDesiredLockfileHash records the published script-package lockfile.
func (r *Registry) SetDesiredLockfileHash(ctx context.Context, lockfileHash string) error {
	_, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &r.tables.Satellites,
		Item: item{
			SatellitesPartitionKey: str(packagesPart),
			SatellitesSortKey:      str(packagesSort),
			"lockfileHash":         str(lockfileHash),
		},
	})
	return internal(err, "store desired lockfile hash")
}

// LatestResults returns up to limit results of a check, newest first.
func (r *Registry) LatestResults(ctx context.Context, configID, systemID string, limit int32) ([]satellite.Result, error) {
	out, err := r.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Results,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": ResultsPartitionKey},
		ExpressionAttributeValues: item{":pk": str(checkKey(configID, systemID))},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(limit),
	})
	if err != nil {
		return nil, internal(err, "read results")
	}
	results := make([]satellite.Result, 0, len(out.Items))
	for _, it := range out.Items {
		res := satellite.Result{
			ConfigID:    getStr(it, "configId"),
			SystemID:    getStr(it, "systemId"),
			SatelliteID: getStr(it, "satelliteId"),
			Source:      getStr(it, "source"),
			Status:      satellite.CheckStatus(getStr(it, "status")),
			ReceivedAt:  getMillis(it, "receivedAt"),
		}
		if n, ok := it["latencyMs"].(*types.AttributeValueMemberN); ok {
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
				res.LatencyMs = &f
			}
		}
		if d := getStr(it, "result"); d != "" {
			res.Detail = []byte(d)
		}
		res.ExecutedAt, _ = time.Parse(time.RFC3339Nano, getStr(it, "executedAt"))
		if exp := getNum(it, ResultsTTLAttribute); exp != 0 {
			res.ExpiresAt = time.Unix(exp, 0).UTC()
		}
		results = append(results, res)
	}
	return results, nil
}

// SetTokenHash replaces a satellite's token hash and moves its token
// generation on, on the satellite and every assignment item, in one
// transaction: the old token stops working for every authentication from now
// on, and connections that authenticated with it lose their authority over
// results and run secrets at once. An empty hash is a tombstone: no token
// matches it. ENOTFOUND when the satellite does not exist.
func (r *Registry) SetTokenHash(ctx context.Context, satelliteID, tokenHash string) error {
	pk := str(satelliteKey(satelliteID))
	for attempt := 0; ; attempt++ {
		st, err := r.readPartition(ctx, satelliteID)
		if err != nil {
			return err
		}
		next := num(st.generation + 1)
		writes := []types.TransactWriteItem{{Update: &types.Update{
			TableName:                 &r.tables.Satellites,
			Key:                       item{SatellitesPartitionKey: pk, SatellitesSortKey: str(satelliteSort)},
			UpdateExpression:          aws.String("SET tokenHash = :hash, tokenGeneration = :next"),
			ConditionExpression:       aws.String("attribute_exists(pk) AND (attribute_not_exists(tokenGeneration) OR tokenGeneration = :read)"),
			ExpressionAttributeValues: item{":hash": str(tokenHash), ":next": next, ":read": num(st.generation)},
		}}, r.bumpVersion(pk, st.version)}
		for sk := range st.assignments {
			writes = append(writes, types.TransactWriteItem{Update: &types.Update{
				TableName:                 &r.tables.Satellites,
				Key:                       item{SatellitesPartitionKey: pk, SatellitesSortKey: str(sk)},
				UpdateExpression:          aws.String("SET tokenGeneration = :next"),
				ConditionExpression:       aws.String("attribute_exists(pk)"),
				ExpressionAttributeValues: item{":next": next},
			}})
		}
		err = r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: writes})
		failed, _, ok := cancelled(err)
		switch {
		case err == nil:
			return nil
		case ok && len(failed) > 0 && failed[0] && attempt < 3:
			continue // rotated, or deleted, meanwhile: read again
		case ok && slices.Contains(failed, true) && attempt < 3:
			continue // the assignment set changed meanwhile
		}
		return internal(err, "store token hash")
	}
}

// ListSatellites returns every satellite (without assignments). It scans the
// table: an operator's listing, not a per-message path.
func (r *Registry) ListSatellites(ctx context.Context) ([]satellite.Satellite, error) {
	in := &dynamodb.ScanInput{
		TableName:                 &r.tables.Satellites,
		FilterExpression:          aws.String("#sk = :sk"),
		ExpressionAttributeNames:  map[string]string{"#sk": SatellitesSortKey},
		ExpressionAttributeValues: item{":sk": str(satelliteSort)},
	}
	var out []satellite.Satellite
	for {
		page, err := r.db.Scan(ctx, in)
		if err != nil {
			return nil, internal(err, "list satellites")
		}
		for _, it := range page.Items {
			out = append(out, satelliteFrom(it))
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// OnlineSatelliteIDs returns the satellites whose heartbeat deadline is
// still ahead: the live index read from now on, so only online ones.
func (r *Registry) OnlineSatelliteIDs(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	for _, shard := range LiveShardKeys() {
		err := r.queryAll(ctx, &dynamodb.QueryInput{
			TableName:                 &r.tables.Satellites,
			IndexName:                 aws.String(LiveIndex),
			KeyConditionExpression:    aws.String("#shard = :shard AND #at >= :now"),
			ExpressionAttributeNames:  map[string]string{"#shard": LiveIndexPartKey, "#at": LiveIndexSortKey},
			ExpressionAttributeValues: item{":shard": str(shard), ":now": millis(now)},
		}, func(it item) error { ids = append(ids, getStr(it, "satelliteId")); return nil })
		if err != nil {
			return nil, internal(err, "list online satellites")
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// UpdateSatellite applies u and returns the satellite as stored after it.
// ENOTFOUND when the satellite does not exist. A new threshold applies at
// once: a live satellite's deadline in the live index moves in the same
// write, so its status, the online listing and the sweep agree.
func (r *Registry) UpdateSatellite(ctx context.Context, satelliteID string, u satellite.Update) (satellite.Satellite, error) {
	var set, remove []string
	values := item{}
	if u.Name != nil {
		set, values[":name"] = append(set, "#name = :name"), str(*u.Name)
	}
	if u.Region != nil {
		set, values[":region"] = append(set, "#region = :region"), str(*u.Region)
	}
	if u.Tags != nil {
		tags := item{}
		for k, v := range *u.Tags {
			tags[k] = str(v)
		}
		set, values[":tags"] = append(set, "tags = :tags"), &types.AttributeValueMemberM{Value: tags}
	}
	switch {
	case u.ClearThreshold:
		remove = append(remove, "offlineThresholdMs")
	case u.OfflineThreshold != nil:
		set, values[":threshold"] = append(set, "offlineThresholdMs = :threshold"), num(u.OfflineThreshold.Milliseconds())
	}
	expr := ""
	if len(set) > 0 {
		expr = "SET " + strings.Join(set, ", ")
	}
	if len(remove) > 0 {
		expr += " REMOVE " + strings.Join(remove, ", ")
	}
	if expr == "" {
		sat, _, err := r.Satellite(ctx, satelliteID)
		return sat, err
	}
	names := map[string]string{}
	if u.Name != nil {
		names["#name"] = "name"
	}
	if u.Region != nil {
		names["#region"] = "region"
	}
	update := func(expr, condition string, values item) (*dynamodb.UpdateItemOutput, error) {
		in := &dynamodb.UpdateItemInput{
			TableName:                           &r.tables.Satellites,
			Key:                                 item{SatellitesPartitionKey: str(satelliteKey(satelliteID)), SatellitesSortKey: str(satelliteSort)},
			UpdateExpression:                    aws.String(strings.TrimSpace(expr)),
			ConditionExpression:                 aws.String(condition),
			ReturnValues:                        types.ReturnValueAllNew,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}
		if len(values) > 0 {
			in.ExpressionAttributeValues = values
		}
		if len(names) > 0 {
			in.ExpressionAttributeNames = names
		}
		return r.db.UpdateItem(ctx, in)
	}
	if u.OfflineThreshold == nil && !u.ClearThreshold {
		out, err := update(expr, "attribute_exists(pk)", values)
		if conditionFailed(err) {
			return satellite.Satellite{}, satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
		}
		if err != nil {
			return satellite.Satellite{}, internal(err, "update satellite")
		}
		return satelliteFrom(out.Attributes), nil
	}

	// A new threshold: a satellite in the live index (a live shard, with a
	// heartbeat) gets its deadline moved in the same write; any other gets
	// the threshold alone. Each write is conditional on which case it is,
	// so a heartbeat or a sweep in between sends it round again.
	threshold := satellite.DefaultOfflineThreshold
	if u.OfflineThreshold != nil {
		threshold = *u.OfflineThreshold
	}
	live := "attribute_exists(lastHeartbeatAt) AND begins_with(" + LiveIndexPartKey + ", :live)"
	liveValues := item{":live": str(liveShardPrefix + "#"), ":newThreshold": num(threshold.Milliseconds())}
	for k, v := range values {
		liveValues[k] = v
	}
	for range 5 {
		liveExpr := strings.Replace(expr, "SET ", "SET "+LiveIndexSortKey+" = lastHeartbeatAt + :newThreshold, ", 1)
		if !strings.Contains(liveExpr, "SET ") {
			liveExpr = "SET " + LiveIndexSortKey + " = lastHeartbeatAt + :newThreshold " + liveExpr
		}
		out, err := update(liveExpr, "attribute_exists(pk) AND "+live, liveValues)
		if err == nil {
			return satelliteFrom(out.Attributes), nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return satellite.Satellite{}, internal(err, "update satellite")
		}
		if len(ccf.Item) == 0 {
			return satellite.Satellite{}, satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
		}
		notLiveValues := item{":live": str(liveShardPrefix + "#")}
		for k, v := range values {
			notLiveValues[k] = v
		}
		out, err = update(expr, "attribute_exists(pk) AND NOT ("+live+")", notLiveValues)
		if err == nil {
			return satelliteFrom(out.Attributes), nil
		}
		if !errors.As(err, &ccf) {
			return satellite.Satellite{}, internal(err, "update satellite")
		}
		if len(ccf.Item) == 0 {
			return satellite.Satellite{}, satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
		}
	}
	return satellite.Satellite{}, satellite.Errorf(satellite.ECONFLICT, "satellite %s changed while its threshold was updated; try again", satelliteID)
}

// RelabelConnections copies a renamed satellite's name and region onto its
// live connection records, which label its results.
func (r *Registry) RelabelConnections(ctx context.Context, satelliteID, name, region string, now time.Time) error {
	ids, err := r.SatelliteConnections(ctx, satelliteID, now)
	if err != nil {
		return err
	}
	for _, id := range ids {
		_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &r.tables.Connections,
			Key:                       item{ConnectionsPartitionKey: str(id)},
			UpdateExpression:          aws.String("SET satelliteName = :name, satelliteRegion = :region"),
			ConditionExpression:       aws.String("#sid = :sid"),
			ExpressionAttributeNames:  map[string]string{"#sid": BySatelliteIndexPartKey},
			ExpressionAttributeValues: item{":name": str(name), ":region": str(region), ":sid": str(satelliteID)},
		})
		if err != nil && !conditionFailed(err) {
			return internal(err, "relabel connection")
		}
	}
	return nil
}

// DeleteSatellite removes a satellite, its assignments and the records of
// its connections. ENOTFOUND when it does not exist.
func (r *Registry) DeleteSatellite(ctx context.Context, satelliteID string, now time.Time) error {
	pk := str(satelliteKey(satelliteID))
	var keys []string
	err := r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey, "#sk": SatellitesSortKey},
		ExpressionAttributeValues: item{":pk": pk},
		ProjectionExpression:      aws.String("#sk"),
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error { keys = append(keys, getStr(it, SatellitesSortKey)); return nil })
	if err != nil {
		return internal(err, "read satellite items")
	}
	if len(keys) == 0 {
		return satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
	}
	conns, err := r.SatelliteConnections(ctx, satelliteID, now.Add(-satellite.ConnectionRecordTTL))
	if err != nil {
		return err
	}
	// Assignments first and the satellite item last, so that a failure part
	// way leaves a satellite that can be deleted again.
	keys = append(slices.DeleteFunc(keys, func(sk string) bool { return sk == satelliteSort }), satelliteSort)
	for _, sk := range keys {
		if _, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: &r.tables.Satellites,
			Key:       item{SatellitesPartitionKey: pk, SatellitesSortKey: str(sk)},
		}); err != nil {
			return internal(err, "delete satellite item")
		}
	}
	for _, id := range conns {
		if _, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: &r.tables.Connections,
			Key:       item{ConnectionsPartitionKey: str(id)},
		}); err != nil {
			return internal(err, "delete connection record")
		}
	}
	return nil
}
