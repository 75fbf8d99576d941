package dynamo

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// TelemetryLedger implements satellite.TelemetryLedger on the telemetry
// table: one item per connection and minute counting the bytes of its
// batches, and one item per batch marking it in flight or handled. Both
// expire on their own (TTL).
type TelemetryLedger struct {
	db    API
	table string
}

var _ satellite.TelemetryLedger = (*TelemetryLedger)(nil)

// NewTelemetryLedger returns a ledger over the telemetry table.
func NewTelemetryLedger(db API, table string) *TelemetryLedger {
	return &TelemetryLedger{db: db, table: table}
}

// claimAttempts bounds the tries of a claim cancelled by conflicts.
const claimAttempts = 8

// InFlightTimeout is how long a batch stays claimed by an instance that
// neither finished nor forgot it (it crashed or timed out) before a resend
// is handled again: longer than a function may run.
const InFlightTimeout = time.Minute

// Batch states.
const (
	batchInFlight = "inflight"
	batchFinished = "finished"
)

func budgetKey(connectionID string, minute int64) string {
	return "BUDGET#" + connectionID + "#" + strconv.FormatInt(minute, 10)
}

func batchKey(connectionID, key string) string { return "BATCH#" + connectionID + "#" + key }

// ClaimBatch implements satellite.TelemetryLedger: one transaction that
// charges the minute's budget and marks the batch in flight, so a batch over
// budget is never marked and a duplicate never charged.
func (l *TelemetryLedger) ClaimBatch(ctx context.Context, connectionID, key string, size, budget int, now time.Time) (satellite.BatchClaim, error) {
	minute := now.Unix() / 60
	claim := satellite.BatchClaim{Outcome: satellite.Claimed, ClaimedAt: now}
	// A connection's batches of one minute share the budget item, and an
	// agent sends several at once (its credit window): their transactions
	// conflict, so they retry longer, jittered, than others.
	err := transact(ctx, l.db, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                 &l.table,
			Key:                       item{TelemetryPartitionKey: str(budgetKey(connectionID, minute))},
			UpdateExpression:          aws.String("SET #bytes = if_not_exists(#bytes, :zero) + :size, #exp = :exp"),
			ConditionExpression:       aws.String("attribute_not_exists(#bytes) OR #bytes <= :room"),
			ExpressionAttributeNames:  map[string]string{"#bytes": "bytes", "#exp": TelemetryTTLAttribute},
			ExpressionAttributeValues: item{":zero": num(0), ":size": num(int64(size)), ":room": num(int64(budget - size)), ":exp": num((minute + 2) * 60)},
		}},
		{Put: &types.Put{
			TableName: &l.table,
			Item: item{
				TelemetryPartitionKey: str(batchKey(connectionID, key)),
				"state":               str(batchInFlight),
				"claimedAt":           millis(now),
				TelemetryTTLAttribute: num(now.Add(satellite.ConnectionRecordTTL).Unix()),
			},
			// A claim that outlived any function run was abandoned.
			ConditionExpression:                 aws.String("attribute_not_exists(#key) OR (#state = :inflight AND claimedAt < :abandoned)"),
			ExpressionAttributeNames:            map[string]string{"#key": TelemetryPartitionKey, "#state": "state"},
			ExpressionAttributeValues:           item{":inflight": str(batchInFlight), ":abandoned": millis(now.Add(-InFlightTimeout))},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
	}}, claimAttempts)
	failed, reasons, ok := cancelled(err)
	switch {
	case err == nil:
		return claim, nil
	case conflicted(err):
		return satellite.BatchClaim{}, satellite.Errorf(satellite.ECONFLICT, "telemetry batch not claimed: the connection's budget kept changing")
	case !ok || len(failed) != 2:
		return satellite.BatchClaim{}, internal(err, "claim telemetry batch")
	case failed[0]:
		return satellite.BatchClaim{Outcome: satellite.OverBudget}, nil
	case failed[1] && getStr(reasons[1].Item, "state") == batchFinished:
		return satellite.BatchClaim{Outcome: satellite.Finished,
			Accepted: int(getNum(reasons[1].Item, "accepted")), Rejected: int(getNum(reasons[1].Item, "rejected"))}, nil
	case failed[1]:
		return satellite.BatchClaim{Outcome: satellite.InFlight}, nil
	}
	return satellite.BatchClaim{}, internal(err, "claim telemetry batch")
}

// FinishBatch implements satellite.TelemetryLedger. Only the claim's owner
// finishes it; one taken over meanwhile is left to its new owner.
func (l *TelemetryLedger) FinishBatch(ctx context.Context, connectionID, key string, claim satellite.BatchClaim, accepted, rejected int) error {
	_, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &l.table,
		Key:                       item{TelemetryPartitionKey: str(batchKey(connectionID, key))},
		UpdateExpression:          aws.String("SET #state = :finished, accepted = :accepted, rejected = :rejected"),
		ConditionExpression:       aws.String("claimedAt = :mine"),
		ExpressionAttributeNames:  map[string]string{"#state": "state"},
		ExpressionAttributeValues: item{":finished": str(batchFinished), ":accepted": num(int64(accepted)), ":rejected": num(int64(rejected)), ":mine": millis(claim.ClaimedAt)},
	})
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "finish telemetry batch")
}

// ForgetBatch implements satellite.TelemetryLedger.
func (l *TelemetryLedger) ForgetBatch(ctx context.Context, connectionID, key string, claim satellite.BatchClaim) error {
	_, err := l.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &l.table,
		Key:                       item{TelemetryPartitionKey: str(batchKey(connectionID, key))},
		ConditionExpression:       aws.String("claimedAt = :mine"),
		ExpressionAttributeValues: item{":mine": millis(claim.ClaimedAt)},
	})
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "forget telemetry batch")
}
