// Package eventsource runs, locally, what Lambda's event source mappings for
// DynamoDB streams do on AWS, read from the template's functions' DynamoDB
// events: poll each shard of a table's stream (four times a second), gather
// records up to the batch size or the batching window, drop those the
// filter criteria do not match, invoke the function with the
// events.DynamoDBEvent Lambda sends, and retry as the mapping says (from
// the first failed item when the function reports batch item failures);
// a batch that fails every retry goes to the on-failure SQS destination as
// the same metadata document Lambda sends. DynamoDB Local serves the
// streams.
package eventsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	st "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// Mapping is one DynamoDB event of a function of the template.
type Mapping struct {
	Function string // logical id
	Event    string // the event's name in the template
	Table    string // logical id of the table whose stream it reads
	// StartingPosition is TRIM_HORIZON or LATEST.
	StartingPosition string
	BatchSize        int
	Window           time.Duration
	// Filters are the event patterns (FilterCriteria); a record passes
	// when one matches. None passes every record.
	Filters []map[string]any
	// ReportItemFailures: the function answers with batchItemFailures.
	ReportItemFailures bool
	// MaxRetries is MaximumRetryAttempts (-1: until the record expires).
	MaxRetries int
	// OnFailureQueue is the on-failure destination's logical id, "" for
	// none.
	OnFailureQueue string
}

