package dynamo

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// TelemetryLedger implements satellite.TelemetryLedger on the telemetry
// table: one item per connection and minute counting the bytes of its
// batches, and one item per batch marking it in flight, handled, or to be
// handled again. Both expire on their own (TTL). It reads the satellite's
// token generation from the satellites table.
type TelemetryLedger struct {
	db         API
	table      string
	satellites string
}

var _ satellite.TelemetryLedger = (*TelemetryLedger)(nil)

// NewTelemetryLedger returns a ledger over the telemetry table that checks
// connections against the satellites table.
func NewTelemetryLedger(db API, table, satellitesTable string) *TelemetryLedger {
	return &TelemetryLedger{db: db, table: table, satellites: satellitesTable}
}

// claimAttempts bounds the tries of a claim cancelled by conflicts.
const claimAttempts = 8

// The attributes of the telemetry table's items: a budget item counts the
// bytes of a connection's minute; a batch's mark holds its state, when it
// was claimed and received, and once finished its counts.
const (
	budgetBytesAttr    = "bytes"
	batchStateAttr     = "state"
	batchClaimedAtAttr = "claimedAt"
	batchAcceptedAttr  = "accepted"
	batchRejectedAttr  = "rejected"
	// receivedAtAttr (attributes.go) is when the batch was first received.
)

// budgetKeepMinutes is how many minutes after the start of its own minute
// a budget item expires: at the end of the next one, long after the last
// batch it charges.
const budgetKeepMinutes = 2

// InFlightTimeout is how long a batch stays claimed by an instance that
// neither finished nor forgot it (it crashed or timed out) before a resend
// is handled again: longer than a function may run.
const InFlightTimeout = time.Minute

// Batch states.
const (
	batchInFlight = "inflight"
	batchFinished = "finished"
	// batchRetry is a batch whose last attempt had a retryable outcome
	// (ForgetBatch): its next attempt takes it over, under the same
	// receivedAt, so it writes to the same object key.
	batchRetry = "retry"
)

func budgetKey(connectionID string, minute int64) string {
	return "BUDGET#" + connectionID + "#" + strconv.FormatInt(minute, 10)
}

func batchKey(connectionID, key string) string { return "BATCH#" + connectionID + "#" + key }

// ClaimBatch implements satellite.TelemetryLedger. One consistent read
// (BatchGetItem) gets the satellite's token generation and the batch's
// mark: a connection whose token was rotated since it authenticated, or
// whose satellite was deleted, is refused (EUNAUTHENTICATED); a batch
// handled before is Finished and one being handled InFlight, whatever the
// budget says (dedupe comes first). A new batch is then claimed in one
// transaction that charges the minute's budget and marks it in flight, so
// a batch over budget is never marked and a duplicate never charged. An
// abandoned claim, or a batch forgotten after a retryable outcome, is taken
// over without charging the budget again (its first claim did).
//
// The generation is read, not checked in the transaction: a condition on
// the satellite item would make every heartbeat's write to it conflict with
// the transaction (TransactionConflictException). A rotation between the
// read and the store lets that one batch through.
func (l *TelemetryLedger) ClaimBatch(ctx context.Context, conn satellite.Connection, key string, size, budget int, now time.Time) (satellite.BatchClaim, error) {
	batch := item{TelemetryPartitionKey: str(batchKey(conn.ID, key))}
	sat, mark, err := l.read(ctx, conn.SatelliteID, batch)
	if err != nil {
		return satellite.BatchClaim{}, internal(err, "read telemetry batch")
	}
	switch {
	case sat == nil:
		return satellite.BatchClaim{}, satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s no longer exists", conn.SatelliteID)
	case getNum(sat, tokenGenerationAttr) != conn.TokenGeneration:
		return satellite.BatchClaim{}, satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s's token was rotated since connection %s authenticated", conn.SatelliteID, conn.ID)
	}
	for range claimAttempts {
		var (
			claim satellite.BatchClaim
			done  bool
		)
		switch state := getStr(mark, batchStateAttr); {
		case mark == nil:
			claim, mark, done, err = l.claimNew(ctx, conn.ID, batch, size, budget, now)
		case state == batchFinished:
			return satellite.BatchClaim{Outcome: satellite.Finished,
				Accepted: int(getNum(mark, batchAcceptedAttr)), Rejected: int(getNum(mark, batchRejectedAttr))}, nil
		case state == batchInFlight && !getMillis(mark, batchClaimedAtAttr).Before(now.Add(-InFlightTimeout)):
			return satellite.BatchClaim{Outcome: satellite.InFlight}, nil
		default:
			// Abandoned in flight, or to be handled again.
			claim, mark, done, err = l.takeOver(ctx, batch, mark, now)
		}
		if done || err != nil {
			return claim, err
		}
	}
	return satellite.BatchClaim{}, satellite.Errorf(satellite.ECONFLICT, "telemetry batch not claimed: its mark kept changing")
}

