package localstack

// Function start-up: the names functions are invoked by, their
// environment, how each mode runs them, and the event sources that invoke
// them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/checkstack/satellite-backend/infra/eventsource"
	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/lambdarie"
	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

// functionNames maps each function to the name it is invoked by: its
// resolved FunctionName, else its logical id.
func functionNames(tpl *samtemplate.Template, functions []string, refs map[string]string) (map[string]string, error) {
	names := map[string]string{}
	for _, fn := range functions {
		name, err := tpl.FunctionName(fn, refs)
		if err != nil {
			return nil, err
		}
		names[fn] = name
	}
	return names, nil
}

// lambdaFunctions is how the Lambda API runs each function, under its name
// and its logical id: the template's Timeout and asynchronous retries.
func lambdaFunctions(tpl *samtemplate.Template, functions []string, names map[string]string) map[string]gateway.LambdaFunction {
	out := map[string]gateway.LambdaFunction{}
	for _, fn := range functions {
		retries, age := tpl.AsyncRetries(fn)
		f := gateway.LambdaFunction{LogicalID: fn, Timeout: tpl.Timeout(fn), Retries: retries, MaxEventAge: age}
		out[fn], out[names[fn]] = f, f
	}
	return out
}

// startEventSources runs the template's DynamoDB stream event source
// mappings (the results feed) against DynamoDB Local's streams.
func (s *Stack) startEventSources(tpl *samtemplate.Template, invoker gateway.Invoker, opts Options) error {
	mappings, err := eventsource.LoadMappings(tpl)
	if err != nil || len(mappings) == 0 {
		return err
	}
	sqsClient := localaws.SQSClient(s.SQSEndpoint)
	runner, err := eventsource.Start(eventsource.Config{
		Mappings: mappings, Tables: s.TableNames, Queues: s.Queues,
		DynamoDB: localaws.DynamoDBClient(s.DynamoDBEndpoint), Streams: localaws.StreamsClient(s.DynamoDBEndpoint),
		Invoker: invoker, Log: s.log.With("component", "event-source"),
		Timeout: tpl.Timeout, RetryDelay: opts.StreamRetryDelay,
		Send: func(ctx context.Context, queueURL, body string) error {
			_, err := sqsClient.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(body)})
			return err
		},
	})
	if err != nil {
		return err
	}
	s.stop = append(s.stop, runner.Stop)
	return nil
}

// refs are the local values of the template's pseudo parameters,
// resources, and parameters that name AWS-only features.
func (s *Stack) refs(tpl *samtemplate.Template) map[string]string {
	refs := map[string]string{
		"AWS::Region":          localaws.Region,
		"AWS::AccountId":       "123456789012",
		"AWS::Partition":       "aws",
		"AWS::URLSuffix":       "amazonaws.com",
		"AWS::StackName":       "checkstack-local",
		"WebSocketApi":         "local",
		"ScriptPackagesBucket": s.Bucket,
		"TelemetryBucket":      s.TelemetryBucket,
		// Run secrets come from a file and events go to a file locally.
		"SecretsPrefix": "",
		"EventBusName":  "",
	}
	for logical, name := range s.TableNames {
		refs[logical] = name
	}
	for logical, name := range s.functionNames {
		refs[logical] = name
	}
	// A queue's !Ref is its URL.
	for logical, url := range s.Queues {
		refs[logical] = url
	}
	return refs
}

