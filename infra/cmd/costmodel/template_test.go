package main

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

const testTemplate = `
Parameters:
  AccessLogs:
    Type: String
    Default: "on"
  LogRetentionDays:
    Type: Number
    Default: 30
  PITR:
    Type: String
    Default: "false"
  MinRead:
    Type: Number
    Default: 2
Conditions:
  LogsOn: !Equals [!Ref AccessLogs, "on"]
  PITROn: !Equals [!Ref PITR, "true"]
Resources:
  AccessLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: !Ref LogRetentionDays
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      AccessLogSettings: !If
        - LogsOn
        - DestinationArn: !GetAtt AccessLogGroup.Arn
          Format: '{"requestId":"$context.requestId","eventType":"$context.eventType","error":"$context.error.message"}'
        - !Ref AWS::NoValue
  Results:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
      GlobalSecondaryIndexes:
        - IndexName: ByEnv
          KeySchema:
            - {AttributeName: env, KeyType: HASH}
          Projection:
            ProjectionType: KEYS_ONLY
      PointInTimeRecoverySpecification:
        PointInTimeRecoveryEnabled: !If [PITROn, true, false]
  ResultsCapacity:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: infra/templates/table-capacity.yaml
      Parameters:
        TableName: !Ref Results
        ReadCapacityMin: !Ref MinRead
        WriteCapacityMin: 5
        Index1Name: ByEnv
        Index1ReadCapacityMin: 1
        Index1WriteCapacityMin: 3
  Endpoint:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: infra/templates/satellite-endpoint.yaml
`

func testEvaluator(t *testing.T) evaluator {
	t.Helper()
	tpl, err := samtemplate.Parse([]byte(testTemplate))
	if err != nil {
		t.Fatal(err)
	}
	return evaluator{tpl}
}

func TestAccessLogFollowsTheStageFormatAndItsOffBranch(t *testing.T) {
	e := testEvaluator(t)
	variants, err := accessLogVariants(e)
	if err != nil {
		t.Fatal(err)
	}
	if len(variants) != 2 || variants[0].label != "on" || variants[1].bytes != nil {
		t.Fatalf("variants %+v, want on (the default) then off", variants)
	}
	// {"requestId":"<16>","eventType":"MESSAGE","error":"-"} and a newline.
	want := float64(len(`{"requestId":"Jn2QOG3mIAMFWzg=","eventType":"MESSAGE","error":"-"}`) + 1)
	if got := variants[0].bytes[eventMessage]; got != want {
		t.Errorf("a message line: %g bytes, want %g", got, want)
	}
	if got := variants[0].bytes[eventConnect]; got != want {
		t.Errorf("a connect line: %g bytes, want %g (CONNECT is as long as MESSAGE)", got, want)
	}
	if variants[0].group.retentionDays != 30 || variants[0].compressed <= 0 || variants[0].compressed >= 1 {
		t.Errorf("log group %+v, compressed %g", variants[0].group, variants[0].compressed)
	}
	e.tpl.Parameters["AccessLogs"] = samtemplate.Parameter{Type: "String", Default: "off"}
	if variants, err = accessLogVariants(e); err != nil || variants[0].bytes != nil {
		t.Errorf("with AccessLogs off by default: %+v, %v; want off first", variants, err)
	}
}

func TestAccessLogRefusesAVariableWithoutASample(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	line, err := renderAccessLog(`$context.requestId $context.routeKey $context.messageId`, eventConnect, r)
	if err != nil || !strings.HasSuffix(line, " $connect -") || len(line) != 16+len(" $connect -") {
		t.Errorf("line %q, %v", line, err)
	}
	if _, err := renderAccessLog(`$context.somethingNew`, eventMessage, r); err == nil || !strings.Contains(err.Error(), "$context.somethingNew") {
		t.Errorf("an unknown variable: %v, want an error naming it", err)
	}
}

func TestTemplateValuesResolveThroughParameterDefaults(t *testing.T) {
	e := testEvaluator(t)
	tables, err := e.tables()
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || tables[0].pitr || tables[0].indexes[0].projection != "KEYS_ONLY" || tables[0].indexes[0].keys[0] != "env" {
		t.Errorf("tables %+v, want Results without PITR (PITR defaults to false), its KEYS_ONLY index on env", tables)
	}
	e.tpl.Parameters["PITR"] = samtemplate.Parameter{Type: "String", Default: "true"}
	if tables, _ = e.tables(); !tables[0].pitr {
		t.Errorf("PITR true by default: table %+v", tables[0])
	}
	rcu, wcu, targets, fromTemplate, err := e.minimumCapacity()
	if err != nil || rcu != 3 || wcu != 8 || targets != 4 || !fromTemplate {
		t.Errorf("minimums %g RCU, %g WCU, %d targets, %v, %v; want 3, 8, 4 from the capacity stack", rcu, wcu, targets, fromTemplate, err)
	}
}