// read returns the satellite item (its key and token generation; nil when
// there is none) and the batch's mark (nil when there is none), both read
// consistently in one request.
func (l *TelemetryLedger) read(ctx context.Context, satelliteID string, batch item) (sat, mark item, err error) {
	projection := newExpr().project(SatellitesPartitionKey, tokenGenerationAttr)
	request := map[string]types.KeysAndAttributes{
		l.satellites: {
			Keys: []item{satelliteItemKey(satelliteID)}, ConsistentRead: aws.Bool(true),
			ProjectionExpression:     projection.projectionExpression(),
			ExpressionAttributeNames: projection.attributeNames(),
		},
		l.table: {Keys: []item{batch}, ConsistentRead: aws.Bool(true)},
	}
	for attempt := 0; len(request) > 0; attempt++ {
		if attempt == unprocessedAttempts {
			return nil, nil, errors.New("DynamoDB kept keys unprocessed")
		}
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(backoff(unprocessedBackoff, attempt)):
			}
		}
		out, err := l.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: request})
		if err != nil {
			return nil, nil, err
		}
		for _, it := range out.Responses[l.satellites] {
			sat = it
		}
		for _, it := range out.Responses[l.table] {
			mark = it
		}
		request = out.UnprocessedKeys
	}
	return sat, mark, nil
}

// claimNew claims a batch without a mark: charges the minute's budget and
// marks it in flight, in one transaction. done is false when the batch was
// marked meanwhile: mark is then its mark, to decide on.
func (l *TelemetryLedger) claimNew(ctx context.Context, connectionID string, batch item, size, budget int, now time.Time) (claim satellite.BatchClaim, mark item, done bool, err error) {
	minute := now.Unix() / 60
	// The minute's budget charged, unless it has no room for the batch.
	charge := newExpr()
	bytes := charge.attr(budgetBytesAttr)
	charge.setTo(bytes, plus(ifNotExists(bytes, charge.val("zero", num(0))), charge.val("size", num(int64(size)))))
	charge.setTo(charge.attr(TelemetryTTLAttribute), charge.val("exp", num((minute+budgetKeepMinutes)*60)))
	charge.when(or(notExists(bytes), le(bytes, charge.val("room", num(int64(budget-size))))))
	newMark := whereNew(TelemetryPartitionKey).transactPut(l.table, item{
		TelemetryPartitionKey: batch[TelemetryPartitionKey],
		batchStateAttr:        str(batchInFlight),
		batchClaimedAtAttr:    millis(now),
		receivedAtAttr:        millis(now),
		TelemetryTTLAttribute: num(now.Add(satellite.ConnectionRecordTTL).Unix()),
	})
	newMark.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	// A connection's batches of one minute share the budget item, and an
	// agent sends several at once (its credit window): their transactions
	// conflict, so they retry longer, jittered, than others.
	err = transact(ctx, l.db, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: charge.transactUpdate(l.table, item{TelemetryPartitionKey: str(budgetKey(connectionID, minute))})},
		{Put: newMark},
	}}, claimAttempts)
	failed, reasons, ok := cancelled(err)
	switch {
	case err == nil:
		return satellite.BatchClaim{Outcome: satellite.Claimed, ClaimedAt: now, ReceivedAt: now}, nil, true, nil
	case conflicted(err):
		return satellite.BatchClaim{}, nil, true, satellite.Errorf(satellite.ECONFLICT, "telemetry batch not claimed: the connection's budget kept changing")
	case !ok || len(failed) != 2:
	case failed[1] && len(reasons[1].Item) > 0:
		// Marked meanwhile (whatever the budget says: dedupe first).
		return satellite.BatchClaim{}, reasons[1].Item, false, nil
	case failed[0] && !failed[1]:
		return satellite.BatchClaim{Outcome: satellite.OverBudget}, nil, true, nil
	}
	return satellite.BatchClaim{}, nil, true, internal(err, "claim telemetry batch")
}

