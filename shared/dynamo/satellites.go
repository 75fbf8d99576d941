package dynamo

import (
	"context"
	"errors"

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
		{Put: whereNew(SatellitesPartitionKey).transactPut(r.tables.Satellites, it)},
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
		satelliteIDAttr:        str(s.ID),
		nameAttr:               str(s.Name),
		regionAttr:             str(s.Region),
		tokenHashAttr:          str(s.TokenHash),
		createdAtAttr:          millis(s.CreatedAt),
		// Its entry in the fleet listing index, for good: the key never
		// changes, so no later write of this item touches the index.
		FleetIndexPartKey: str(FleetIndexPart),
		// The outbox exists from the start: an edge is written into it as
		// pendingEdges.<id>, which needs the map to be there.
		pendingEdgesAttr: &types.AttributeValueMemberM{Value: item{}},
	}
	if s.OfflineThreshold > 0 {
		state[satelliteThresholdAttr] = num(s.OfflineThreshold.Milliseconds())
	}
	profile = item{SatellitesPartitionKey: pk, SatellitesSortKey: str(profileSort), tagsAttr: tagsItem(s.Tags)}
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
	legacy := whereExists(SatellitesPartitionKey)
	legacy.removes(legacy.attr(tagsAttr))
	profile := newExpr()
	profile.setTo(profile.attr(tagsAttr), profile.val("tags", tagsItem(tags)))
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: legacy.transactUpdate(r.tables.Satellites, satelliteItemKey(satelliteID))},
		{Update: profile.transactUpdate(r.tables.Satellites, profileKey(satelliteID))},
	}})
	if failed, _, ok := cancelled(err); ok && len(failed) == 2 && failed[0] {
		return satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
	}
	return internal(err, "update satellite tags")
}

// updateSatelliteItem applies u (without tags) to the satellite item.
func (r *Registry) updateSatelliteItem(ctx context.Context, satelliteID string, u satellite.Update) (satellite.Satellite, error) {
	if u.Name == nil && u.Region == nil && u.OfflineThreshold == nil && !u.ClearThreshold {
		sat, _, err := r.Satellite(ctx, satelliteID)
		return sat, err
	}
	// change is u's writes, on condition that the satellite exists.
	change := func() *expr {
		e := whereExists(SatellitesPartitionKey)
		if u.Name != nil {
			e.setTo(e.attr(nameAttr), e.val("name", str(*u.Name)))
		}
		if u.Region != nil {
			e.setTo(e.attr(regionAttr), e.val("region", str(*u.Region)))
		}
		switch {
		case u.ClearThreshold:
			e.removes(e.attr(satelliteThresholdAttr))
		case u.OfflineThreshold != nil:
			e.setTo(e.attr(satelliteThresholdAttr), e.val("threshold", num(u.OfflineThreshold.Milliseconds())))
		}
		return e
	}
	write := func(e *expr) (*dynamodb.UpdateItemOutput, error) {
		in := e.updateItem(r.tables.Satellites, satelliteItemKey(satelliteID))
		in.ReturnValues = types.ReturnValueAllNew
		in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		return r.db.UpdateItem(ctx, in)
	}
	if u.OfflineThreshold == nil && !u.ClearThreshold {
		out, err := write(change())
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
	live := func(e *expr) condition {
		return and(exists(e.attr(heartbeatAttr)), beginsWith(e.attr(LiveIndexPartKey), e.val("live", str(liveShardPrefix+"#"))))
	}
	for range thresholdAttempts {
		e := change()
		e.setTo(e.attr(LiveIndexSortKey), plus(e.attr(heartbeatAttr), e.val("newThreshold", num(threshold.Milliseconds()))))
		out, err := write(e.when(live(e)))
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
		e = change()
		out, err = write(e.when(not(live(e))))
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

// SaveSyncState implements satellite.Registry.
func (r *Registry) SaveSyncState(ctx context.Context, satelliteID string, s satellite.SyncState) error {
	state := item{
		syncStatusField:     str(string(s.Status)),
		syncReportedAtField: millis(s.ReportedAt),
	}
	if s.LockfileHash != nil {
		state[syncLockfileHashField] = str(*s.LockfileHash)
	} else {
		state[syncLockfileHashField] = &types.AttributeValueMemberNULL{Value: true}
	}
	if s.ErrorMessage != "" {
		state[syncErrorMessageField] = str(s.ErrorMessage)
	}
	// In the profile item, with a check that the satellite exists, so that
	// a late report of a deleted satellite brings nothing back; unless a
	// later report is stored.
	e := newExpr()
	stored := e.attr(syncStateAttr)
	e.setTo(stored, e.val("state", &types.AttributeValueMemberM{Value: state}))
	e.when(or(notExists(stored), le(stored.dot(e.attr(syncReportedAtField)), e.val("at", millis(s.ReportedAt)))))
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{ConditionCheck: whereExists(SatellitesPartitionKey).conditionCheck(r.tables.Satellites, satelliteItemKey(satelliteID))},
		{Update: e.transactUpdate(r.tables.Satellites, profileKey(satelliteID))},
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
