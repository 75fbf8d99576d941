package testenv

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/shared/phases"
)

// Call is one AWS request as it was made.
type Call struct {
	Service string // SDK service id, e.g. "DynamoDB", "S3"
	// Operation is the SDK's operation name ("GetItem", "PutObject"); an S3
	// URL presigned for a GET, which sends no request, is
	// "PresignGetObject".
	Operation string
	// Input is the operation's input struct, without the bodies that can
	// carry what only a satellite may see (a post's frame, an object's
	// content, an invocation's event): see withoutBody.
	Input any
	// Resource is what a call other than DynamoDB's was about, read from
	// its input: an object key (a listing's prefix), the secret ids of a
	// batch (comma-separated), a connection id, a queue URL, a function, an
	// event bus.
	Resource string
	// Items is how many items a Query, Scan or BatchGetItem returned.
	Items int
	// Capacity is what a DynamoDB request consumed, as DynamoDB reported it
	// (see capacityOf for the two corrections made to DynamoDB Local's
	// figures).
	Capacity Capacity
}

// Capacity is the capacity a DynamoDB request consumed: read and write
// units, on tables and on global secondary indexes.
type Capacity struct {
	Read, Write           float64 // tables and indexes together
	IndexRead, IndexWrite float64 // the indexes' part
}

// Add returns c + o.
func (c Capacity) Add(o Capacity) Capacity {
	return Capacity{c.Read + o.Read, c.Write + o.Write, c.IndexRead + o.IndexRead, c.IndexWrite + o.IndexWrite}
}

// Calls records every AWS request made by the SDK clients it is installed
// on (APIOption, in every client's APIOptions). It is how tests check
// request budgets and IAM policies: by counting what the code really sends,
// not by guessing.
type Calls struct {
	mu    sync.Mutex
	calls []Call
}

// APIOption installs the recorder on an SDK client's middleware stack. It
// sees each operation once, before the SDK sends it (and retries it).
func (c *Calls) APIOption(stack *middleware.Stack) error {
	presign := phases.IsPresign(stack)
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("testenv.Calls",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			askCapacity(in.Parameters)
			out, md, err := next.HandleInitialize(ctx, in)
			call := Call{
				Service: middleware.GetServiceID(ctx), Operation: middleware.GetOperationName(ctx),
				Input: withoutBody(in.Parameters), Resource: resourceOf(in.Parameters),
			}
			if presign {
				call.Operation = "Presign" + call.Operation
			}
			call.Capacity = capacityOf(out.Result, err)
			switch res := out.Result.(type) {
			case *dynamodb.QueryOutput:
				call.Items = len(res.Items)
			case *dynamodb.ScanOutput:
				call.Items = len(res.Items)
			case *dynamodb.BatchGetItemOutput:
				for _, items := range res.Responses {
					call.Items += len(items)
				}
			}
			c.mu.Lock()
			c.calls = append(c.calls, call)
			c.mu.Unlock()
			return out, md, err
		}), middleware.Before)
}

// resourceOf names what a call other than DynamoDB's is about (see
// Call.Resource).
func resourceOf(in any) string {
	switch in := in.(type) {
	case *s3.GetObjectInput:
		return aws.ToString(in.Key)
	case *s3.HeadObjectInput:
		return aws.ToString(in.Key)
	case *s3.PutObjectInput:
		return aws.ToString(in.Key)
	case *s3.ListObjectsV2Input:
		return aws.ToString(in.Prefix)
	case *secretsmanager.BatchGetSecretValueInput:
		return strings.Join(in.SecretIdList, ",")
	case *secretsmanager.GetSecretValueInput:
		return aws.ToString(in.SecretId)
	case *apigatewaymanagementapi.PostToConnectionInput:
		return aws.ToString(in.ConnectionId)
	case *apigatewaymanagementapi.DeleteConnectionInput:
		return aws.ToString(in.ConnectionId)
	case *apigatewaymanagementapi.GetConnectionInput:
		return aws.ToString(in.ConnectionId)
	case *sqs.SendMessageBatchInput:
		return aws.ToString(in.QueueUrl)
	case *sqs.SendMessageInput:
		return aws.ToString(in.QueueUrl)
	case *lambda.InvokeInput:
		return aws.ToString(in.FunctionName)
	case *eventbridge.PutEventsInput:
		var buses []string
		for _, e := range in.Entries {
			if b := aws.ToString(e.EventBusName); !slices.Contains(buses, b) {
				buses = append(buses, b)
			}
		}
		return strings.Join(buses, ",")
	}
	return ""
}

