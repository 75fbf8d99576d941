package main

import "math"

// Prices: AWS list prices in us-east-1, without free tiers. Each says
// where it was read and when; "as briefed" marks a figure whose page's
// stored copy (read 2026-12-03) did not show the price table itself.
// Update them here; the tables in docs/COST.md are this program's output.
const pricesAsOf = "AWS list prices, us-east-1, read 2026-12-03 (sources beside each constant in infra/cmd/costmodel/prices.go); free tiers left out"

const (
	// API Gateway WebSocket APIs: messages metered in 32 KB increments
	// (aws.amazon.com/api-gateway/pricing, read 2026-12-03); $1.00 a
	// million for the first billion a month, $0.80 above (the first tier
	// also at awsforengineers.com/blog/aws-api-gateway-pricing-explained,
	// 2025-05-19; the second as briefed); connection minutes $0.25 a
	// million (repost.aws, quoting the pricing page; read 2026-12-03).
	apiGatewayMessageKB            = 32
	apiGatewayPerMillionMessages   = 1.00
	apiGatewayPerMillionOver1B     = 0.80
	apiGatewayPerMillionConnMinute = 0.25

	// Lambda, arm64: $0.20 a million requests; $0.0000133334 a GB-second
	// for the first 7.5 billion GB-s a month, 10 % less to 18.75 billion,
	// 20 % less above (aws.amazon.com/blogs/compute/introducing-tiered-
	// pricing-for-aws-lambda and cloudchipr.com/blog/aws-lambda-pricing,
	// read 2026-12-03).
	lambdaPerMillionRequests = 0.20
	lambdaPerGBSecondArm     = 0.0000133334
	// At 1,769 MB a function has the equivalent of one vCPU; below it, CPU
	// in proportion to memory (docs.aws.amazon.com/lambda/latest/dg/
	// configuration-memory.html, read 2026-12-03).
	lambdaMBPerVCPU = 1769

	// DynamoDB on demand, after the November 2024 reduction: $0.625 a
	// million write request units, $0.125 a million read request units
	// (airbyte.com/data-engineering-resources/dynamodb-pricing, 2025-07-21,
	// read 2026-12-03).
	dynamoPerMillionWRU = 0.625
	dynamoPerMillionRRU = 0.125
	// DynamoDB provisioned: $0.00065 a WCU-hour, $0.00013 an RCU-hour
	// (aws.amazon.com/dynamodb/pricing/provisioned, read 2026-12-03: its
	// stored copy gives the unit definitions, the prices as briefed). One
	// RCU is one strongly consistent read of 4 KB a second, or two
	// eventually consistent ones: a read request unit a second.
	dynamoPerWCUHour = 0.00065
	dynamoPerRCUHour = 0.00013
	// Auto scaling's default target utilization (aws.amazon.com/dynamodb/
	// pricing, read 2026-12-03: "target utilization set at 70 percent").
	dynamoTargetUtilization = 0.70
	// Each target-tracking policy has Application Auto Scaling create and
	// manage its CloudWatch alarms, one to scale out and one to scale in
	// (docs.aws.amazon.com/autoscaling/application/userguide/
	// application-auto-scaling-target-tracking.html, read 2026-12-03).
	alarmsPerScalingPolicy = 2
	// Storage $0.25 a GB-month (aws.amazon.com/dynamodb/pricing, read
	// 2026-12-03); point-in-time recovery $0.20 a GB-month of the table's
	// size (as briefed). DynamoDB's GB is 2^30 bytes (docs.aws.amazon.com/
	// amazondynamodb/latest/developerguide/Constraints.html); every item
	// takes 100 bytes more for indexing (.../CapacityUnitCalculations.html),
	// and so does every index entry (as briefed; AWS's GSI storage page was
	// not in the stored copies).
	dynamoPerGBMonth     = 0.25
	dynamoPITRPerGBMonth = 0.20
	dynamoItemOverhead   = 100
	// A partition holds about 10 GB and serves 1,000 WCU or 3,000 RCU; a
	// stream has a shard per partition (docs/COST.md's rule, as briefed).
	dynamoPartitionGiB = 10
	dynamoPartitionWCU = 1000
	dynamoPartitionRCU = 3000

	// S3 Standard: $0.023 a GB-month (cloudburn.io/blog/amazon-s3-pricing,
	// 2026-03-13), PUT $0.005 a thousand (as briefed), GET and HEAD
	// $0.0004 a thousand (aws.amazon.com/s3/pricing, 2025).
	s3PerGBMonth     = 0.023
	s3PerThousandPUT = 0.005
	s3PerThousandGET = 0.0004

	// CloudWatch Logs, standard class: $0.50 a GB ingested, $0.03 a
	// GB-month stored, archived compressed (c3x.dev/blog/cloudwatch-logs-
	// cost-optimization, June 2026; hykell.com/knowledge-base/aws-
	// cloudwatch-logs-pricing; read 2026-12-03); the infrequent access
	// class $0.25 a GB ingested. Lambda's own logs are vended logs since
	// May 2025: $0.50 a GB for the first 10 TB, $0.25 the next 20, $0.10
	// the next 20, $0.05 above (duckbillgroup.com, read 2026-12-03).
	logsPerGBIngested   = 0.50
	logsIAPerGBIngested = 0.25
	logsPerGBMonth      = 0.03

	eventBridgePerMillionEvents = 1.00 // aws.amazon.com/eventbridge/pricing, 2025
	metricPerMonth              = 0.30 // custom metric (EMF), first 10,000 (aws.amazon.com/cloudwatch/pricing, 2025)
	alarmPerMonth               = 0.10 // standard alarm (aws.amazon.com/cloudwatch/pricing, 2025)
	dashboardPerMonth           = 3.00
	kmsKeyPerMonth              = 1.00 // customer managed key (the alarm topic's); its requests are a few per alarm
	// SQS standard queue, $0.40 a million requests to 100 billion a month
	// (each 64 KiB of a request's payload is one request;
	// aws.amazon.com/sqs/pricing, 2025); lower tiers above 100 billion,
	// which these fleets do not reach (the model says so if one does).
	sqsPerMillionRequests = 0.40
	sqsFirstTier          = 100e9
	// CloudFront, North America and Europe (aws.amazon.com/cloudfront/pricing,
	// read 2026-12): a WebSocket upgrade is one HTTPS request; bytes to
	// the viewer are data transfer out, bytes the viewer sends go to the
	// origin at the regional data-transfer-to-origin price.
	cloudFrontPerTenThousandHTTPS = 0.0100
	cloudFrontPerGBToInternet     = 0.085
	cloudFrontPerGBToOrigin       = 0.020
	cloudFrontPerMillionFunctions = 0.10
)

