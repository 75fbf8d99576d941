package dynamo

import (
	"context"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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
