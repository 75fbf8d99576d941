package dynamo

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// resultTimeFormat sorts lexicographically in time order.
const resultTimeFormat = "2006-01-02T15:04:05.000000000Z"

// RecordResult implements satellite.Registry: a strongly consistent read of
// the assignment item authorises the result, then one plain put stores it.
//
// The read is what makes a revocation take effect at once. A token rotation
// (or a deletion's tombstone) moves the generation on every assignment item,
// and a reassignment deletes or rewrites them, each in one transaction; a
// consistent read started after that transaction committed sees it. So a
// result that reaches the backend after the change is refused; a result
// whose read came first may still be stored after it, by the invocation
// already handling it (within the message function's timeout). The
// transaction this replaces (a condition check beside the put) refused that
// in-flight result too, for 4 write units and more (a condition check
// costs 2 units per KB of the assignment item, which holds the
// assignment's collectors) against 1 read unit (up to 4 KB) and 1 write
// unit here. Its sort key starts with its OrderedAt, so that LatestResults,
// newest first, never puts a result dated ahead of the backend's clock
// before those received after it.
func (r *Registry) RecordResult(ctx context.Context, res satellite.Result) error {
	if err := r.authoriseResult(ctx, res); err != nil {
		return err
	}
	it := item{
		ResultsPartitionKey: str(checkKey(res.ConfigID, res.SystemID)),
		ResultsSortKey:      str(res.OrderedAt().UTC().Format(resultTimeFormat) + "#" + keyPart(res.SatelliteID) + "#" + res.ID),
		configIDAttr:        str(res.ConfigID),
		systemIDAttr:        str(res.SystemID),
		satelliteIDAttr:     str(res.SatelliteID),
		sourceAttr:          str(res.Source),
		statusAttr:          str(string(res.Status)),
		executedAtAttr:      str(res.ExecutedAt.UTC().Format(time.RFC3339Nano)),
		receivedAtAttr:      millis(res.ReceivedAt),
		ResultsTTLAttribute: num(res.ExpiresAt.Unix()),
	}
	if res.LatencyMs != nil {
		it[latencyAttr] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(*res.LatencyMs, 'f', -1, 64)}
	}
	if res.Detail != nil {
		it[detailAttr] = str(string(res.Detail))
	}
	if res.ClockSkewMs > 0 {
		it[clockSkewAttr] = num(res.ClockSkewMs)
	}
	if res.EnvironmentID != nil {
		it[resultEnvironmentAttr] = str(*res.EnvironmentID)
	}
	_, err := r.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &r.tables.Results, Item: it})
	return internal(err, "store result")
}

// authoriseResult reads the assignment a result reports for, consistently:
// it must exist under the connection's token generation and, for a run in
// an environment, list that environment. EFORBIDDEN or EUNAUTHENTICATED
// when it does not.
func (r *Registry) authoriseResult(ctx context.Context, res satellite.Result) error {
	projection := newExpr().project(tokenGenerationAttr, environmentsAttr)
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                &r.tables.Satellites,
		Key:                      item{SatellitesPartitionKey: str(satelliteKey(res.SatelliteID)), SatellitesSortKey: str(assignmentSort(res.ConfigID, res.SystemID))},
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     projection.projectionExpression(),
		ExpressionAttributeNames: projection.attributeNames(),
	})
	switch {
	case err != nil:
		return internal(err, "read assignment")
	case len(out.Item) == 0:
		return satellite.Errorf(satellite.EFORBIDDEN, "satellite %s is not assigned configId %s systemId %s", res.SatelliteID, res.ConfigID, res.SystemID)
	case getNum(out.Item, tokenGenerationAttr) != res.TokenGeneration:
		return satellite.Errorf(satellite.EUNAUTHENTICATED, "satellite %s's token was rotated since this connection authenticated", res.SatelliteID)
	case res.EnvironmentID != nil && !listsEnvironment(out.Item, *res.EnvironmentID):
		return satellite.Errorf(satellite.EFORBIDDEN, "the assignment configId %s systemId %s of satellite %s does not list environment %s",
			res.ConfigID, res.SystemID, res.SatelliteID, *res.EnvironmentID)
	}
	return nil
}

