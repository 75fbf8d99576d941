package dynamo

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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