// withoutBody returns a copy of an input without the body a satellite's
// frame, a stored object or an invocation's event travels in: a test log
// that prints calls must not print what only a satellite may see (run
// secrets). Other inputs are returned as they are.
func withoutBody(in any) any {
	switch in := in.(type) {
	case *apigatewaymanagementapi.PostToConnectionInput:
		cp := *in
		cp.Data = nil
		return &cp
	case *s3.PutObjectInput:
		cp := *in
		cp.Body = nil
		return &cp
	case *lambda.InvokeInput:
		cp := *in
		cp.Payload = nil
		return &cp
	}
	return in
}

// Reset forgets every recorded call.
func (c *Calls) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = nil
}

// All returns the recorded calls in order.
func (c *Calls) All() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Call(nil), c.calls...)
}

// Count returns how many calls were made to service.
func (c *Calls) Count(service string) int {
	n := 0
	for _, call := range c.All() {
		if call.Service == service {
			n++
		}
	}
	return n
}

// ItemsRead returns how many items the recorded Queries, Scans and
// BatchGetItems returned.
func (c *Calls) ItemsRead() int {
	n := 0
	for _, call := range c.All() {
		n += call.Items
	}
	return n
}

// Operations returns the operations made to service, in order.
func (c *Calls) Operations(service string) []string {
	var ops []string
	for _, call := range c.All() {
		if call.Service == service {
			ops = append(ops, call.Operation)
		}
	}
	return ops
}

// TableAction is one IAM action on one DynamoDB table, as a request implies
// it (a TransactWriteItems request implies one action per item).
type TableAction struct {
	Table  string
	Index  string // set for a Query or Scan of an index
	Action string // e.g. "dynamodb:UpdateItem"
}

// DynamoDBActions returns the distinct IAM actions the recorded DynamoDB
// requests needed, per table, sorted.
func (c *Calls) DynamoDBActions() []TableAction {
	seen := map[TableAction]bool{}
	addIndex := func(table, index *string, action string) {
		seen[TableAction{aws.ToString(table), aws.ToString(index), "dynamodb:" + action}] = true
	}
	add := func(table *string, action string) { addIndex(table, nil, action) }
	for _, call := range c.All() {
		if call.Service != "DynamoDB" {
			continue
		}
		switch in := call.Input.(type) {
		case *dynamodb.GetItemInput:
			add(in.TableName, "GetItem")
		case *dynamodb.PutItemInput:
			add(in.TableName, "PutItem")
		case *dynamodb.UpdateItemInput:
			add(in.TableName, "UpdateItem")
		case *dynamodb.DeleteItemInput:
			add(in.TableName, "DeleteItem")
		case *dynamodb.QueryInput:
			addIndex(in.TableName, in.IndexName, "Query")
		case *dynamodb.ScanInput:
			addIndex(in.TableName, in.IndexName, "Scan")
		case *dynamodb.TransactWriteItemsInput:
			for _, it := range in.TransactItems {
				switch {
				case it.Put != nil:
					add(it.Put.TableName, "PutItem")
				case it.Update != nil:
					add(it.Update.TableName, "UpdateItem")
				case it.Delete != nil:
					add(it.Delete.TableName, "DeleteItem")
				case it.ConditionCheck != nil:
					add(it.ConditionCheck.TableName, "ConditionCheckItem")
				}
			}
		case *dynamodb.BatchGetItemInput:
			for table := range in.RequestItems {
				add(aws.String(table), "BatchGetItem")
			}
		default:
			add(aws.String("?"), call.Operation)
		}
	}
	actions := make([]TableAction, 0, len(seen))
	for a := range seen {
		actions = append(actions, a)
	}
	sort.Slice(actions, func(i, j int) bool {
		if actions[i].Table != actions[j].Table {
			return actions[i].Table < actions[j].Table
		}
		if actions[i].Index != actions[j].Index {
			return actions[i].Index < actions[j].Index
		}
		return actions[i].Action < actions[j].Action
	})
	return actions
}

// Add records every call other recorded, as if made here (one function's
// calls made through two instances).
func (c *Calls) Add(other *Calls) {
	calls := other.All()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, calls...)
}

// Capacity returns the capacity the recorded DynamoDB requests consumed.
func (c *Calls) Capacity() Capacity {
	var total Capacity
	for _, call := range c.All() {
		total = total.Add(call.Capacity)
	}
	return total
}

