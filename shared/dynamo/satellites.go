package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// CreateSatellite stores a new satellite: its satellite item and its profile
// item, in one transaction. ECONFLICT when the id is taken.
func (r *Registry) CreateSatellite(ctx context.Context, s satellite.Satellite) error {
	it, profile := newSatelliteItems(s)
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: &r.tables.Satellites, Item: it, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{Put: &types.Put{TableName: &r.tables.Satellites, Item: profile}},
	}})
	if failed, _, ok := cancelled(err); ok && len(failed) == 2 && failed[0] {
		return satellite.Errorf(satellite.ECONFLICT, "satellite %s already exists", s.ID)
	}
	return internal(err, "create satellite")
}

// newSatelliteItems returns a new satellite's satellite item and profile
// item, as CreateSatellite stores them (SeedConnected starts from them).
func newSatelliteItems(s satellite.Satellite) (state, profile item) {
	pk := str(satelliteKey(s.ID))
	state = item{
		SatellitesPartitionKey: pk,
		SatellitesSortKey:      str(satelliteSort),
		"satelliteId":          str(s.ID),
		"name":                 str(s.Name),
		"region":               str(s.Region),
		"tokenHash":            str(s.TokenHash),
		"createdAt":            millis(s.CreatedAt),
		// Its entry in the fleet listing index, for good: the key never
		// changes, so no later write of this item touches the index.
		FleetIndexPartKey: str(FleetIndexPart),
		// The outbox exists from the start: an edge is written into it as
		// pendingEdges.<id>, which needs the map to be there.
		pendingEdgesAttr: &types.AttributeValueMemberM{Value: item{}},
	}
	if s.OfflineThreshold > 0 {
		state["offlineThresholdMs"] = num(s.OfflineThreshold.Milliseconds())
	}
	profile = item{SatellitesPartitionKey: pk, SatellitesSortKey: str(profileSort), "tags": tagsItem(s.Tags)}
	return state, profile
}

func tagsItem(tags map[string]string) types.AttributeValue {
	m := make(item, len(tags))
	for k, v := range tags {
		m[k] = str(v)
	}
	return &types.AttributeValueMemberM{Value: m}
}

// Satellite implements satellite.Registry.
func (r *Registry) Satellite(ctx context.Context, satelliteID string) (satellite.Satellite, []satellite.Assignment, error) {
	var (
		sat         satellite.Satellite
		found       bool
		assignments []satellite.Assignment
		configs     []satellite.CapabilityConfig
		profile     item
	)
	err := r.queryAll(ctx, &dynamodb.QueryInput{
		TableName: &r.tables.Satellites,
		// Everything of the partition but the capability statuses, which
		// no frame needs and only the admin API shows.
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk < :statuses"),
		ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey, "#sk": SatellitesSortKey},
		ExpressionAttributeValues: item{":pk": str(satelliteKey(satelliteID)), ":statuses": str(statusBoundary)},
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
		switch sk := getStr(it, SatellitesSortKey); {
		case sk == satelliteSort:
			sat, found = satelliteFrom(it), true
		case sk == profileSort:
			profile = it
		case isAssignmentSort(sk):
			a, err := assignmentFrom(it)
			if err != nil {
				return err
			}
			assignments = append(assignments, a)
		case isCapConfigSort(sk):
			c, err := capabilityConfigFrom(it)
			if err != nil {
				return err
			}
			configs = append(configs, c)
		}
		return nil
	})
	if err != nil {
		return satellite.Satellite{}, nil, internal(err, "read satellite")
	}
	if !found {
		return satellite.Satellite{}, nil, satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
	}
	withProfile(&sat, profile)
	sat.CapabilityConfigs = configs
	return sat, assignments, nil
}

// UpdateSatellite applies u and returns the satellite as stored after it.
// ENOTFOUND when the satellite does not exist. A new threshold applies at
// once: a live satellite's deadline in the live index moves in the same
// write, so its status, the online listing and the sweep agree.
//
// Tags are in the profile item and are written first, in their own
// transaction; the rest of u follows in the satellite item.
func (r *Registry) UpdateSatellite(ctx context.Context, satelliteID string, u satellite.Update) (satellite.Satellite, error) {
	if u.Tags != nil {
		if err := r.setTags(ctx, satelliteID, *u.Tags); err != nil {
			return satellite.Satellite{}, err
		}
		u.Tags = nil
	}
	if _, err := r.updateSatelliteItem(ctx, satelliteID, u); err != nil {
		return satellite.Satellite{}, err
	}
	sat, _, err := r.Satellite(ctx, satelliteID)
	return sat, err
}

// setTags replaces a satellite's tags in its profile item, in a transaction
// that also takes any tags a satellite stored before profile items had off
// its satellite item (and so checks that the satellite exists).
func (r *Registry) setTags(ctx context.Context, satelliteID string, tags map[string]string) error {
	pk := str(satelliteKey(satelliteID))
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:           &r.tables.Satellites,
			Key:                 item{SatellitesPartitionKey: pk, SatellitesSortKey: str(satelliteSort)},
			UpdateExpression:    aws.String("REMOVE tags"),
			ConditionExpression: aws.String("attribute_exists(pk)"),
		}},
		{Update: &types.Update{
			TableName:                 &r.tables.Satellites,
			Key:                       item{SatellitesPartitionKey: pk, SatellitesSortKey: str(profileSort)},
			UpdateExpression:          aws.String("SET tags = :tags"),
			ExpressionAttributeValues: item{":tags": tagsItem(tags)},
		}},
	}})
	if failed, _, ok := cancelled(err); ok && len(failed) == 2 && failed[0] {
		return satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
	}
	return internal(err, "update satellite tags")
}

