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

// CreateTables creates every table of the template, named by names (logical
// id -> table name), enables TTL where the template does, and waits until
// each is ACTIVE. Existing tables are left alone, so a persisted local stack
// restarts cleanly.
func CreateTables(ctx context.Context, db *dynamodb.Client, tpl *samtemplate.Template, names map[string]string) error {
	tables, err := tpl.Tables()
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
			continue
		default:
			return fmt.Errorf("create table %s: %w", name, err)
		}
		if err := waitActive(ctx, db, name); err != nil {
			return err
		}
		if tb.TTLAttribute != "" {
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