// takeOver claims a batch marked abandoned in flight, or to be handled
// again, by a write conditional on the mark being as read. It keeps the
// batch's receivedAt (a mark from before receivedAt was recorded was
// claimed at it). done is false when the mark changed meanwhile: mark is
// then what it is now (empty when it is gone).
func (l *TelemetryLedger) takeOver(ctx context.Context, batch, seen item, now time.Time) (claim satellite.BatchClaim, mark item, done bool, err error) {
	if seen[batchStateAttr] == nil || seen[batchClaimedAtAttr] == nil {
		return satellite.BatchClaim{}, nil, true, satellite.Errorf(satellite.EINTERNAL, "telemetry batch mark without a state or claim time")
	}
	e := newExpr()
	state, claimedAt, received := e.attr(batchStateAttr), e.attr(batchClaimedAtAttr), e.attr(receivedAtAttr)
	claimedAtSeen := e.val("seen", seen[batchClaimedAtAttr])
	e.setTo(state, e.val("inflight", str(batchInFlight)))
	e.setTo(claimedAt, e.val("now", millis(now)))
	e.setTo(received, ifNotExists(received, claimedAtSeen))
	e.when(and(eq(state, e.val("state", seen[batchStateAttr])), eq(claimedAt, claimedAtSeen)))
	in := e.updateItem(l.table, batch)
	in.ReturnValues = types.ReturnValueAllNew
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	out, err := l.db.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf) && len(ccf.Item) == 0:
		return satellite.BatchClaim{}, nil, false, nil
	case errors.As(err, &ccf):
		return satellite.BatchClaim{}, ccf.Item, false, nil
	case err != nil:
		return satellite.BatchClaim{}, nil, true, internal(err, "take over telemetry batch")
	}
	return satellite.BatchClaim{Outcome: satellite.Claimed, ClaimedAt: now, ReceivedAt: getMillis(out.Attributes, receivedAtAttr)}, nil, true, nil
}

// FinishBatch implements satellite.TelemetryLedger. Only the claim's owner
// finishes it; one taken over meanwhile is left to its new owner.
func (l *TelemetryLedger) FinishBatch(ctx context.Context, connectionID, key string, claim satellite.BatchClaim, accepted, rejected int) error {
	e := newExpr()
	e.setTo(e.attr(batchStateAttr), e.val("finished", str(batchFinished)))
	e.setTo(e.attr(batchAcceptedAttr), e.val("accepted", num(int64(accepted))))
	e.setTo(e.attr(batchRejectedAttr), e.val("rejected", num(int64(rejected))))
	e.when(eq(e.attr(batchClaimedAtAttr), e.val("mine", millis(claim.ClaimedAt))))
	_, err := l.db.UpdateItem(ctx, e.updateItem(l.table, item{TelemetryPartitionKey: str(batchKey(connectionID, key))}))
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "finish telemetry batch")
}

// ForgetBatch implements satellite.TelemetryLedger: the batch is marked to
// be handled again rather than deleted, so that its next attempt keeps its
// receivedAt and writes to the same object key (and finds there what this
// attempt may have stored after all). Only the claim's owner forgets it.
func (l *TelemetryLedger) ForgetBatch(ctx context.Context, connectionID, key string, claim satellite.BatchClaim) error {
	e := newExpr()
	state := e.attr(batchStateAttr)
	e.setTo(state, e.val("retry", str(batchRetry)))
	e.when(and(eq(state, e.val("inflight", str(batchInFlight))), eq(e.attr(batchClaimedAtAttr), e.val("mine", millis(claim.ClaimedAt)))))
	_, err := l.db.UpdateItem(ctx, e.updateItem(l.table, item{TelemetryPartitionKey: str(batchKey(connectionID, key))}))
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "forget telemetry batch")
}
