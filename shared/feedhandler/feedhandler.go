// Package feedhandler adapts the Results table's DynamoDB stream, as
// Lambda's event source mapping delivers it, to the results feed: each
// inserted result becomes a record, and a failure to send becomes a partial
// batch response (ReportBatchItemFailures), so Lambda retries the batch
// from the first result not sent.
package feedhandler

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/resultsfeed"
)

// Handler serves the feed function.
type Handler struct {
	Feed    *resultsfeed.Feed
	Log     *slog.Logger
	Metrics *metrics.Recorder
}

// Handle delivers the results a batch of stream records inserted. Only
// INSERT records carry a new result (the event source mapping's filter
// passes only those; a MODIFY would rewrite one already fed, a REMOVE is
// its expiry). It returns no error: a failed send is reported as the
// first record to retry from.
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	defer h.Metrics.Flush()
	records := make([]resultsfeed.Record, 0, len(ev.Records))
	for _, r := range ev.Records {
		if r.EventName != string(events.DynamoDBOperationTypeInsert) {
			continue
		}
		res := dynamo.ResultFromItem(itemOf(r.Change.NewImage))
		if res.ID == "" || res.ConfigID == "" || res.SystemID == "" || res.SatelliteID == "" {
			// Not a result this backend stored; sending it would not help
			// a consumer, and retrying it would stop the shard.
			h.Log.LogAttrs(ctx, slog.LevelError, "stream record is not a stored result",
				slog.String("eventId", r.EventID), slog.String("sequenceNumber", r.Change.SequenceNumber))
			continue
		}
		records = append(records, resultsfeed.Record{Position: r.Change.SequenceNumber, Result: res})
	}
	next, err := h.Feed.Deliver(ctx, records)
	if err == nil || next >= len(records) {
		return events.DynamoDBEventResponse{}, nil
	}
	return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: records[next].Position}}}, nil
}

// itemOf converts a stream image to the SDK's attribute values.
func itemOf(image map[string]events.DynamoDBAttributeValue) map[string]types.AttributeValue {
	it := make(map[string]types.AttributeValue, len(image))
	for k, v := range image {
		it[k] = valueOf(v)
	}
	return it
}

func valueOf(v events.DynamoDBAttributeValue) types.AttributeValue {
	switch v.DataType() {
	case events.DataTypeString:
		return &types.AttributeValueMemberS{Value: v.String()}
	case events.DataTypeNumber:
		return &types.AttributeValueMemberN{Value: v.Number()}
	case events.DataTypeBinary:
		return &types.AttributeValueMemberB{Value: v.Binary()}
	case events.DataTypeBoolean:
		return &types.AttributeValueMemberBOOL{Value: v.Boolean()}
	case events.DataTypeStringSet:
		return &types.AttributeValueMemberSS{Value: v.StringSet()}
	case events.DataTypeNumberSet:
		return &types.AttributeValueMemberNS{Value: v.NumberSet()}
	case events.DataTypeBinarySet:
		return &types.AttributeValueMemberBS{Value: v.BinarySet()}
	case events.DataTypeList:
		l := v.List()
		out := make([]types.AttributeValue, len(l))
		for i, x := range l {
			out[i] = valueOf(x)
		}
		return &types.AttributeValueMemberL{Value: out}
	case events.DataTypeMap:
		return &types.AttributeValueMemberM{Value: itemOf(v.Map())}
	}
	return &types.AttributeValueMemberNULL{Value: true}
}
