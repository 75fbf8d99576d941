package dynamo

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// ListDeadlineMargin is how long before ctx's deadline a listing stops
// reading further satellites: the page ends with those it has read, and
// its Next resumes after them. One chunk (listChunk satellites) is always
// read, so every page makes progress.
const ListDeadlineMargin = 3 * time.Second

// listChunk is how many satellites one BatchGetItem request reads: each
// needs two keys (its satellite and profile items), and a request takes
// maxBatchGet.
const listChunk = maxBatchGet / 2

// ListSatellites implements satellite.Fleet. It reads the page's entries of
// the fleet index (keys only, one more than limit to learn whether another
// page follows), then the satellite and profile items of listChunk
// satellites per BatchGetItem request, eventually consistent (an operator's
// view, at half the read cost). A satellite whose item is gone (deleted
// after the index was read) is left out.
func (r *Registry) ListSatellites(ctx context.Context, after string, limit int) (satellite.SatellitePage, error) {
	limit = max(limit, 1)
	ids, more, err := r.fleetIDs(ctx, after, limit)
	if err != nil {
		return satellite.SatellitePage{}, internal(err, "list satellites")
	}
	page := satellite.SatellitePage{Satellites: make([]satellite.Satellite, 0, len(ids))}
	for start := 0; start < len(ids); start += listChunk {
		if start > 0 && nearDeadline(ctx, ListDeadlineMargin) {
			page.Next = ids[start-1]
			return page, nil
		}
		chunk := ids[start:min(len(ids), start+listChunk)]
		keys := make([]item, 0, 2*len(chunk))
		for _, id := range chunk {
			pk := str(satelliteKey(id))
			keys = append(keys,
				item{SatellitesPartitionKey: pk, SatellitesSortKey: str(satelliteSort)},
				item{SatellitesPartitionKey: pk, SatellitesSortKey: str(profileSort)})
		}
		items, err := r.batchGet(ctx, r.tables.Satellites, keys, false)
		if err != nil {
			return satellite.SatellitePage{}, internal(err, "read listed satellites")
		}
		sats, profiles := make(map[string]item, len(chunk)), make(map[string]item, len(chunk))
		for _, it := range items {
			if getStr(it, SatellitesSortKey) == satelliteSort {
				sats[satelliteIDOf(it)] = it
			} else {
				profiles[satelliteIDOf(it)] = it
			}
		}
		for _, id := range chunk {
			it, ok := sats[id]
			if !ok {
				continue
			}
			sat := satelliteFrom(it)
			withProfile(&sat, profiles[id])
			page.Satellites = append(page.Satellites, sat)
		}
	}
	if more {
		page.Next = ids[len(ids)-1]
	}
	return page, nil
}

