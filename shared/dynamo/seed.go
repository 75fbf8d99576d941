package dynamo

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// maxBatchWrite is how many items one BatchWriteItem request may write.
const maxBatchWrite = 25

// SeedConnected writes satellites as an authentication on connection
// "conn-<id>" at connectedAt leaves them, once their connected edge is
// confirmed: the satellite and profile items and the bound connection
// record. It writes maxBatchWrite items per request and checks nothing, so it is for
// filling a fleet for benchmarks and load tests only (sweepbench seeds
// 100,000 satellites with it); a test keeps its items equal to what
// CreateSatellite, OpenConnection, BindConnection and ConfirmEdge write.
func (r *Registry) SeedConnected(ctx context.Context, sats []satellite.Satellite, connectedAt time.Time) error {
	byTable := map[string][]types.WriteRequest{}
	for _, s := range sats {
		conn := "conn-" + s.ID
		// As created, then as an authentication binds it.
		state, profile := newSatelliteItems(s)
		state[currentConnAttr] = str(conn)
		state[heartbeatAttr] = millis(connectedAt)
		state[lastEdgeAttr] = str(string(satellite.EdgeConnected))
		state[LiveIndexPartKey] = str(liveShard(s.ID))
		state[LiveIndexSortKey] = millis(liveFrom(connectedAt, s.OfflineThreshold).Add(s.Threshold()))
		record := item{
			ConnectionsPartitionKey:     str(conn),
			UnauthenticatedIndexSortKey: millis(connectedAt),
			ConnectionsTTLAttribute:     num(connectedAt.Add(satellite.ConnectionRecordTTL).Unix()),
			BySatelliteIndexPartKey:     str(s.ID),
			satelliteNameAttr:           str(s.Name),
			satelliteRegionAttr:         str(s.Region),
			authenticatedAtAttr:         millis(connectedAt),
			tokenGenerationAttr:         num(s.TokenGeneration),
			ExpiryIndexPartKey:          str(expiryShard(conn)),
		}
		if s.OfflineThreshold > 0 {
			record[connectionThresholdAttr] = num(s.OfflineThreshold.Milliseconds())
		}
		byTable[r.tables.Satellites] = append(byTable[r.tables.Satellites],
			types.WriteRequest{PutRequest: &types.PutRequest{Item: state}},
			types.WriteRequest{PutRequest: &types.PutRequest{Item: profile}})
		byTable[r.tables.Connections] = append(byTable[r.tables.Connections], types.WriteRequest{PutRequest: &types.PutRequest{Item: record}})
	}
	for table, writes := range byTable {
		for len(writes) > 0 {
			chunk := writes[:min(len(writes), maxBatchWrite)]
			writes = writes[len(chunk):]
			for attempt := 0; len(chunk) > 0; attempt++ {
				if attempt == seedWriteAttempts {
					return errors.New("seed: DynamoDB kept items unprocessed")
				}
				out, err := r.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: chunk}})
				if err != nil {
					return internal(err, "seed satellites")
				}
				chunk = out.UnprocessedItems[table]
				if len(chunk) > 0 {
					select {
					case <-ctx.Done():
						return internal(ctx.Err(), "seed satellites")
					case <-time.After(backoff(unprocessedBackoff, attempt)):
					}
				}
			}
		}
	}
	return nil
}