// listsEnvironment reports whether an assignment item lists environmentID.
func listsEnvironment(assignment item, environmentID string) bool {
	set, ok := assignment[environmentsAttr].(*types.AttributeValueMemberSS)
	return ok && slices.Contains(set.Value, environmentID)
}

// environmentReadFactor is how many of a check's results a listing of an
// environment's reads per result it wants, at most, in one page.
const environmentReadFactor = 4

// environmentScanItems bounds how many of a check's latest results one
// listing of an environment's reads: 10,000 (about 4.5 MB, 600 read units
// eventually consistent); an environment with no result among them lists
// none.
const environmentScanItems = 10000

// LatestResults implements satellite.Fleet: the check's partition, newest
// first. An environment's results are the partition's filtered: the table
// has no index by environment, which would cost every result one write unit
// more (and its size again in storage) to serve an admin listing.
func (r *Registry) LatestResults(ctx context.Context, configID, systemID string, environmentID *string, limit int32) ([]satellite.Result, error) {
	e := newExpr()
	e.key(eq(e.attr(ResultsPartitionKey), e.val("pk", str(checkKey(configID, systemID)))))
	pageLimit := limit
	if environmentID != nil {
		// Limit bounds the items a page reads, before the filter: read a
		// few times the wanted count at a time.
		e.when(eq(e.attr(resultEnvironmentAttr), e.val("env", str(*environmentID))))
		pageLimit = environmentReadFactor * limit
	}
	in := e.query(r.tables.Results, false)
	in.ScanIndexForward, in.Limit = aws.Bool(false), aws.Int32(pageLimit)
	results := make([]satellite.Result, 0, limit)
	for scanned := int32(0); ; {
		out, err := r.db.Query(ctx, in)
		if err != nil {
			return nil, internal(err, "read results")
		}
		for _, it := range out.Items {
			if int32(len(results)) < limit {
				results = append(results, ResultFromItem(it))
			}
		}
		scanned += out.ScannedCount
		if environmentID == nil || int32(len(results)) == limit || len(out.LastEvaluatedKey) == 0 || scanned >= environmentScanItems {
			return results, nil
		}
		// An environment whose results are sparse: read more a page, so
		// that reaching the scan's bound takes a few round trips.
		in.ExclusiveStartKey = out.LastEvaluatedKey
		in.Limit = aws.Int32(min(environmentReadFactor*aws.ToInt32(in.Limit), environmentScanItems-scanned))
	}
}

// ResultFromItem decodes a stored result, as a read or a stream record of
// the Results table gives it. Its ID is the last part of the sort key
// (orderedAt#satellite#id: neither of the first two holds a "#"); a
// malformed item decodes to what it holds.
func ResultFromItem(it map[string]types.AttributeValue) satellite.Result {
	res := satellite.Result{
		ConfigID:    getStr(it, configIDAttr),
		SystemID:    getStr(it, systemIDAttr),
		SatelliteID: getStr(it, satelliteIDAttr),
		Source:      getStr(it, sourceAttr),
		Status:      satellite.CheckStatus(getStr(it, statusAttr)),
		ReceivedAt:  getMillis(it, receivedAtAttr),
	}
	if parts := strings.SplitN(getStr(it, ResultsSortKey), "#", 3); len(parts) == 3 {
		res.ID = parts[2]
	}
	if env, ok := it[resultEnvironmentAttr].(*types.AttributeValueMemberS); ok {
		res.EnvironmentID = aws.String(env.Value)
	}
	if n, ok := it[latencyAttr].(*types.AttributeValueMemberN); ok {
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			res.LatencyMs = &f
		}
	}
	if d := getStr(it, detailAttr); d != "" {
		res.Detail = []byte(d)
	}
	res.ExecutedAt, _ = time.Parse(time.RFC3339Nano, getStr(it, executedAtAttr))
	res.ClockSkewMs = getNum(it, clockSkewAttr)
	if exp := getNum(it, ResultsTTLAttribute); exp != 0 {
		res.ExpiresAt = time.Unix(exp, 0).UTC()
	}
	return res
}
