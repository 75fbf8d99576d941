package dynamo

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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
	e := newExpr()
	e.key(eq(e.attr(FleetIndexPartKey), e.val("part", str(FleetIndexPart))))
	if after != "" {
		e.key(gt(e.attr(FleetIndexSortKey), e.val("after", str(satelliteKey(after)))))
	}
	in := e.query(r.tables.Satellites, false)
	in.IndexName = aws.String(FleetIndex)
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
	if getBool(progress, backfillDoneAttr) {
		return satellite.BackfillStep{Done: true}, nil
	}
	// Select is stated, not left implied by the projection: the sweep's
	// grant of Scan requires it (and these attributes only), so no request
	// can read whole satellite items with it.
	scan := newExpr()
	scan.when(and(eq(scan.attr(SatellitesSortKey), scan.val("sat", str(satelliteSort))), notExists(scan.attr(FleetIndexPartKey))))
	scan.project(SatellitesPartitionKey)
	in := scan.scan(r.tables.Satellites)
	in.Limit = aws.Int32(cmp.Or(r.backfillScanLimit, defaultBackfillScanLimit))
	in.Select = types.SelectSpecificAttributes
	if pk, sk := getStr(progress, resumePKAttr), getStr(progress, resumeSKAttr); pk != "" {
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
	// The step's progress: where the next step resumes, or that the scan
	// reached the table's end.
	e := newExpr()
	e.setTo(e.attr(updatedAtAttr), e.val("now", millis(now)))
	e.adds(e.attr(indexedAttr), e.val("n", num(int64(indexed))))
	done := len(page.LastEvaluatedKey) == 0
	if done {
		e.setTo(e.attr(backfillDoneAttr), e.val("done", boolean(true)))
		e.removes(e.attr(resumePKAttr), e.attr(resumeSKAttr))
	} else {
		e.setTo(e.attr(resumePKAttr), e.val("pk", page.LastEvaluatedKey[SatellitesPartitionKey]))
		e.setTo(e.attr(resumeSKAttr), e.val("sk", page.LastEvaluatedKey[SatellitesSortKey]))
	}
	update := e.updateItem(r.tables.Satellites, progressKey)
	if _, err := r.db.UpdateItem(ctx, update); err != nil {
		return satellite.BackfillStep{Indexed: indexed}, internal(err, "save fleet index backfill progress")
	}
	return satellite.BackfillStep{Indexed: indexed, Done: done}, nil
}

// indexEntry gives a satellite item its fleet index key, on condition that
// it exists and has none.
func indexEntry() *expr {
	e := whereExists(SatellitesPartitionKey)
	part := e.attr(FleetIndexPartKey)
	return e.setTo(part, e.val("part", str(FleetIndexPart))).when(notExists(part))
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
				_, err := r.db.UpdateItem(ctx, indexEntry().updateItem(r.tables.Satellites, item{SatellitesPartitionKey: pk, SatellitesSortKey: str(satelliteSort)}))
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
