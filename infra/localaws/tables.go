package localaws

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// Credentials are the static credentials local clients sign with.
var Credentials = credentials.NewStaticCredentialsProvider("local", "local", "")

// Region is the region local clients use.
const Region = "us-east-1"

// AWSConfig returns an aws.Config for local servers: static credentials, the
// local region, and retries left at the SDK default.
func AWSConfig() aws.Config {
	return aws.Config{Region: Region, Credentials: Credentials}
}

// DynamoDBClient returns a client for a local DynamoDB endpoint.
func DynamoDBClient(endpoint string, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	return dynamodb.NewFromConfig(AWSConfig(), append([]func(*dynamodb.Options){func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	}}, optFns...)...)
}

// TableOptions adjusts CreateTables.
type TableOptions struct {
	// KeepExpired leaves TTL off, so DynamoDB Local never deletes an item
	// for its expiry. Its TTL process runs on the real clock; tests run the
	// functions on an injected one (often a fixed date in the past), so
	// their items could vanish mid-test. The code never relies on TTL
	// deletion (AWS may take days): it checks expiry times itself.
	KeepExpired bool
	// Parameters are template parameter values that override the
	// defaults the tables are created with: CapacityMode PROVISIONED
	// creates them with their (and their indexes') minimum capacity,
	// which DynamoDB Local checks is there and then ignores.
	Parameters map[string]string
}

// CreateTables creates every table of the template as its defaults (and
// opts.Parameters) deploy it, named by names (logical id -> table name),
// enables TTL where the template does (unless opts.KeepExpired), and waits
// until each is ACTIVE. Existing tables are left alone, so a persisted
// local stack restarts cleanly.
func CreateTables(ctx context.Context, db *dynamodb.Client, tpl *samtemplate.Template, names map[string]string, opts ...TableOptions) error {
	var o TableOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	d, err := tpl.Deploy(o.Parameters)
	if err != nil {
		return err
	}
	tables, err := d.Tables()
	if err != nil {
		return err
	}
	for _, tb := range tables {
		name, ok := names[tb.LogicalID]
		if !ok {
			return fmt.Errorf("no local name for table %s", tb.LogicalID)
		}
		_, err := db.CreateTable(ctx, tb.CreateTableInput(name))
		var inUse *types.ResourceInUseException
		switch {
		case err == nil:
		case errors.As(err, &inUse):
			// A table kept from before (PERSIST) may predate its stream.
			if err := enableStream(ctx, db, name, tb.StreamViewType); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("create table %s: %w", name, err)
		}
		if err := waitActive(ctx, db, name); err != nil {
			return err
		}
		if tb.TTLAttribute != "" && !o.KeepExpired {
			_, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
				TableName: aws.String(name),
				TimeToLiveSpecification: &types.TimeToLiveSpecification{
					AttributeName: aws.String(tb.TTLAttribute), Enabled: aws.Bool(true),
				},
			})
			if err != nil {
				return fmt.Errorf("enable TTL on %s: %w", name, err)
			}
		}
	}
	return nil
}

// enableStream turns a table's stream on when the template has one and the
// table does not.
func enableStream(ctx context.Context, db *dynamodb.Client, name, view string) error {
	if view == "" {
		return nil
	}
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("describe table %s: %w", name, err)
	}
	if out.Table.StreamSpecification != nil && aws.ToBool(out.Table.StreamSpecification.StreamEnabled) {
		return nil
	}
	_, err = db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(name),
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewType(view)}})
	if err != nil {
		return fmt.Errorf("enable the stream of %s: %w", name, err)
	}
	return waitActive(ctx, db, name)
}

// waitActive polls DescribeTable; the SDK's waiter sleeps 20 s between checks.
func waitActive(ctx context.Context, db *dynamodb.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err == nil && out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("table %s not active: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StreamsClient returns a DynamoDB Streams client for a local DynamoDB
// endpoint (DynamoDB Local serves both APIs).
func StreamsClient(endpoint string) *dynamodbstreams.Client {
	return dynamodbstreams.NewFromConfig(AWSConfig(), func(o *dynamodbstreams.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
}

// SQSClient returns an SQS client for the local SQS server.
func SQSClient(endpoint string, optFns ...func(*sqs.Options)) *sqs.Client {
	return sqs.NewFromConfig(AWSConfig(), append([]func(*sqs.Options){func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	}}, optFns...)...)
}
