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

// resultTimeFormat sorts lexicographically in time order.
const resultTimeFormat = "2006-01-02T15:04:05.000000000Z"

// RecordResult implements satellite.Registry. The assignment check and the
// write are one transaction, so a result is authorised against the
// assignments at the moment it is stored.
func (r *Registry) RecordResult(ctx context.Context, res satellite.Result) error {
	it := item{
		ResultsPartitionKey: str(checkKey(res.ConfigID, res.SystemID)),
		ResultsSortKey:      str(res.ExecutedAt.UTC().Format(resultTimeFormat) + "#" + keyPart(res.SatelliteID) + "#" + res.ID),
		"configId":          str(res.ConfigID),
		"systemId":          str(res.SystemID),
		"satelliteId":       str(res.SatelliteID),
		"source":            str(res.Source),
		"status":            str(string(res.Status)),
		"executedAt":        str(res.ExecutedAt.UTC().Format(time.RFC3339Nano)),
		"receivedAt":        millis(res.ReceivedAt),
		ResultsTTLAttribute: num(res.ExpiresAt.Unix()),
	}
	if res.LatencyMs != nil {
		it["latencyMs"] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(*res.LatencyMs, 'f', -1, 64)}
	}
	if res.Detail != nil {
		it["result"] = str(string(res.Detail))
	}
	err := r.transact(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{
			{ConditionCheck: &types.ConditionCheck{
				TableName:                           &r.tables.Satellites,
				Key:                                 item{SatellitesPartitionKey: str(satelliteKey(res.SatelliteID)), SatellitesSortKey: str(assignmentSort(res.ConfigID, res.SystemID))},
				ConditionExpression:                 aws.String("attribute_exists(pk) AND tokenGeneration = :gen"),
				ExpressionAttributeValues:           item{":gen": num(res.TokenGeneration)},
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			{Put: &types.Put{TableName: &r.tables.Results, Item: it}},
		},
	})
	if failed, reasons, ok := cancelled(err); ok && len(failed) > 0 && failed[0] {
		if len(reasons[0].Item) > 0 {
			return satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s's token was rotated since this connection authenticated", res.SatelliteID)
		}
		return satellite.Errorf(satellite.EFORBIDDEN, "satellite %s is not assigned configId %s systemId %s", res.SatelliteID, res.ConfigID, res.SystemID)
	}
	return internal(err, "store result")
}

// LatestResults returns up to limit results of a check, newest first.
func (r *Registry) LatestResults(ctx context.Context, configID, systemID string, limit int32) ([]satellite.Result, error) {
	out, err := r.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &r.tables.Results,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": ResultsPartitionKey},
		ExpressionAttributeValues: item{":pk": str(checkKey(configID, systemID))},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(limit),
	})
	if err != nil {
		return nil, internal(err, "read results")
	}
	results := make([]satellite.Result, 0, len(out.Items))
	for _, it := range out.Items {
		res := satellite.Result{
			ConfigID:    getStr(it, "configId"),
			SystemID:    getStr(it, "systemId"),
			SatelliteID: getStr(it, "satelliteId"),
			Source:      getStr(it, "source"),
			Status:      satellite.CheckStatus(getStr(it, "status")),
			ReceivedAt:  getMillis(it, "receivedAt"),
		}
		if n, ok := it["latencyMs"].(*types.AttributeValueMemberN); ok {
			if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
				res.LatencyMs = &f
			}
		}
		if d := getStr(it, "result"); d != "" {
			res.Detail = []byte(d)
		}
		res.ExecutedAt, _ = time.Parse(time.RFC3339Nano, getStr(it, "executedAt"))
		if exp := getNum(it, ResultsTTLAttribute); exp != 0 {
			res.ExpiresAt = time.Unix(exp, 0).UTC()
		}
		results = append(results, res)
	}
	return results, nil
}
