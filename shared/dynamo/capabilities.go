package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// CapabilityConfig implements satellite.Registry. The config and the
// satellite item are read together, consistently, in one request: the
// config's TokenGeneration is the satellite's current one, so a connection
// whose token was rotated (or whose satellite was deleted) is recognised
// without the config item carrying a generation that every rotation would
// have to move.
func (r *Registry) CapabilityConfig(ctx context.Context, satelliteID, kind string) (satellite.CapabilityConfig, error) {
	pk := str(satelliteKey(satelliteID))
	keys := []item{
		{SatellitesPartitionKey: pk, SatellitesSortKey: str(satelliteSort)},
		{SatellitesPartitionKey: pk, SatellitesSortKey: str(capConfigSort(kind))},
	}
	items, err := r.batchGet(ctx, r.tables.Satellites, keys, true)
	if err != nil {
		return satellite.CapabilityConfig{}, internal(err, "read capability config")
	}
	found := map[string]item{}
	for _, it := range items {
		found[getStr(it, SatellitesSortKey)] = it
	}
	sat, ok := found[satelliteSort]
	if !ok {
		return satellite.CapabilityConfig{}, satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s no longer exists", satelliteID)
	}
	it, ok := found[capConfigSort(kind)]
	if !ok {
		return satellite.CapabilityConfig{}, satellite.Errorf(satellite.ENOTFOUND, "No capability config of kind %s for this satellite", kind)
	}
	c, err := capabilityConfigFrom(it)
	c.TokenGeneration = getNum(sat, tokenGenerationAttr)
	return c, err
}

// SetCapabilityConfig implements satellite.Fleet, in a transaction that
// checks the satellite exists (a config never outlives its satellite).
func (r *Registry) SetCapabilityConfig(ctx context.Context, satelliteID string, cfg satellite.CapabilityConfig) error {
	pk := str(satelliteKey(satelliteID))
	secrets, err := json.Marshal(cfg.Secrets)
	if err != nil {
		return satellite.Wrap(err, satellite.EINVALID, "encode capability secrets")
	}
	st, err := r.readPartition(ctx, satelliteID)
	if err != nil {
		return err
	}
	sk := capConfigSort(cfg.Kind)
	if !st.capConfigs[sk] && len(st.capConfigs) >= satellite.MaxCapabilityConfigs {
		return satellite.Errorf(satellite.EINVALID, "satellite %s already has %d capability configs, the most it can have", satelliteID, satellite.MaxCapabilityConfigs)
	}
	err = r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{ConditionCheck: whereExists(SatellitesPartitionKey).conditionCheck(r.tables.Satellites, satelliteItemKey(satelliteID))},
		{Put: &types.Put{TableName: &r.tables.Satellites, Item: item{
			SatellitesPartitionKey: pk, SatellitesSortKey: str(sk),
			kindAttr: str(cfg.Kind), payloadAttr: str(string(cfg.Payload)), secretsAttr: str(string(secrets)),
			updatedAtAttr: millis(cfg.UpdatedAt),
		}}},
	}})
	if failed, _, ok := cancelled(err); ok && len(failed) > 0 && failed[0] {
		return satellite.Errorf(satellite.ENOTFOUND, "no satellite %s", satelliteID)
	}
	return internal(err, "store capability config")
}

// DeleteCapabilityConfig implements satellite.Fleet.
func (r *Registry) DeleteCapabilityConfig(ctx context.Context, satelliteID, kind string) error {
	key := item{SatellitesPartitionKey: str(satelliteKey(satelliteID)), SatellitesSortKey: str(capConfigSort(kind))}
	_, err := r.db.DeleteItem(ctx, whereExists(SatellitesPartitionKey).deleteItem(r.tables.Satellites, key))
	if conditionFailed(err) {
		return satellite.Errorf(satellite.ENOTFOUND, "satellite %s has no capability config of kind %s", satelliteID, kind)
	}
	return internal(err, "delete capability config")
}