// tier is a price that applies to usage up to a volume (math.Inf(1) for
// the last tier).
type tier struct{ upTo, price float64 }

// tiered is what usage costs under tiers (each price per unit of usage).
func tiered(usage float64, tiers []tier) float64 {
	cost, below := 0.0, 0.0
	for _, t := range tiers {
		if usage <= below {
			break
		}
		cost += (math.Min(usage, t.upTo) - below) * t.price
		below = t.upTo
	}
	return cost
}

var (
	apiGatewayMessageTiers = []tier{{1e9, apiGatewayPerMillionMessages / 1e6}, {math.Inf(1), apiGatewayPerMillionOver1B / 1e6}}
	lambdaGBSecondTiers    = []tier{{7.5e9, lambdaPerGBSecondArm}, {18.75e9, lambdaPerGBSecondArm * 0.9}, {math.Inf(1), lambdaPerGBSecondArm * 0.8}}
	lambdaLogTiers         = []tier{{10e3, 0.50}, {30e3, 0.25}, {50e3, 0.10}, {math.Inf(1), 0.05}} // per GB, by GB
)

// capacityMode prices DynamoDB's read and write units.
type capacityMode struct {
	name                         string
	perMillionWRU, perMillionRRU float64
}

var onDemand = capacityMode{"on-demand", dynamoPerMillionWRU, dynamoPerMillionRRU}

// provisioned prices a million units at hourly prices under target
// tracking at utilization: a unit of capacity kept an hour serves 3,600
// units at full use, 3,600 × utilization at the target. It assumes a
// steady load: capacity follows it, never ahead of it.
func provisioned(perWCUHour, perRCUHour, utilization float64) capacityMode {
	hours := 1e6 / 3600 / utilization // capacity-hours a million units take
	return capacityMode{"provisioned", hours * perWCUHour, hours * perRCUHour}
}

// breakEvenUtilization is the use of provisioned capacity below which on
// demand costs less.
func breakEvenUtilization(perCapacityHour, perMillionOnDemand float64) float64 {
	return 1e6 / 3600 * perCapacityHour / perMillionOnDemand
}
