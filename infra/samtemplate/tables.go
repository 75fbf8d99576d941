package samtemplate

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Table is an AWS::DynamoDB::Table of the template as one deployment
// creates it, in the DynamoDB API's own types.
type Table struct {
	LogicalID            string
	AttributeDefinitions []types.AttributeDefinition
	KeySchema            []types.KeySchemaElement
	// GlobalSecondaryIndexes carry their ProvisionedThroughput in
	// provisioned mode (nil on demand).
	GlobalSecondaryIndexes []types.GlobalSecondaryIndex
	TTLAttribute           string // "" when TTL is not enabled
	BillingMode            string
	// ProvisionedThroughput is the table's in provisioned mode (nil on
	// demand).
	ProvisionedThroughput *types.ProvisionedThroughput
	PointInTimeRecovery   bool
	SSE                   bool
	// StreamViewType is the stream's view ("" when the table has none).
	StreamViewType string
}

type tableProperties struct {
	BillingMode            string
	AttributeDefinitions   []struct{ AttributeName, AttributeType string }
	KeySchema              []keyElement
	ProvisionedThroughput  *throughput
	GlobalSecondaryIndexes []struct {
		IndexName  string
		KeySchema  []keyElement
		Projection struct {
			ProjectionType   string
			NonKeyAttributes []string
		}
		ProvisionedThroughput *throughput
	}
	TimeToLiveSpecification *struct {
		AttributeName string
		Enabled       bool
	}
	PointInTimeRecoverySpecification *struct{ PointInTimeRecoveryEnabled bool }
	SSESpecification                 *struct{ SSEEnabled bool }
	StreamSpecification              *struct{ StreamViewType string }
}

type keyElement struct{ AttributeName, KeyType string }

// throughput is a ProvisionedThroughput whose units may be numbers or, from
// a parameter, numeric strings.
type throughput struct{ ReadCapacityUnits, WriteCapacityUnits units }

type units int64

func (u *units) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		b = []byte(s)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("capacity units %s: not a whole number", b)
	}
	*u = units(n)
	return nil
}

func (p *throughput) api() *types.ProvisionedThroughput {
	if p == nil {
		return nil
	}
	return &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(int64(p.ReadCapacityUnits)), WriteCapacityUnits: aws.Int64(int64(p.WriteCapacityUnits))}
}

func keySchema(in []keyElement) []types.KeySchemaElement {
	out := make([]types.KeySchemaElement, len(in))
	for i, k := range in {
		out[i] = types.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: types.KeyType(k.KeyType)}
	}
	return out
}

// Table returns the table with the given logical id as the template's
// defaults create it.
func (t *Template) Table(logicalID string) (Table, error) {
	d, err := t.Deploy(nil)
	if err != nil {
		return Table{}, err
	}
	return d.Table(logicalID)
}

// Tables returns every DynamoDB table of the template as its defaults
// create them.
func (t *Template) Tables() ([]Table, error) {
	d, err := t.Deploy(nil)
	if err != nil {
		return nil, err
	}
	return d.Tables()
}

// Table returns the table with the given logical id as the deployment
// creates it: the branch of each Fn::If it takes, parameters by their
// values.
func (d *Deployment) Table(logicalID string) (Table, error) {
	r, ok := d.tpl.Resources[logicalID]
	if !ok || r.Type != "AWS::DynamoDB::Table" {
		return Table{}, fmt.Errorf("template has no DynamoDB table %s", logicalID)
	}
	props, err := d.Properties(logicalID)
	if err != nil {
		return Table{}, err
	}
	if props == nil {
		return Table{}, fmt.Errorf("this deployment does not create table %s", logicalID)
	}
	var p tableProperties
	if err := Decode(props, &p); err != nil {
		return Table{}, fmt.Errorf("table %s: %w", logicalID, err)
	}
	tb := Table{LogicalID: logicalID, BillingMode: p.BillingMode, KeySchema: keySchema(p.KeySchema), ProvisionedThroughput: p.ProvisionedThroughput.api()}
	for _, a := range p.AttributeDefinitions {
		tb.AttributeDefinitions = append(tb.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.AttributeName), AttributeType: types.ScalarAttributeType(a.AttributeType),
		})
	}
	for _, g := range p.GlobalSecondaryIndexes {
		proj := &types.Projection{ProjectionType: types.ProjectionType(g.Projection.ProjectionType)}
		if len(g.Projection.NonKeyAttributes) > 0 {
			proj.NonKeyAttributes = g.Projection.NonKeyAttributes
		}
		tb.GlobalSecondaryIndexes = append(tb.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName: aws.String(g.IndexName), KeySchema: keySchema(g.KeySchema), Projection: proj,
			ProvisionedThroughput: g.ProvisionedThroughput.api(),
		})
	}
	if p.TimeToLiveSpecification != nil && p.TimeToLiveSpecification.Enabled {
		tb.TTLAttribute = p.TimeToLiveSpecification.AttributeName
	}
	tb.PointInTimeRecovery = p.PointInTimeRecoverySpecification != nil && p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled
	tb.SSE = p.SSESpecification != nil && p.SSESpecification.SSEEnabled
	if p.StreamSpecification != nil {
		tb.StreamViewType = p.StreamSpecification.StreamViewType
	}
	return tb, nil
}

// Tables returns every DynamoDB table the deployment creates.
func (d *Deployment) Tables() ([]Table, error) {
	var tables []Table
	for _, id := range d.tpl.ResourcesOfType("AWS::DynamoDB::Table") {
		if ok, err := d.Exists(id); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		tb, err := d.Table(id)
		if err != nil {
			return nil, err
		}
		tables = append(tables, tb)
	}
	return tables, nil
}

// CreateTableInput returns the request that creates the table under name,
// in its billing mode (on demand when it names none) with its provisioned
// throughput, which DynamoDB Local accepts and ignores.
func (tb Table) CreateTableInput(name string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:              aws.String(name),
		AttributeDefinitions:   tb.AttributeDefinitions,
		KeySchema:              tb.KeySchema,
		GlobalSecondaryIndexes: tb.GlobalSecondaryIndexes,
		BillingMode:            types.BillingModePayPerRequest,
		ProvisionedThroughput:  tb.ProvisionedThroughput,
	}
	if tb.BillingMode != "" {
		in.BillingMode = types.BillingMode(tb.BillingMode)
	}
	if tb.StreamViewType != "" {
		in.StreamSpecification = &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewType(tb.StreamViewType)}
	}
	return in
}

// IndexKeys returns the key attribute names of an index (hash, then range).
func (tb Table) IndexKeys(index string) ([]string, bool) {
	for _, g := range tb.GlobalSecondaryIndexes {
		if aws.ToString(g.IndexName) == index {
			return keyNames(g.KeySchema), true
		}
	}
	return nil, false
}

// Keys returns the table's key attribute names (hash, then range).
func (tb Table) Keys() []string { return keyNames(tb.KeySchema) }

func keyNames(ks []types.KeySchemaElement) []string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = aws.ToString(k.AttributeName)
	}
	return names
}
