package dynamo

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// conflictOnce is a DynamoDB API whose first transaction is cancelled by a
// conflicting write. Like the SDK, it fills ClientRequestToken into the input
// when the caller left it empty, and it records the token of every attempt.
type conflictOnce struct {
	API
	tokens []string
}

func (c *conflictOnce) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if in.ClientRequestToken == nil {
		in.ClientRequestToken = aws.String("token-" + string(rune('a'+len(c.tokens))))
	}
	c.tokens = append(c.tokens, *in.ClientRequestToken)
	if len(c.tokens) == 1 {
		return nil, &types.TransactionCanceledException{CancellationReasons: []types.CancellationReason{
			{Code: aws.String("None")}, {Code: aws.String("TransactionConflict")},
		}}
	}
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

// TestConflictRetriesAreNewRequests checks a transaction retried after a
// conflict does not resend the cancelled attempt's idempotency token, which
// DynamoDB would take for the same request.
func TestConflictRetriesAreNewRequests(t *testing.T) {
	api := &conflictOnce{}
	r := NewRegistry(api, Tables{Satellites: "s", Connections: "c", Results: "r"})
	if err := r.transact(context.Background(), &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{{}, {}}}); err != nil {
		t.Fatal(err)
	}
	if len(api.tokens) != 2 || api.tokens[0] == api.tokens[1] {
		t.Errorf("attempts carried tokens %v, want two different ones", api.tokens)
	}
}

// conflicting cancels its first n transactions with a conflict.
type conflicting struct {
	API
	n, calls int
}

// BatchGetItem finds the satellite (of token generation 0) and no mark of
// the batch: a new batch of a current connection.
func (c *conflicting) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	out := &dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{}}
	for table, keys := range in.RequestItems {
		if table == "s" {
			out.Responses[table] = keys.Keys
		}
	}
	return out, nil
}

func (c *conflicting) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.calls++
	if c.calls <= c.n {
		return nil, &types.TransactionCanceledException{CancellationReasons: []types.CancellationReason{
			{Code: aws.String("TransactionConflict")}, {Code: aws.String("None")},
		}}
	}
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

// TestTelemetryClaimRidesOutConflicts checks a claim whose transaction
// conflicts with the connection's other batches (they share the minute's
// budget item) is retried, and reports a conflict, not a failure, when it
// keeps conflicting.
func TestTelemetryClaimRidesOutConflicts(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	api := &conflicting{n: 5}
	conn := satellite.Connection{ID: "c=", SatelliteID: "sat-1"}
	claim, err := NewTelemetryLedger(api, "t", "s").ClaimBatch(context.Background(), conn, "n:1", 100, 1<<20, now)
	if err != nil || claim.Outcome != satellite.Claimed || api.calls != 6 {
		t.Errorf("after 5 conflicts: %+v, %v, %d calls", claim, err, api.calls)
	}
	api = &conflicting{n: 100}
	_, err = NewTelemetryLedger(api, "t", "s").ClaimBatch(context.Background(), conn, "n:1", 100, 1<<20, now)
	if satellite.ErrorCode(err) != satellite.ECONFLICT || api.calls != claimAttempts {
		t.Errorf("always conflicting: %v after %d calls, want ECONFLICT after %d", err, api.calls, claimAttempts)
	}
}
