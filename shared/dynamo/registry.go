package dynamo

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// API is the part of the DynamoDB client the registry calls.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Tables names the three tables the Registry reads and writes: satellites,
// connections and results. (The telemetry and jobs tables are
// TelemetryLedger's and FanoutJobs', each given its own table name.)
type Tables struct {
	Satellites  string
	Connections string
	Results     string
}

// Registry implements satellite.Registry on DynamoDB.
type Registry struct {
	db     API
	tables Tables
	// backfillScanLimit overrides defaultBackfillScanLimit (tests make the
	// backfill take several steps over a small table).
	backfillScanLimit int32
	// beforeAdopt, when set, is called when a heartbeat is about to adopt
	// its connection, after it read the satellite: tests land a concurrent
	// write there (export_test.go).
	beforeAdopt func()
}

var (
	_ satellite.Registry   = (*Registry)(nil)
	_ satellite.Fleet      = (*Registry)(nil)
	_ satellite.SweepStore = (*Registry)(nil)
)

// Retry limits. A retry here follows a write that lost to a concurrent one
// (or keys DynamoDB left unprocessed); the limits only keep a contended or
// throttled loop finite and short enough for the Lambda's budget, and the
// caller's error (ECONFLICT or EINTERNAL) is safe to retry.
const (
	// transactAttempts: a TransactionConflict lasts only as long as the other
	// request writing the item; four attempts with the doubling, jittered
	// delay of transact (5, 10, 20 ms plus as much again at most) wait up to
	// about 70 ms, longer than such a write takes.
	transactAttempts = 4
	// unprocessedAttempts: BatchGetItem requests (batchGet, the telemetry
	// ledger) for keys DynamoDB left unprocessed; with the doubling
	// unprocessedBackoff five requests wait 20+40+80+160 = 300 ms in all:
	// long enough for a burst of throttling to pass, short enough for a
	// request path.
	unprocessedAttempts = 5
	// seedWriteAttempts: seed's BatchWriteItem requests write a whole fleet
	// at once, off any request path, so they may wait longer for throttling
	// to pass (unprocessedBackoff doubling: about 1.3 s over eight
	// requests).
	seedWriteAttempts = 8
	// bindRetries: BindConnection writes again only when a sweep marked the
	// satellite lost between the authentication's read and its write; that
	// takes the satellite missing its deadline each time, so three in a row
	// means something else is wrong.
	bindRetries = 3
	// heartbeatRetries: each retry of RecordHeartbeat follows another
	// writer's change to the satellite item (a heartbeat, a close, a sweep,
	// an authentication), each moving it along its few paths (steady, older
	// connection, restore, adopt); four such losses in a row is contention,
	// answered ECONFLICT, and the agent's next heartbeat tries again.
	heartbeatRetries = 4
	// tokenRotationRetries: SetTokenHash reads again when the satellite's
	// token or assignment set changed meanwhile, an admin's write racing
	// another admin write: rare, so three retries.
	tokenRotationRetries = 3
	// thresholdAttempts: a new threshold is written by one of two
	// conditional writes, the one for a satellite in the live index (its
	// deadline moves too) and the one for any other; a heartbeat or a
	// sweep moving the satellite between the two sends the change round
	// again, and five rounds lost in a row is contention (ECONFLICT).
	thresholdAttempts = 5
	// deleteRetries: removeSatelliteItem reads the satellite again when its
	// outbox changed meanwhile; a satellite that keeps connecting and
	// disconnecting moves its outbox a few times during a deletion.
	deleteRetries = 4
)

// Back-off between retries: attempt n waits the base doubled n times
// (transactBackoff doubles at most maxBackoffDoublings times, and adds
// jitter of as much again at most).
const (
	transactBackoff     = 5 * time.Millisecond
	maxBackoffDoublings = 6
	unprocessedBackoff  = 10 * time.Millisecond
)

// backoff is base doubled attempt times.
func backoff(base time.Duration, attempt int) time.Duration { return base << attempt }

// NewRegistry returns a registry over the given tables.
func NewRegistry(db API, tables Tables) *Registry { return &Registry{db: db, tables: tables} }

