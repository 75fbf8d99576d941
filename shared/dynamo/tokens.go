package dynamo

import (
	"context"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

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
		// The satellite item: the new hash and generation, unless it was
		// rotated (or deleted) since it was read.
		e := whereExists(SatellitesPartitionKey)
		generation := e.attr(tokenGenerationAttr)
		e.setTo(e.attr(tokenHashAttr), e.val("hash", str(tokenHash)))
		e.setTo(generation, e.val("next", next))
		e.when(or(notExists(generation), eq(generation, e.val("read", num(st.generation)))))
		writes := []types.TransactWriteItem{{Update: e.transactUpdate(r.tables.Satellites, satelliteItemKey(satelliteID))}, r.bumpVersion(pk, st.version)}
		for sk := range st.assignments {
			e := whereExists(SatellitesPartitionKey)
			e.setTo(e.attr(tokenGenerationAttr), e.val("next", next))
			writes = append(writes, types.TransactWriteItem{Update: e.transactUpdate(r.tables.Satellites, item{SatellitesPartitionKey: pk, SatellitesSortKey: str(sk)})})
		}
		err = r.transact(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: writes})
		failed, _, ok := cancelled(err)
		switch {
		case err == nil:
			return nil
		case ok && len(failed) > 0 && failed[0] && attempt < tokenRotationRetries:
			continue // rotated, or deleted, meanwhile: read again
		case ok && slices.Contains(failed, true) && attempt < tokenRotationRetries:
			continue // the assignment set changed meanwhile
		}
		return internal(err, "store token hash")
	}
}

// RecordAuthFailure implements satellite.Registry.
func (r *Registry) RecordAuthFailure(ctx context.Context, satelliteID string, now time.Time) error {
	e := whereExists(SatellitesPartitionKey)
	e.setTo(e.attr(authFailedAtAttr), e.val("now", millis(now)))
	e.adds(e.attr(authFailuresAttr), e.val("one", num(1)))
	_, err := r.db.UpdateItem(ctx, e.updateItem(r.tables.Satellites, satelliteItemKey(satelliteID)))
	if conditionFailed(err) {
		return nil // deleted meanwhile
	}
	return internal(err, "record authentication failure")
}