// updateSatelliteItem applies u (without tags) to the satellite item.
func (r *Registry) updateSatelliteItem(ctx context.Context, satelliteID string, u satellite.Update) (satellite.Satellite, error) {
	var set, remove []string
	values := item{}
	if u.Name != nil {
		set, values[":name"] = append(set, "#name = :name"), str(*u.Name)
	}
	if u.Region != nil {
		set, values[":region"] = append(set, "#region = :region"), str(*u.Region)
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
	live := "attribute_exists(" + heartbeatAttr + ") AND begins_with(" + LiveIndexPartKey + ", :live)"
	liveValues := item{":live": str(liveShardPrefix + "#"), ":newThreshold": num(threshold.Milliseconds())}
	for k, v := range values {
		liveValues[k] = v
	}
	for range 5 {
		liveExpr := strings.Replace(expr, "SET ", "SET "+LiveIndexSortKey+" = "+heartbeatAttr+" + :newThreshold, ", 1)
		if !strings.Contains(liveExpr, "SET ") {
			liveExpr = "SET " + LiveIndexSortKey + " = " + heartbeatAttr + " + :newThreshold " + liveExpr
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
	names := map[string]string{"#pk": SatellitesPartitionKey}
	maps.Copy(names, removedProjection)
	err := r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: item{":pk": pk},
		ProjectionExpression:      aws.String(removedProjectionExpression),
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
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
		condition, names, values := unchangedOutbox(sat)
		err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Delete: &types.Delete{
				TableName: &r.tables.Satellites, Key: key, ConditionExpression: aws.String(condition),
				ExpressionAttributeNames: names, ExpressionAttributeValues: values,
			}},
			{Delete: &types.Delete{TableName: &r.tables.Satellites, Key: item{SatellitesPartitionKey: pk, SatellitesSortKey: str(profileSort)}}},
			{Put: &types.Put{TableName: &r.tables.Satellites, Item: record}},
		}})
		failed, _, ok := cancelled(err)
		switch {
		case err == nil:
			return edge, nil
		case ok && len(failed) > 0 && failed[0] && attempt < 4:
			// Its outbox changed (or it is gone): read it again.
			if sat, err = r.satelliteItem(ctx, key); err != nil {
				return satellite.LifecycleEvent{}, err
			}
			continue
		}
		return satellite.LifecycleEvent{}, internal(err, "delete satellite item")
	}
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
	// In the profile item, with a check that the satellite exists, so that
	// a late report of a deleted satellite brings nothing back.
	pk := str(satelliteKey(satelliteID))
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{
			TableName:           &r.tables.Satellites,
			Key:                 item{SatellitesPartitionKey: pk, SatellitesSortKey: str(satelliteSort)},
			ConditionExpression: aws.String("attribute_exists(pk)"),
		}},
		{Update: &types.Update{
			TableName:                 &r.tables.Satellites,
			Key:                       item{SatellitesPartitionKey: pk, SatellitesSortKey: str(profileSort)},
			UpdateExpression:          aws.String("SET syncState = :state"),
			ConditionExpression:       aws.String("attribute_not_exists(syncState) OR syncState.reportedAt <= :at"),
			ExpressionAttributeValues: item{":state": &types.AttributeValueMemberM{Value: state}, ":at": millis(s.ReportedAt)},
		}},
	}})
	if failed, _, ok := cancelled(err); ok && len(failed) == 2 {
		switch {
		case failed[0]:
			return satellite.Errorf(satellite.ENOTFOUND, "satellite %s no longer exists", satelliteID)
		case failed[1]:
			return nil // a later report is already stored
		}
	}
	return internal(err, "store script-package sync state")
}

// satelliteItem reads a satellite item consistently (empty when there is
// none). It is a query of the one key rather than a GetItem, which costs
// the same and needs no grant beyond the Query the message function has.
func (r *Registry) satelliteItem(ctx context.Context, key item) (item, error) {
	out, err := r.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk = :sk"),
		ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey, "#sk": SatellitesSortKey},
		ExpressionAttributeValues: item{":pk": key[SatellitesPartitionKey], ":sk": key[SatellitesSortKey]},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, internal(err, "read satellite")
	}
	if len(out.Items) == 0 {
		return item{}, nil
	}
	return out.Items[0], nil
}

// Settings implements satellite.Registry: one consistent query of the
// settings partition, so that a sandbox policy once stored is never read
// back older.
func (r *Registry) Settings(ctx context.Context) (satellite.Settings, error) {
	var st satellite.Settings
	err := r.queryAll(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey},
		ExpressionAttributeValues: item{":pk": str(packagesPart)},
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
		switch getStr(it, SatellitesSortKey) {
		case packagesSort:
			if h := getStr(it, "lockfileHash"); h != "" {
				st.LockfileHash = &h
			}
		case sandboxSort:
			// Set, whatever it holds: a policy that cannot be read back
			// must not give way to the default.
			st.SandboxPolicySet = true
			st.SandboxPolicy = json.RawMessage(getStr(it, "policy"))
			st.SandboxPolicyUpdatedAt = getMillis(it, "updatedAt")
		}
		return nil
	})
	if err != nil {
		return satellite.Settings{}, internal(err, "read fleet settings")
	}
	return st, nil
}

// SetSandboxPolicy implements satellite.Fleet.
func (r *Registry) SetSandboxPolicy(ctx context.Context, policy json.RawMessage, now time.Time) error {
	_, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &r.tables.Satellites,
		Item: item{
			SatellitesPartitionKey: str(packagesPart),
			SatellitesSortKey:      str(sandboxSort),
			"policy":               str(string(policy)),
			"updatedAt":            millis(now),
		},
	})
	return internal(err, "store sandbox policy")
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