// SaveCapabilityStatus implements satellite.Registry. A satellite's
// statuses are one item, a map by kind, bounded to MaxStatusKinds kinds by
// the write's condition. It is created, in a transaction that checks the
// satellite exists, the first time: a late frame after the satellite was
// deleted creates nothing.
func (r *Registry) SaveCapabilityStatus(ctx context.Context, satelliteID string, st satellite.CapabilityStatus) error {
	pk := str(satelliteKey(satelliteID))
	key := item{SatellitesPartitionKey: pk, SatellitesSortKey: str(statusSort)}
	value := &types.AttributeValueMemberM{Value: item{payloadAttr: str(string(st.Payload)), statusAtField: millis(st.ReportedAt)}}
	for attempt := 0; ; attempt++ {
		// The kind's status, unless a later one is stored, and only while
		// the item keeps fewer than MaxStatusKinds kinds or has this one.
		e := whereExists(SatellitesPartitionKey)
		statuses := e.attr(statusesAttr)
		kind := statuses.dot(e.alias("k", st.Kind))
		e.setTo(kind, e.val("s", value))
		e.when(and(
			or(notExists(kind), le(kind.dot(e.attr(statusAtField)), e.val("at", millis(st.ReportedAt)))),
			or(exists(kind), lt(size(statuses), e.val("max", num(satellite.MaxStatusKinds)))),
		))
		in := e.updateItem(r.tables.Satellites, key)
		in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		_, err := r.db.UpdateItem(ctx, in)
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return internal(err, "store capability status")
		}
		if len(ccf.Item) > 0 {
			statuses, _ := ccf.Item[statusesAttr].(*types.AttributeValueMemberM)
			if statuses != nil && statuses.Value[st.Kind] == nil {
				return satellite.Errorf(satellite.ETOOLARGE, "satellite %s already keeps statuses of %d kinds", satelliteID, satellite.MaxStatusKinds)
			}
			return nil // a status reported later is stored
		}
		if attempt > 0 {
			return satellite.Errorf(satellite.ECONFLICT, "capability statuses of satellite %s kept changing", satelliteID)
		}
		// The first status of this satellite: create the item.
		err = r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{ConditionCheck: whereExists(SatellitesPartitionKey).conditionCheck(r.tables.Satellites, satelliteItemKey(satelliteID))},
			{Put: whereNew(SatellitesPartitionKey).transactPut(r.tables.Satellites,
				item{SatellitesPartitionKey: pk, SatellitesSortKey: str(statusSort), statusesAttr: &types.AttributeValueMemberM{Value: item{st.Kind: value}}})},
		}})
		failed, _, ok := cancelled(err)
		switch {
		case err == nil:
			return nil
		case ok && len(failed) > 1 && failed[0]:
			return satellite.Errorf(satellite.ENOTFOUND, "satellite %s no longer exists", satelliteID)
		case ok && len(failed) > 1 && failed[1]:
			continue // created meanwhile: update it
		}
		return internal(err, "store capability status")
	}
}

// CapabilityStatuses implements satellite.Fleet.
func (r *Registry) CapabilityStatuses(ctx context.Context, satelliteID string) ([]satellite.CapabilityStatus, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &r.tables.Satellites,
		Key:            item{SatellitesPartitionKey: str(satelliteKey(satelliteID)), SatellitesSortKey: str(statusSort)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, internal(err, "read capability statuses")
	}
	statuses, _ := out.Item[statusesAttr].(*types.AttributeValueMemberM)
	if statuses == nil {
		return nil, nil
	}
	list := make([]satellite.CapabilityStatus, 0, len(statuses.Value))
	for kind, v := range statuses.Value {
		m, ok := v.(*types.AttributeValueMemberM)
		if !ok {
			continue
		}
		list = append(list, satellite.CapabilityStatus{Kind: kind, Payload: json.RawMessage(getStr(m.Value, payloadAttr)), ReportedAt: getMillis(m.Value, statusAtField)})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Kind < list[j].Kind })
	return list, nil
}
