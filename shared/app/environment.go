package app

import (
	"errors"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// ErrNoCredentials is why a function started outside Lambda without AWS
// credentials in its environment cannot run.
var ErrNoCredentials = errors.New("no AWS credentials in the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required (Lambda sets them from the function's role)")

// FromEnvironment reads a function's configuration from the process
// environment (os.Getenv): its Config; the AWS configuration Lambda gives
// every function (AWS_REGION, and the execution role's credentials in
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN); and
// endpoint overrides from the SDK's AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_<SERVICE> variables. Functions call it once, outside
// their handler.
//
// It deliberately does not load the SDK's shared configuration and
// credential chain (profiles, SSO, IMDS, ...): a function never needs them,
// and linking them adds about a megabyte to every binary.
func FromEnvironment() (Config, aws.Config, Options, error) {
	return fromEnvironment(os.Getenv)
}

func fromEnvironment(getenv func(string) string) (Config, aws.Config, Options, error) {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return cfg, aws.Config{}, Options{}, err
	}
	id, secret := strings.TrimSpace(getenv("AWS_ACCESS_KEY_ID")), strings.TrimSpace(getenv("AWS_SECRET_ACCESS_KEY"))
	if id == "" || secret == "" {
		return cfg, aws.Config{}, Options{}, ErrNoCredentials
	}
	region := cfg.Region
	if region == "" {
		region = strings.TrimSpace(getenv("AWS_DEFAULT_REGION"))
	}
	awsCfg := aws.Config{
		Region:      region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN"))),
	}
	endpoint := func(service string) string {
		if strings.EqualFold(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
			return ""
		}
		if v := strings.TrimSpace(getenv("AWS_ENDPOINT_URL_" + service)); v != "" {
			return v
		}
		return strings.TrimSpace(getenv("AWS_ENDPOINT_URL"))
	}
	opts := Options{Endpoints: Endpoints{
		DynamoDB:       endpoint("DYNAMODB"),
		S3:             endpoint("S3"),
		SecretsManager: endpoint("SECRETS_MANAGER"),
		EventBridge:    endpoint("EVENTBRIDGE"),
		Lambda:         endpoint("LAMBDA"),
		SQS:            endpoint("SQS"),
	}}
	return cfg, awsCfg, opts, nil
}
