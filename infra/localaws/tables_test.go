package localaws_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/testenv"
)

// TestTablesFromTheTemplateInEitherCapacityMode creates the template's
// tables in DynamoDB Local as `make dev` does (the defaults: on demand)
// and in provisioned capacity mode, where DynamoDB refuses a table or an
// index without a ProvisionedThroughput, and reads back what was created.
func TestTablesFromTheTemplateInEitherCapacityMode(t *testing.T) {
	testenv.NeedsServers(t)
	ctx := context.Background()
	ddb, err := localaws.StartDynamoDB(ctx, localaws.DynamoDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Stop()
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	db := localaws.DynamoDBClient(ddb.Endpoint)
	for _, mode := range []string{"", "PROVISIONED"} {
		var params map[string]string
		if mode != "" {
			params = map[string]string{"CapacityMode": mode}
		}
		d, err := tpl.Deploy(params)
		if err != nil {
			t.Fatal(err)
		}
		tables, err := d.Tables()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]string{}
		for _, tb := range tables {
			names[tb.LogicalID] = "capacity" + mode + "-" + tb.LogicalID
		}
		if err := localaws.CreateTables(ctx, db, tpl, names, localaws.TableOptions{Parameters: params}); err != nil {
			t.Fatalf("mode %q: %v", mode, err)
		}
		for _, tb := range tables {
			out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(names[tb.LogicalID])})
			if err != nil {
				t.Fatal(err)
			}
			got := out.Table
			if mode == "" {
				if got.BillingModeSummary == nil || got.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
					t.Errorf("%s: billing %+v, want on demand", tb.LogicalID, got.BillingModeSummary)
				}
				continue
			}
			want := tb.ProvisionedThroughput
			if aws.ToInt64(got.ProvisionedThroughput.ReadCapacityUnits) != aws.ToInt64(want.ReadCapacityUnits) ||
				aws.ToInt64(got.ProvisionedThroughput.WriteCapacityUnits) != aws.ToInt64(want.WriteCapacityUnits) {
				t.Errorf("%s: capacity %d/%d, want the template's %d/%d", tb.LogicalID,
					aws.ToInt64(got.ProvisionedThroughput.ReadCapacityUnits), aws.ToInt64(got.ProvisionedThroughput.WriteCapacityUnits),
					aws.ToInt64(want.ReadCapacityUnits), aws.ToInt64(want.WriteCapacityUnits))
			}
			if len(got.GlobalSecondaryIndexes) != len(tb.GlobalSecondaryIndexes) {
				t.Errorf("%s: %d indexes, want %d", tb.LogicalID, len(got.GlobalSecondaryIndexes), len(tb.GlobalSecondaryIndexes))
			}
			for _, g := range got.GlobalSecondaryIndexes {
				if g.ProvisionedThroughput == nil || aws.ToInt64(g.ProvisionedThroughput.WriteCapacityUnits) < 1 {
					t.Errorf("%s index %s: capacity %+v", tb.LogicalID, aws.ToString(g.IndexName), g.ProvisionedThroughput)
				}
			}
		}
	}
}