func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// cancelled returns, for a cancelled transaction, which of its items failed
// their condition, and the reasons DynamoDB gave.
func cancelled(err error) (failed []bool, reasons []types.CancellationReason, ok bool) {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil, nil, false
	}
	failed = make([]bool, len(tce.CancellationReasons))
	for i, r := range tce.CancellationReasons {
		failed[i] = aws.ToString(r.Code) == "ConditionalCheckFailed"
	}
	return failed, tce.CancellationReasons, true
}

// transact runs a transaction, and runs it again when DynamoDB cancelled it
// only because another request was writing one of its items at that moment
// (TransactionConflict): a heartbeat landing on the satellite item during an
// authentication must not turn into a failed authentication.
//
// Each attempt is a new request: the SDK fills ClientRequestToken into the
// input it is given, and a retry carrying the cancelled attempt's token is,
// to DynamoDB, the same request again.
func (r *Registry) transact(ctx context.Context, in *dynamodb.TransactWriteItemsInput) error {
	return transact(ctx, r.db, in, transactAttempts)
}

// transact runs a transaction up to attempts times while it is cancelled
// only by conflicts, waiting a jittered, doubling delay between attempts so
// that writers contending for one item fall into a sequence.
func transact(ctx context.Context, db API, in *dynamodb.TransactWriteItemsInput, attempts int) error {
	for attempt := 0; ; attempt++ {
		in.ClientRequestToken = nil
		_, err := db.TransactWriteItems(ctx, in)
		failed, reasons, ok := cancelled(err)
		if !ok || attempt == attempts-1 || slices.Contains(failed, true) {
			return err
		}
		conflict := false
		for _, reason := range reasons {
			conflict = conflict || aws.ToString(reason.Code) == "TransactionConflict"
		}
		if !conflict {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(jittered(backoff(transactBackoff, min(attempt, maxBackoffDoublings)))):
		}
	}
}

// jittered is d plus a random part of d.
func jittered(d time.Duration) time.Duration { return d + rand.N(d) }

func internal(err error, what string) error { return satellite.Wrap(err, satellite.EINTERNAL, what) }

// queryAll calls fn with every item of a query, page by page.
func (r *Registry) queryAll(ctx context.Context, in *dynamodb.QueryInput, fn func(item) error) error {
	pages := dynamodb.NewQueryPaginator(r.db, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, it := range page.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxTransactItems is DynamoDB's limit on one TransactWriteItems request.
const maxTransactItems = 100

// conditionFailure returns the item a failed condition reported, and
// whether err was a failed condition at all.
func conditionFailure(err error) (item, bool) {
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return nil, false
	}
	if ccf.Item == nil {
		return item{}, true
	}
	return ccf.Item, true
}

// conflicted reports whether err is a transaction cancelled only by
// conflicting writes (no condition failed).
func conflicted(err error) bool {
	failed, reasons, ok := cancelled(err)
	if !ok || slices.Contains(failed, true) {
		return false
	}
	for _, r := range reasons {
		if aws.ToString(r.Code) == "TransactionConflict" {
			return true
		}
	}
	return false
}

// maxBatchGet is how many keys one BatchGetItem request may ask for.
const maxBatchGet = 100

// batchGet reads the items of keys from table, at most maxBatchGet keys per
// request; keys DynamoDB leaves unprocessed (throttling) are asked for
// again with back-off. Items that do not exist are simply not returned.
func (r *Registry) batchGet(ctx context.Context, table string, keys []item, consistent bool) ([]item, error) {
	var out []item
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), maxBatchGet)]
		keys = keys[len(chunk):]
		for attempt := 0; len(chunk) > 0; attempt++ {
			if attempt == unprocessedAttempts {
				return nil, errors.New("DynamoDB kept keys unprocessed")
			}
			if attempt > 0 {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(backoff(unprocessedBackoff, attempt)):
				}
			}
			res, err := r.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
				table: {Keys: chunk, ConsistentRead: aws.Bool(consistent)},
			}})
			if err != nil {
				return nil, err
			}
			out = append(out, res.Responses[table]...)
			chunk = res.UnprocessedKeys[table].Keys
		}
	}
	return out, nil
}