// environment is a function's environment from the template, with local
// values for resources, parameters that name AWS-only features, and
// endpoints.
func (s *Stack) environment(tpl *samtemplate.Template, function string, level slog.Level, extra map[string]string) (map[string]string, error) {
	env, err := tpl.ResolveEnvironment(function, s.refs(tpl))
	if err != nil {
		return nil, err
	}
	for k, v := range map[string]string{
		"AWS_REGION":          localaws.Region,
		"MANAGEMENT_ENDPOINT": s.ManagementURL,
		"S3_USE_PATH_STYLE":   "true",
		"SECRETS_FILE":        s.SecretsFile,
		"LIFECYCLE_LOG_FILE":  s.EventsFile,
		"LOG_LEVEL":           level.String(),
		// Show every invocation's metrics at once rather than once a minute.
		"METRICS_PERIOD_SECONDS": "0",
	} {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env, nil
}

func (s *Stack) startFunctions(ctx context.Context, opts Options, tpl *samtemplate.Template, functions []string, dirs map[string]string) (gateway.Invoker, error) {
	envs := map[string]map[string]string{}
	for _, fn := range functions {
		env, err := s.environment(tpl, fn, opts.LogLevel, opts.FunctionEnv)
		if err != nil {
			return nil, err
		}
		envs[fn] = env
	}
	if opts.Instances == 0 {
		opts.Instances = DefaultInstances
	}
	switch {
	case opts.InstanceIdle == 0:
		opts.InstanceIdle = DefaultInstanceIdle
	case opts.InstanceIdle < 0:
		opts.InstanceIdle = 0
	}
	starts := map[string]gateway.StartInstance{}
	switch opts.Mode {
	case InProcess:
		for _, fn := range functions {
			handler, ok := handlers[dirs[fn]]
			if !ok {
				return nil, fmt.Errorf("function %s (functions/%s) has no in-process handler", fn, dirs[fn])
			}
			env := envs[fn]
			cfg, err := app.LoadConfig(func(k string) string { return env[k] })
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			start := func(_ context.Context, id string) (gateway.Instance, error) {
				// The function's own constructor, once per instance, as
				// its main.go runs once per Lambda instance: own clients,
				// caches and maps.
				h, err := handler(cfg, localaws.AWSConfig(), app.Options{
					Log:           app.NewLogger(opts.FunctionLog, cfg.LogLevel).With("function", fn, "instance", id),
					Endpoints:     app.Endpoints{DynamoDB: s.DynamoDBEndpoint, S3: s.S3Endpoint, Lambda: s.LambdaURL, SQS: s.SQSEndpoint},
					MetricsOutput: opts.FunctionLog,
					Now:           opts.Now,
					// Schedules sped up: the sweep's passes too, so an
					// invocation still ends by the next.
					SweepPassEvery: opts.ScheduleEvery / sweep.Passes,
				})
				if err != nil {
					return nil, err
				}
				return gateway.NewInProcessInstance(fn, h), nil
			}
			// A constructor that fails fails the stack at start, not at
			// the first event.
			first, err := start(ctx, fn+"#check")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			first.Close()
			starts[fn] = start
		}
	case RIE:
		buildDir := opts.BuildDir
		if buildDir == "" {
			var err error
			if buildDir, err = build(opts.Root); err != nil {
				return nil, err
			}
			s.stop = append(s.stop, func() { os.RemoveAll(buildDir) })
		}
		for _, fn := range functions {
			env := envs[fn]
			for k, v := range map[string]string{
				"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
				"AWS_ENDPOINT_URL_DYNAMODB": s.DynamoDBEndpoint, "AWS_ENDPOINT_URL_S3": s.S3Endpoint,
				"AWS_ENDPOINT_URL_LAMBDA": s.LambdaURL, "AWS_ENDPOINT_URL_SQS": s.SQSEndpoint,
			} {
				env[k] = v
			}
			bootstrap := filepath.Join(buildDir, dirs[fn], "bootstrap")
			if _, err := os.Stat(bootstrap); err != nil {
				return nil, fmt.Errorf("%s: %w", fn, err)
			}
			starts[fn] = func(ctx context.Context, _ string) (gateway.Instance, error) {
				// One aws-lambda-rie process per instance. It is started
				// outside the event's deadline, as Lambda's init phase is.
				e, err := lambdarie.Start(context.WithoutCancel(ctx), lambdarie.Options{
					Bootstrap: bootstrap, Env: env, Timeout: tpl.Timeout(fn), Output: opts.FunctionLog,
				})
				if err != nil {
					return nil, err
				}
				return gateway.NewRIEInstance(fn, e), nil
			}
		}
	}
	if opts.Mode == InProcess || opts.Mode == RIE {
		s.instances, s.instanceIdle = opts.Instances, opts.InstanceIdle
		s.Instances = gateway.NewInstances(gateway.InstanceConfig{
			Max: opts.Instances, IdleTimeout: opts.InstanceIdle, Log: s.log.With("component", "instances"),
		}, starts)
		s.stop = append(s.stop, s.Instances.Stop)
		return s.Instances, nil
	}
	switch opts.Mode {
	case LambdaEndpoint:
		if opts.LambdaEndpoint == "" {
			return nil, errors.New("lambda-endpoint mode needs the endpoint URL")
		}
		for _, fn := range functions {
			for k, v := range map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": s.DynamoDBEndpoint, "AWS_ENDPOINT_URL_S3": s.S3Endpoint, "AWS_ENDPOINT_URL_LAMBDA": s.LambdaURL, "AWS_ENDPOINT_URL_SQS": s.SQSEndpoint} {
				envs[fn][k] = v
			}
		}
		b, err := json.MarshalIndent(envs, "", "  ")
		if err != nil {
			return nil, err
		}
		s.SAMEnvFile = filepath.Join(filepath.Dir(s.SecretsFile), "sam-env.json")
		if err := os.WriteFile(s.SAMEnvFile, append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
		return &gateway.LambdaEndpoint{URL: opts.LambdaEndpoint}, nil
	}
	return nil, fmt.Errorf("unknown mode %q", opts.Mode)
}

// build runs `make build` for this machine into a temporary directory.
func build(root string) (string, error) { return lambdarie.Build(root, runtime.GOARCH) }