// LoadMappings reads every DynamoDB event of the template's functions; a
// !Ref to a parameter takes its default.
func LoadMappings(tpl *samtemplate.Template) ([]Mapping, error) {
	var out []Mapping
	for _, fn := range tpl.ResourcesOfType("AWS::Serverless::Function") {
		evs, _ := tpl.Resources[fn].Properties["Events"].(map[string]any)
		names := make([]string, 0, len(evs))
		for n := range evs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			ev, _ := evs[name].(map[string]any)
			if ev["Type"] != "DynamoDB" {
				continue
			}
			p, _ := ev["Properties"].(map[string]any)
			table, attr, ok := samtemplate.GetAtt(p["Stream"])
			if !ok || attr != "StreamArn" {
				return nil, fmt.Errorf("%s.%s: Stream %v is not !GetAtt <table>.StreamArn", fn, name, p["Stream"])
			}
			m := Mapping{Function: fn, Event: name, Table: table, StartingPosition: str(p["StartingPosition"]), BatchSize: 100, MaxRetries: -1}
			number := func(key string, def int) (int, error) {
				v, ok := p[key]
				if !ok {
					return def, nil
				}
				s, err := tpl.Resolve(v, nil)
				if err != nil {
					return 0, fmt.Errorf("%s.%s: %s: %w", fn, name, key, err)
				}
				return strconv.Atoi(s)
			}
			var err error
			if m.BatchSize, err = number("BatchSize", 100); err != nil {
				return nil, err
			}
			window, err := number("MaximumBatchingWindowInSeconds", 0)
			if err != nil {
				return nil, err
			}
			m.Window = time.Duration(window) * time.Second
			if m.MaxRetries, err = number("MaximumRetryAttempts", -1); err != nil {
				return nil, err
			}
			if fc, ok := p["FilterCriteria"].(map[string]any); ok {
				filters, _ := fc["Filters"].([]any)
				for _, f := range filters {
					pattern, _ := f.(map[string]any)["Pattern"].(string)
					var v map[string]any
					if err := json.Unmarshal([]byte(pattern), &v); err != nil {
						return nil, fmt.Errorf("%s.%s: filter pattern %q: %w", fn, name, pattern, err)
					}
					m.Filters = append(m.Filters, v)
				}
			}
			for _, t := range asList(p["FunctionResponseTypes"]) {
				if t == "ReportBatchItemFailures" {
					m.ReportItemFailures = true
				}
			}
			if dc, ok := p["DestinationConfig"].(map[string]any); ok {
				of, _ := dc["OnFailure"].(map[string]any)
				q, attr, ok := samtemplate.GetAtt(of["Destination"])
				if !ok || attr != "Arn" || tpl.Resources[q].Type != "AWS::SQS::Queue" {
					return nil, fmt.Errorf("%s.%s: on-failure destination %v is not a queue of the template", fn, name, of["Destination"])
				}
				m.OnFailureQueue = q
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func str(v any) string { s, _ := v.(string); return s }

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// Sender sends a message to a queue (the on-failure destination).
type Sender func(ctx context.Context, queueURL, body string) error

// Config configures a Runner.
type Config struct {
	Mappings []Mapping
	// Tables maps a table's logical id to its local name.
	Tables map[string]string
	// Queues maps a queue's logical id to its local URL.
	Queues   map[string]string
	DynamoDB *dynamodb.Client
	Streams  *dynamodbstreams.Client
	Invoker  gateway.Invoker
	// Send delivers on-failure messages; nil logs them only.
	Send Sender
	Log  *slog.Logger
	// PollEvery is how often a shard is read (Lambda: four times a
	// second); RetryDelay the wait before a failed batch is retried.
	PollEvery, RetryDelay time.Duration
	// Timeout bounds one invocation (the function's Timeout).
	Timeout func(function string) time.Duration
}

// Runner runs the mappings until Stop.
type Runner struct {
	cfg    Config
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start begins polling every mapping's stream.
func Start(cfg Config) (*Runner, error) {
	if cfg.PollEvery == 0 {
		cfg.PollEvery = 250 * time.Millisecond
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, cancel: cancel}
	for _, m := range cfg.Mappings {
		table, ok := cfg.Tables[m.Table]
		if !ok {
			cancel()
			return nil, fmt.Errorf("%s.%s: no local table for %s", m.Function, m.Event, m.Table)
		}
		out, err := cfg.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%s.%s: %w", m.Function, m.Event, err)
		}
		if out.Table.LatestStreamArn == nil {
			cancel()
			return nil, fmt.Errorf("%s.%s: table %s has no stream (StreamSpecification)", m.Function, m.Event, table)
		}
		r.wg.Add(1)
		go r.run(ctx, m, *out.Table.LatestStreamArn)
	}
	return r, nil
}

// Stop ends polling and waits for invocations in flight.
func (r *Runner) Stop() {
	r.cancel()
	r.wg.Wait()
}

// run follows a stream's shards: each is read once its parent is done.
func (r *Runner) run(ctx context.Context, m Mapping, stream string) {
	defer r.wg.Done()
	log := r.cfg.Log.With("function", m.Function, "event", m.Event)
	started := map[string]bool{}
	done := map[string]chan struct{}{}
	var shards sync.WaitGroup
	defer shards.Wait()
	for {
		out, err := r.cfg.Streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(stream)})
		if err != nil && ctx.Err() == nil {
			log.Warn("describe stream failed", "error", err.Error())
		}
		if out != nil {
			for _, sh := range out.StreamDescription.Shards {
				id := aws.ToString(sh.ShardId)
				if started[id] {
					continue
				}
				started[id] = true
				done[id] = make(chan struct{})
				var parent chan struct{}
				if p := aws.ToString(sh.ParentShardId); p != "" {
					parent = done[p]
				}
				shards.Add(1)
				go func(id string, parent, finished chan struct{}) {
					defer shards.Done()
					defer close(finished)
					if parent != nil {
						select {
						case <-parent:
						case <-ctx.Done():
							return
						}
					}
					r.readShard(ctx, m, stream, id, log.With("shardId", id))
				}(id, parent, done[id])
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// readShard reads one shard to its end, in batches.
func (r *Runner) readShard(ctx context.Context, m Mapping, stream, shard string, log *slog.Logger) {
	position := st.ShardIteratorTypeTrimHorizon
	if m.StartingPosition == "LATEST" {
		position = st.ShardIteratorTypeLatest
	}
	it, err := r.cfg.Streams.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: position})
	if err != nil {
		if ctx.Err() == nil {
			log.Error("shard iterator failed", "error", err.Error())
		}
		return
	}
	iterator := it.ShardIterator
	var (
		buffer []st.Record
		since  time.Time
		// last is the sequence number of the last record read: an
		// iterator that went bad is replaced by one after it.
		last string
	)
	for iterator != nil || len(buffer) > 0 {
		// more: the last read found records, so read on without waiting.
		more := false
		if iterator != nil && len(buffer) < m.BatchSize {
			out, err := r.cfg.Streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iterator, Limit: aws.Int32(int32(min(1000, m.BatchSize-len(buffer))))})
			var trimmed *st.TrimmedDataAccessException
			var expired *st.ExpiredIteratorException
			switch {
			case ctx.Err() != nil:
				return
			case errors.As(err, &trimmed) || errors.As(err, &expired):
				// An iterator is good for 15 minutes; DynamoDB Local also
				// refuses one taken on an empty shard once records arrive.
				in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: position}
				if last != "" {
					in.ShardIteratorType, in.SequenceNumber = st.ShardIteratorTypeAfterSequenceNumber, aws.String(last)
				}
				fresh, ierr := r.cfg.Streams.GetShardIterator(ctx, in)
				if ierr != nil {
					log.Warn("shard iterator failed", "error", ierr.Error())
				} else {
					iterator = fresh.ShardIterator
				}
			case err != nil:
				log.Warn("get records failed", "error", err.Error())
			default:
				if len(buffer) == 0 && len(out.Records) > 0 {
					since = time.Now()
				}
				buffer = append(buffer, out.Records...)
				if n := len(out.Records); n > 0 {
					last = aws.ToString(out.Records[n-1].Dynamodb.SequenceNumber)
				}
				iterator = out.NextShardIterator
				more = len(out.Records) > 0
			}
		}
		if len(buffer) > 0 && (len(buffer) >= m.BatchSize || time.Since(since) >= m.Window || iterator == nil) {
			n := min(len(buffer), m.BatchSize)
			if !r.deliver(ctx, m, stream, shard, buffer[:n], log) {
				return
			}
			buffer, since = buffer[n:], time.Now()
			continue
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.PollEvery):
		}
	}
}
