package app

import (
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/shared/phases"
)

// The AWS SDK's service clients, each built on first use and once per
// function instance, from the configuration FromEnvironment read (region,
// credentials, the endpoint overrides of Options.Endpoints), with the SDK's
// standard retryer (or aws.Config's), the phase timings of every call, and
// Options.APIOptions (tests observe every request through them).

// MaxIdleConnsPerHost is how many idle connections to one host the clients
// other than DynamoDB's keep for reuse: more than a fan-out worker posts
// to the Management API at once (the SDK's default keeps 10 per host and
// closes the rest, so each post beyond 10 would open a TLS connection of
// its own).
const MaxIdleConnsPerHost = 64

// apiOptions are the middleware every client gets.
func (w *wiring) apiOptions(o []func(*middleware.Stack) error) []func(*middleware.Stack) error {
	o = append(o, phases.AWS)
	return append(o, w.opts.APIOptions...)
}

// baseEndpoint is an endpoint override for a client's BaseEndpoint: nil
// (the SDK's regional endpoint) when empty.
func baseEndpoint(url string) *string {
	if url == "" {
		return nil
	}
	return aws.String(url)
}

// httpClient is the HTTP client of every client but DynamoDB's: one
// connection pool for all of them, unless aws.Config brings its own.
func (w *wiring) httpClient() aws.HTTPClient {
	if w.aws.HTTPClient != nil {
		return w.aws.HTTPClient
	}
	if w.http == nil {
		w.http = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		})
	}
	return w.http
}

func (w *wiring) dynamoDB() *dynamodb.Client {
	if w.db == nil {
		w.db = dynamodb.NewFromConfig(w.aws, func(o *dynamodb.Options) {
			o.BaseEndpoint = baseEndpoint(w.opts.Endpoints.DynamoDB)
			o.APIOptions = w.apiOptions(o.APIOptions)
			// A single-item write that meets a transaction on the same item
			// (a heartbeat beside a binding or a sync-state report) fails
			// with TransactionConflictException, which the standard
			// retryer does not retry; AWS advises retrying it.
			base := o.Retryer
			if base == nil {
				base = retry.NewStandard()
			}
			o.Retryer = retry.AddWithErrorCodes(base, "TransactionConflictException")
		})
	}
	return w.db
}

// s3Client is the S3 client of both buckets, and s3Presigner its presign
// client. They keep the data integrity protections every AWS SDK turned on
// by default in early 2025 (request checksums and response validation
// "when supported": https://docs.aws.amazon.com/sdkref/latest/guide/feature-dataintegrity.html).
// The SDK's configuration loader is what sets those defaults, and the
// functions do without it (FromEnvironment), so they are set here unless
// aws.Config chose. A PUT then carries a CRC32 of its body that S3 checks
// before storing it: in an aws-chunked body's trailer over TLS (S3), in
// the x-amz-checksum-crc32 header over plain HTTP (the local S3 server,
// which does not decode aws-chunked bodies and need not). A GET asks for
// the stored checksum and checks the body against it.
func (w *wiring) s3Client() *s3.Client {
	if w.s3 == nil {
		w.s3 = s3.NewFromConfig(w.aws, func(o *s3.Options) {
			o.BaseEndpoint = baseEndpoint(w.opts.Endpoints.S3)
			o.UsePathStyle = w.cfg.S3UsePathStyle
			o.HTTPClient = w.httpClient()
			o.APIOptions = w.apiOptions(o.APIOptions)
			DataIntegrity(o)
		})
	}
	return w.s3
}

// DataIntegrity gives an S3 client the SDKs' default data integrity
// protections (see s3Client) where its options leave them unset.
func DataIntegrity(o *s3.Options) {
	if o.RequestChecksumCalculation == aws.RequestChecksumCalculationUnset {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
	}
	if o.ResponseChecksumValidation == aws.ResponseChecksumValidationUnset {
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
	}
}

func (w *wiring) s3Presigner() *s3.PresignClient {
	if w.s3presign == nil {
		w.s3presign = s3.NewPresignClient(w.s3Client())
	}
	return w.s3presign
}

func (w *wiring) eventBridge() *eventbridge.Client {
	if w.events == nil {
		w.events = eventbridge.NewFromConfig(w.aws, func(o *eventbridge.Options) {
			o.BaseEndpoint = baseEndpoint(w.opts.Endpoints.EventBridge)
			o.HTTPClient = w.httpClient()
			o.APIOptions = w.apiOptions(o.APIOptions)
		})
	}
	return w.events
}

func (w *wiring) secretsManager() *secretsmanager.Client {
	if w.secrets == nil {
		w.secrets = secretsmanager.NewFromConfig(w.aws, func(o *secretsmanager.Options) {
			o.BaseEndpoint = baseEndpoint(w.opts.Endpoints.SecretsManager)
			o.HTTPClient = w.httpClient()
			o.APIOptions = w.apiOptions(o.APIOptions)
		})
	}
	return w.secrets
}

func (w *wiring) lambdaClient() *lambda.Client {
	if w.lambda == nil {
		w.lambda = lambda.NewFromConfig(w.aws, func(o *lambda.Options) {
			o.BaseEndpoint = baseEndpoint(w.opts.Endpoints.Lambda)
			o.HTTPClient = w.httpClient()
			o.APIOptions = w.apiOptions(o.APIOptions)
		})
	}
	return w.lambda
}

func (w *wiring) sqsClient() *sqs.Client {
	if w.sqs == nil {
		w.sqs = sqs.NewFromConfig(w.aws, func(o *sqs.Options) {
			o.BaseEndpoint = baseEndpoint(w.opts.Endpoints.SQS)
			o.HTTPClient = w.httpClient()
			o.APIOptions = w.apiOptions(o.APIOptions)
		})
	}
	return w.sqs
}

// managementAPI is the API Gateway Management API client. It has no
// endpoint of its own: mgmtapi gives each call its stage's URL.
func (w *wiring) managementAPI() *apigatewaymanagementapi.Client {
	if w.mgmt == nil {
		w.mgmt = apigatewaymanagementapi.NewFromConfig(w.aws, func(o *apigatewaymanagementapi.Options) {
			o.HTTPClient = w.httpClient()
			o.APIOptions = w.apiOptions(o.APIOptions)
		})
	}
	return w.mgmt
}