// fleetIDs reads the ids of up to limit satellites after after from the
// fleet index, in order, and whether more follow.
func (r *Registry) fleetIDs(ctx context.Context, after string, limit int) (ids []string, more bool, err error) {
	in := &dynamodb.QueryInput{
		TableName:                 &r.tables.Satellites,
		IndexName:                 aws.String(FleetIndex),
		KeyConditionExpression:    aws.String("#part = :part"),
		ExpressionAttributeNames:  map[string]string{"#part": FleetIndexPartKey},
		ExpressionAttributeValues: item{":part": str(FleetIndexPart)},
	}
	if after != "" {
		in.KeyConditionExpression = aws.String("#part = :part AND #pk > :after")
		in.ExpressionAttributeNames["#pk"] = FleetIndexSortKey
		in.ExpressionAttributeValues[":after"] = str(satelliteKey(after))
	}
	// DynamoDB ends a query page at Limit items or 1 MB read; the index's
	// entries are keys only (about 100 bytes), so one request is the rule
	// and more than one happens only past about 10,000 satellites a page.
	for len(ids) <= limit {
		in.Limit = aws.Int32(int32(limit + 1 - len(ids)))
		out, err := r.db.Query(ctx, in)
		if err != nil {
			return nil, false, err
		}
		for _, it := range out.Items {
			ids = append(ids, satelliteIDOf(it))
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	if len(ids) > limit {
		return ids[:limit], true, nil
	}
	return ids, false, nil
}

// nearDeadline reports whether ctx's deadline is less than margin away.
func nearDeadline(ctx context.Context, margin time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return ok && time.Until(deadline) < margin
}

// Backfill of the fleet index. Satellites created before the index existed
// have no FleetIndexPartKey; each step scans defaultBackfillScanLimit items of the
// table from where the previous step stopped (kept in the progress item),
// gives every satellite item without the key the key, and saves the new
// position, or that it is done once the scan reached the table's end. A
// satellite created since carries the key from its creation, so one pass
// is enough; repeating one (two sweeps at once, a step whose progress was
// not saved) only repeats conditional writes that find the key there.
const (
	// defaultBackfillScanLimit bounds the items one step evaluates (a Scan page
	// also ends at 1 MB): about 125 read units at most, and at most as many
	// conditional writes as legacy satellites among them.
	defaultBackfillScanLimit = 1000
	// backfillWriters bounds the step's parallel writes: each adds an entry
	// to the one index partition, which takes about 1,000 writes a second.
	backfillWriters = 4
)

// IndexLegacySatellites implements satellite.SweepStore.
func (r *Registry) IndexLegacySatellites(ctx context.Context, now time.Time) (satellite.BackfillStep, error) {
	progressKey := item{SatellitesPartitionKey: str(migrationPart), SatellitesSortKey: str(fleetBackfillSort)}
	// BatchGetItem rather than GetItem: the sweep reads its batches of
	// stale satellites with it already.
	found, err := r.batchGet(ctx, r.tables.Satellites, []item{progressKey}, true)
	if err != nil {
		return satellite.BackfillStep{}, internal(err, "read fleet index backfill progress")
	}
	var progress item
	if len(found) == 1 {
		progress = found[0]
	}
	if done, _ := progress["done"].(*types.AttributeValueMemberBOOL); done != nil && done.Value {
		return satellite.BackfillStep{Done: true}, nil
	}
	// Select is stated, not left implied by the projection: the sweep's
	// grant of Scan requires it (and these attributes only), so no request
	// can read whole satellite items with it.
	in := &dynamodb.ScanInput{
		TableName:                 &r.tables.Satellites,
		Limit:                     aws.Int32(cmp.Or(r.backfillScanLimit, defaultBackfillScanLimit)),
		FilterExpression:          aws.String("#sk = :sat AND attribute_not_exists(#part)"),
		ProjectionExpression:      aws.String("#pk"),
		Select:                    types.SelectSpecificAttributes,
		ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey, "#sk": SatellitesSortKey, "#part": FleetIndexPartKey},
		ExpressionAttributeValues: item{":sat": str(satelliteSort)},
	}
	if pk, sk := getStr(progress, "resumePk"), getStr(progress, "resumeSk"); pk != "" {
		in.ExclusiveStartKey = item{SatellitesPartitionKey: str(pk), SatellitesSortKey: str(sk)}
	}
	page, err := r.db.Scan(ctx, in)
	if err != nil {
		return satellite.BackfillStep{}, internal(err, "scan for satellites outside the fleet index")
	}
	indexed, err := r.indexSatellites(ctx, page.Items)
	if err != nil {
		// The position is not saved: the next step scans this page again.
		return satellite.BackfillStep{Indexed: indexed}, err
	}
	update := &dynamodb.UpdateItemInput{
		TableName:                 &r.tables.Satellites,
		Key:                       progressKey,
		UpdateExpression:          aws.String("SET #rpk = :pk, #rsk = :sk, #at = :now ADD #n :n"),
		ExpressionAttributeNames:  map[string]string{"#rpk": "resumePk", "#rsk": "resumeSk", "#at": "updatedAt", "#n": "satellitesIndexed"},
		ExpressionAttributeValues: item{":now": millis(now), ":n": num(int64(indexed))},
	}
	done := len(page.LastEvaluatedKey) == 0
	if done {
		update.UpdateExpression = aws.String("SET #done = :done, #at = :now ADD #n :n REMOVE #rpk, #rsk")
		update.ExpressionAttributeNames["#done"] = "done"
		update.ExpressionAttributeValues[":done"] = &types.AttributeValueMemberBOOL{Value: true}
	} else {
		update.ExpressionAttributeValues[":pk"] = page.LastEvaluatedKey[SatellitesPartitionKey]
		update.ExpressionAttributeValues[":sk"] = page.LastEvaluatedKey[SatellitesSortKey]
	}
	if _, err := r.db.UpdateItem(ctx, update); err != nil {
		return satellite.BackfillStep{Indexed: indexed}, internal(err, "save fleet index backfill progress")
	}
	return satellite.BackfillStep{Indexed: indexed, Done: done}, nil
}

// indexSatellites gives each satellite item of keys (pk only) its fleet
// index key, backfillWriters at a time, and returns how many it changed. A
// satellite deleted meanwhile, or indexed by another step, is left as it
// is. It stops at the first error or when ctx ends.
func (r *Registry) indexSatellites(ctx context.Context, keys []item) (int, error) {
	var (
		mu      sync.Mutex
		next    int
		indexed int
		errs    []error
		wg      sync.WaitGroup
	)
	for range min(backfillWriters, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next == len(keys) || len(errs) > 0 || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				pk := keys[next][SatellitesPartitionKey]
				next++
				mu.Unlock()
				_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
					TableName:                 &r.tables.Satellites,
					Key:                       item{SatellitesPartitionKey: pk, SatellitesSortKey: str(satelliteSort)},
					UpdateExpression:          aws.String("SET #part = :part"),
					ConditionExpression:       aws.String("attribute_exists(#pk) AND attribute_not_exists(#part)"),
					ExpressionAttributeNames:  map[string]string{"#pk": SatellitesPartitionKey, "#part": FleetIndexPartKey},
					ExpressionAttributeValues: item{":part": str(FleetIndexPart)},
				})
				mu.Lock()
				switch {
				case err == nil:
					indexed++
				case !conditionFailed(err):
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return indexed, internal(err, "add satellites to the fleet index")
	}
	return indexed, nil
}