// askCapacity makes a DynamoDB request report the capacity it consumes, per
// table and index. It changes what the response carries, nothing else.
func askCapacity(in any) {
	const indexes = types.ReturnConsumedCapacityIndexes
	switch in := in.(type) {
	case *dynamodb.GetItemInput:
		in.ReturnConsumedCapacity = indexes
	case *dynamodb.PutItemInput:
		in.ReturnConsumedCapacity = indexes
	case *dynamodb.UpdateItemInput:
		in.ReturnConsumedCapacity = indexes
	case *dynamodb.DeleteItemInput:
		in.ReturnConsumedCapacity = indexes
	case *dynamodb.QueryInput:
		in.ReturnConsumedCapacity = indexes
	case *dynamodb.ScanInput:
		in.ReturnConsumedCapacity = indexes
	case *dynamodb.BatchGetItemInput:
		in.ReturnConsumedCapacity = indexes
	case *dynamodb.BatchWriteItemInput:
		in.ReturnConsumedCapacity = indexes
	case *dynamodb.TransactWriteItemsInput:
		in.ReturnConsumedCapacity = indexes
	case *dynamodb.TransactGetItemsInput:
		in.ReturnConsumedCapacity = indexes
	}
}

// capacityOf reads the capacity a DynamoDB response reports, with two
// corrections where DynamoDB Local's figures are not AWS's:
//   - a write refused by its condition reports nothing, but AWS charges it
//     (at least one write unit; more for an item over 1 KB, which the
//     request does not show): it counts one;
//   - DynamoDB Local reports a transactional write at four units per KB,
//     where AWS documents two (a prepare and a commit): transactions count
//     half of what it reports.
func capacityOf(out any, err error) Capacity {
	var consumed []types.ConsumedCapacity
	write, transaction := false, false
	switch res := out.(type) {
	case *dynamodb.GetItemOutput:
		consumed = one(res.ConsumedCapacity)
	case *dynamodb.PutItemOutput:
		consumed, write = one(res.ConsumedCapacity), true
	case *dynamodb.UpdateItemOutput:
		consumed, write = one(res.ConsumedCapacity), true
	case *dynamodb.DeleteItemOutput:
		consumed, write = one(res.ConsumedCapacity), true
	case *dynamodb.QueryOutput:
		consumed = one(res.ConsumedCapacity)
	case *dynamodb.ScanOutput:
		consumed = one(res.ConsumedCapacity)
	case *dynamodb.BatchGetItemOutput:
		consumed = res.ConsumedCapacity
	case *dynamodb.BatchWriteItemOutput:
		consumed, write = res.ConsumedCapacity, true
	case *dynamodb.TransactWriteItemsOutput:
		consumed, write, transaction = res.ConsumedCapacity, true, true
	case *dynamodb.TransactGetItemsOutput:
		consumed = res.ConsumedCapacity
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return Capacity{Write: 1}
	}
	var c Capacity
	for _, cc := range consumed {
		total, index := aws.ToFloat64(cc.CapacityUnits), 0.0
		for _, gsi := range cc.GlobalSecondaryIndexes {
			index += aws.ToFloat64(gsi.CapacityUnits)
		}
		if cc.Table != nil && cc.CapacityUnits == nil {
			total = aws.ToFloat64(cc.Table.CapacityUnits) + index
		}
		if transaction {
			total, index = total/2, index/2
		}
		if write {
			c.Write, c.IndexWrite = c.Write+total, c.IndexWrite+index
		} else {
			c.Read, c.IndexRead = c.Read+total, c.IndexRead+index
		}
	}
	return c
}

func one(c *types.ConsumedCapacity) []types.ConsumedCapacity {
	if c == nil {
		return nil
	}
	return []types.ConsumedCapacity{*c}
}

// ItemSize is the size DynamoDB counts for an item: attribute names and
// values in bytes (numbers at about one byte per two digits, plus one; maps
// and lists 3 bytes plus one per element, plus their contents), as
// documented under "Item sizes and formats".
func ItemSize(it map[string]types.AttributeValue) int {
	n := 0
	for name, v := range it {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return (len(strings.TrimLeft(v.Value, "-0"))+1)/2 + 1
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for name, e := range v.Value {
			n += 1 + len(name) + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	}
	return 0
}

// S3Option installs the recorder on an S3 client (an option of
// s3.NewFromConfig or localaws.Bucket).
func (c *Calls) S3Option(o *s3.Options) { o.APIOptions = append(o.APIOptions, c.APIOption) }

// SQSOption installs the recorder on an SQS client (an option of
// sqs.NewFromConfig or localaws.SQSClient).
func (c *Calls) SQSOption(o *sqs.Options) { o.APIOptions = append(o.APIOptions, c.APIOption) }
