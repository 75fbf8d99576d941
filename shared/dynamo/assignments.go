package dynamo

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// partitionState is what a change to a satellite's assignment set reads
// first, in one consistent query of its partition.
type partitionState struct {
	exists      bool
	generation  int64           // the satellite's token generation
	version     int64           // changes of the assignment set so far
	assignments map[string]bool // sort keys of the assignment items
	capConfigs  map[string]bool // sort keys of the capability config items
}

func (r *Registry) readPartition(ctx context.Context, satelliteID string) (partitionState, error) {
	st := partitionState{assignments: map[string]bool{}, capConfigs: map[string]bool{}}
	e := newExpr()
	e.key(eq(e.attr(SatellitesPartitionKey), e.val("pk", str(satelliteKey(satelliteID)))))
	e.project(SatellitesSortKey, tokenGenerationAttr, setVersionAttr)
	err := r.queryAll(ctx, e.query(r.tables.Satellites, true), func(it item) error {
		switch sk := getStr(it, SatellitesSortKey); {
		case sk == satelliteSort:
			st.exists, st.generation = true, getNum(it, tokenGenerationAttr)
		case sk == versionSort:
			st.version = getNum(it, setVersionAttr)
		case isAssignmentSort(sk):
			st.assignments[sk] = true
		case isCapConfigSort(sk):
			st.capConfigs[sk] = true
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
	it := item{SatellitesPartitionKey: pk, SatellitesSortKey: str(versionSort), setVersionAttr: num(read + 1)}
	e := whereNew(SatellitesPartitionKey)
	if read > 0 {
		e = newExpr()
		e.when(eq(e.attr(setVersionAttr), e.val("read", num(read))))
	}
	put := e.transactPut(r.tables.Satellites, it)
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
	writes := []types.TransactWriteItem{
		{ConditionCheck: whereExists(SatellitesPartitionKey).conditionCheck(r.tables.Satellites, satelliteItemKey(satelliteID))},
		r.bumpVersion(pk, st.version),
	}
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
		it := item{
			SatellitesPartitionKey: pk, SatellitesSortKey: str(sk),
			configIDAttr: str(a.ConfigID), systemIDAttr: str(a.SystemID), assignmentAttr: str(string(raw)),
			tokenGenerationAttr: num(st.generation),
		}
		if ids := a.EnvironmentIDs(); len(ids) > 0 {
			// What a result's environment is checked against, by the
			// read that authorises the result.
			it[environmentsAttr] = &types.AttributeValueMemberSS{Value: ids}
		}
		writes = append(writes, types.TransactWriteItem{Put: &types.Put{TableName: &r.tables.Satellites, Item: it}})
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
