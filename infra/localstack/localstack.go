// Package localstack runs the whole backend on one machine, read from
// template.yaml: DynamoDB Local with the template's tables, an S3-compatible
// server with the script-package bucket, the WebSocket gateway with the
// template's routes, and the functions (in this process, or as built
// binaries under aws-lambda-rie, or behind a Lambda Invoke endpoint such as
// `sam local start-lambda`). `make dev` and the end-to-end tests use it.
package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/checkstack/satellite-backend/infra/eventsource"
	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/lambdarie"
	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/s3packages"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

// Mode says how functions run.
type Mode string

// Modes.
const (
	InProcess      Mode = "in-process"
	RIE            Mode = "aws-lambda-rie"
	LambdaEndpoint Mode = "lambda-endpoint"
)

// Options configures Start. The zero value runs everything in memory on free
// ports with functions in this process.
type Options struct {
	// Root is the repository (template.yaml, Makefile); found when empty.
	Root string
	// Addr is the gateway's listen address; 127.0.0.1:0 when empty.
	Addr string
	// DataDir keeps DynamoDB, S3, secrets and the event log across restarts;
	// empty keeps state in memory and files in a temporary directory.
	DataDir string

	// DynamoDBEndpoint reuses a running DynamoDB-compatible server instead
	// of starting DynamoDB Local; TableNames then name the tables (logical id
	// -> name), which are created if missing.
	DynamoDBEndpoint string
	TableNames       map[string]string
	// S3Endpoint, Bucket and TelemetryBucket reuse a running S3-compatible
	// server whose buckets exist.
	S3Endpoint      string
	Bucket          string
	TelemetryBucket string

	Mode Mode
	// LambdaEndpoint is the Invoke endpoint for Mode LambdaEndpoint.
	LambdaEndpoint string
	// BuildDir holds built bootstraps for Mode RIE; they are built with
	// `make build` for this machine when empty.
	BuildDir string

	IdleTimeout, MaxDuration, IntegrationTimeout time.Duration
	// Instances is how many instances each function may run at once, in
	// process or under aws-lambda-rie (DefaultInstances when zero): each
	// with its own memory, serving one event at a time, started on demand,
	// and never the one that served a connection's previous frame while
	// another is free or may start. InstanceIdle reclaims an instance idle
	// that long (DefaultInstanceIdle when zero; never when negative).
	Instances    int
	InstanceIdle time.Duration
	// MaxInFlight bounds the frames of one connection handled at once
	// (gateway.DefaultMaxInFlight when zero).
	MaxInFlight int
	// ScheduleEvery overrides the template's schedule rates (tests); with
	// functions in process, the sweep's passes are spread over it.
	ScheduleEvery time.Duration
	// Now is the clock of functions run in process (tests); time.Now when
	// nil.
	Now func() time.Time
	// Seed creates the demo satellite, its assignment and a published
	// script package.
	Seed bool
	// Log receives the stack's own plain-text log (gateway, servers).
	Log io.Writer
	// FunctionLog receives the functions' JSON logs; discarded when nil.
	FunctionLog io.Writer
	// LogLevel of the functions.
	LogLevel slog.Level
	// FunctionEnv is added to every function's environment last.
	FunctionEnv map[string]string
	// OnInvoke is passed to the gateway.
	OnInvoke func(gateway.Invocation)
	// AsyncRetryDelays are the waits before the retries of a failed
	// asynchronous invocation (Lambda's one and two minutes when nil);
	// AsyncDuplicateRate the share of asynchronous events delivered twice,
	// as Lambda now and then does (0: none).
	AsyncRetryDelays   []time.Duration
	AsyncDuplicateRate float64
	// StreamRetryDelay is the wait before a stream batch the function
	// failed is retried (a second when zero).
	StreamRetryDelay time.Duration
}

// DefaultInstances and DefaultInstanceIdle are the instance model of `make
// dev` and the end-to-end tests: four instances a function, reclaimed after
// a minute idle, so a satellite's frames meet cold and warm instances.
const (
	DefaultInstances    = 4
	DefaultInstanceIdle = time.Minute
)

// Stack is a running local backend.
type Stack struct {
	// CoreURL is what a satellite is configured with (http://127.0.0.1:port):
	// it opens <CoreURL>/api/ws/satellite, which the template's CloudFront
	// front maps onto the stage, here as on AWS.
	CoreURL       string
	URL           string // ws://127.0.0.1:port/stage
	ManagementURL string // http://127.0.0.1:port/stage (+ /@connections)
	// AdminURL is the admin HTTP API's base URL ("" when the template has
	// none); LambdaURL the Lambda Invoke API's (AWS_ENDPOINT_URL_LAMBDA).
	AdminURL  string
	LambdaURL string
	Mode      Mode
	Functions []string
	// Instances runs the functions in process and under aws-lambda-rie
	// (nil behind a Lambda endpoint).
	Instances    *gateway.Instances
	instances    int
	instanceIdle time.Duration

	DynamoDBEndpoint string
	// SQSEndpoint is the local SQS server; Queues maps each queue of the
	// template to its URL there. ResultsFeedQueueURL is the results feed
	// the core consumes.
	SQSEndpoint         string
	Queues              map[string]string
	ResultsFeedQueueURL string
	// DynamoDBPid is DynamoDB Local's process id when the stack started it.
	DynamoDBPid     int
	S3Endpoint      string
	Bucket          string
	TelemetryBucket string
	TableNames      map[string]string
	DataDir         string // "" when in memory
	SecretsFile     string
	EventsFile      string
	// SAMEnvFile is written in LambdaEndpoint mode: each function's
	// environment for `sam local start-lambda --env-vars`.
	SAMEnvFile string

	// Demo is set when Options.Seed.
	Demo *Demo

	Gateway *gateway.Gateway
	// Lambda serves Lambda's Invoke API on the gateway's port: the admin
	// function starts fan-out tasks through it, and the fan-out function
	// hands on to itself.
	Lambda    *gateway.LambdaAPI
	Registry  *dynamo.Registry
	Publisher *s3packages.Publisher
	// Packages reads the bucket as the functions do.
	Packages *s3packages.Store

	log    *slog.Logger
	stop   []func()
	failed chan error
	// functionNames maps each function to the name it is invoked by.
	functionNames map[string]string
}

// Failed delivers an error when a part the stack cannot run without stops
// on its own (DynamoDB Local exiting). The stack should then be stopped.
func (s *Stack) Failed() <-chan error { return s.failed }

// Stop shuts everything down in reverse order of starting: connections
// close (each gets its $disconnect), then functions, servers and files.
func (s *Stack) Stop() {
	for i := len(s.stop) - 1; i >= 0; i-- {
		s.stop[i]()
	}
	s.stop = nil
}

// Start brings the stack up. On error, whatever had started is stopped.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.FunctionLog == nil {
		opts.FunctionLog = io.Discard
	}
	if opts.Mode == "" {
		opts.Mode = InProcess
	}
	if opts.Root == "" {
		if opts.Root, err = samtemplate.FindRepoRoot(); err != nil {
			return nil, err
		}
	}
	s := &Stack{Mode: opts.Mode, log: slog.New(slog.NewTextHandler(opts.Log, nil)), failed: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	tpl, err := samtemplate.Load(filepath.Join(opts.Root, "template.yaml"))
	if err != nil {
		return nil, err
	}
	api, err := gateway.LoadAPI(tpl)
	if err != nil {
		return nil, err
	}
	schedules, err := gateway.LoadSchedules(tpl)
	if err != nil {
		return nil, err
	}
	httpAPI, err := gateway.LoadHTTPAPI(tpl)
	if err != nil {
		return nil, err
	}
	front, err := gateway.LoadFront(tpl, filepath.Join(opts.Root, "template.yaml"), api)
	if err != nil {
		return nil, err
	}

	files := opts.DataDir
	if files == "" {
		if files, err = os.MkdirTemp("", "checkstack-dev-"); err != nil {
			return nil, err
		}
		s.stop = append(s.stop, func() { os.RemoveAll(files) })
	} else if err := os.MkdirAll(files, 0o755); err != nil {
		return nil, err
	}
	s.DataDir = opts.DataDir
	s.SecretsFile = filepath.Join(files, "secrets.json")
	s.EventsFile = filepath.Join(files, "lifecycle-events.jsonl")

	if err := s.startStorage(ctx, opts, tpl, files); err != nil {
		return nil, err
	}

	l, err := net.Listen("tcp", orDefault(opts.Addr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	host := l.Addr().String()
	s.URL = "ws://" + host + "/" + api.Stage
	if front != nil {
		s.CoreURL = "http://" + host
	}
	s.ManagementURL = "http://" + host + "/" + api.Stage
	if httpAPI != nil {
		s.AdminURL = "http://" + host
	}

	dirs, err := FunctionDirs(opts.Root)
	if err != nil {
		l.Close()
		return nil, err
	}
	// Every function of the template runs: those behind a route or a
	// schedule, and those only invoked through the Lambda API.
	functions := uniqueSorted(tpl.ResourcesOfType("AWS::Serverless::Function"))
	s.Functions = functions
	s.LambdaURL = "http://" + host
	if s.functionNames, err = functionNames(tpl, functions, s.refs(tpl)); err != nil {
		l.Close()
		return nil, err
	}
	invoker, err := s.startFunctions(ctx, opts, tpl, functions, dirs)
	if err != nil {
		l.Close()
		return nil, err
	}
	s.Lambda = gateway.NewLambdaAPI(gateway.LambdaConfig{
		Invoker: invoker, Functions: lambdaFunctions(tpl, functions, s.functionNames),
		RetryDelays: opts.AsyncRetryDelays, DuplicateRate: opts.AsyncDuplicateRate, Log: s.log.With("component", "lambda"),
	})

	s.Gateway = gateway.New(gateway.Config{
		API: api, Front: front, HTTPAPI: httpAPI, Lambda: s.Lambda, Invoker: invoker, Schedules: schedules, ScheduleEvery: opts.ScheduleEvery,
		IdleTimeout: opts.IdleTimeout, MaxDuration: opts.MaxDuration, IntegrationTimeout: opts.IntegrationTimeout,
		MaxInFlight: opts.MaxInFlight,
		Region:      localaws.Region, Log: s.log.With("component", "gateway"), OnInvoke: opts.OnInvoke,
	})
	s.Gateway.Start(l)
	s.stop = append(s.stop, s.Gateway.Shutdown)

	if err := s.startEventSources(tpl, invoker, opts); err != nil {
		return nil, err
	}

	if opts.Seed {
		if s.Demo, err = s.seed(ctx); err != nil {
			return nil, fmt.Errorf("seed demo satellite: %w", err)
		}
	}
	return s, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func uniqueSorted(names []string) []string {
	sort.Strings(names)
	return slices.Compact(names)
}

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

// startStorage starts (or adopts) DynamoDB and S3 and creates the template's
// tables and bucket.
func (s *Stack) startStorage(ctx context.Context, opts Options, tpl *samtemplate.Template, files string) error {
	s.TableNames = opts.TableNames
	if opts.DynamoDBEndpoint != "" {
		s.DynamoDBEndpoint = opts.DynamoDBEndpoint
	} else {
		dataDir := ""
		if opts.DataDir != "" {
			dataDir = filepath.Join(opts.DataDir, "dynamodb")
		}
		ddb, err := localaws.StartDynamoDB(ctx, localaws.DynamoDBOptions{DataDir: dataDir})
		if err != nil {
			return err
		}
		stopped := make(chan struct{})
		s.stop = append(s.stop, func() { close(stopped); ddb.Stop() })
		s.DynamoDBEndpoint, s.DynamoDBPid = ddb.Endpoint, ddb.Pid()
		go func() {
			// Every request would fail from now on; say so once, loudly,
			// rather than answer "Internal server error" forever.
			select {
			case <-ddb.Exited():
				err := fmt.Errorf("DynamoDB Local (pid %d) exited unexpectedly: %v", s.DynamoDBPid, ddb.ExitError())
				s.log.Error(err.Error())
				s.failed <- err
			case <-stopped:
			}
		}()
	}
	if s.TableNames == nil {
		tables, err := tpl.Tables()
		if err != nil {
			return err
		}
		s.TableNames = map[string]string{}
		for _, t := range tables {
			s.TableNames[t.LogicalID] = "checkstack-" + t.LogicalID
		}
	}
	db := localaws.DynamoDBClient(s.DynamoDBEndpoint)
	if err := localaws.CreateTables(ctx, db, tpl, s.TableNames); err != nil {
		return err
	}
	s.Registry = dynamo.NewRegistry(db, dynamo.Tables{
		Satellites: s.TableNames["SatellitesTable"], Connections: s.TableNames["ConnectionsTable"], Results: s.TableNames["ResultsTable"],
	})

	s.S3Endpoint, s.Bucket, s.TelemetryBucket = opts.S3Endpoint, opts.Bucket, opts.TelemetryBucket
	if s.S3Endpoint == "" {
		dbFile := ""
		if opts.DataDir != "" {
			dbFile = filepath.Join(opts.DataDir, "s3.bolt")
		}
		srv, err := localaws.StartS3("127.0.0.1:0", dbFile)
		if err != nil {
			return err
		}
		s.stop = append(s.stop, srv.Stop)
		s.S3Endpoint = srv.URL
		s.Bucket = orDefault(s.Bucket, "checkstack-script-packages")
		s.TelemetryBucket = orDefault(s.TelemetryBucket, "checkstack-telemetry")
		for _, b := range []string{s.Bucket, s.TelemetryBucket} {
			if err := srv.CreateBucket(b); err != nil {
				return err
			}
		}
	}
	sqsServer, err := localaws.StartSQS("127.0.0.1:0")
	if err != nil {
		return err
	}
	s.stop = append(s.stop, sqsServer.Stop)
	s.SQSEndpoint, s.Queues = sqsServer.URL, map[string]string{}
	names := map[string]string{}
	for _, id := range tpl.ResourcesOfType("AWS::SQS::Queue") {
		names[id] = "checkstack-" + id
		s.Queues[id] = sqsServer.QueueURL(names[id])
	}
	if err := sqsServer.CreateQueues(tpl, names); err != nil {
		return err
	}
	s.ResultsFeedQueueURL = s.Queues["ResultsFeedQueue"]

	objects, err := s3objects.New(awsapi.New(localaws.AWSConfig(), awsapi.Options{}), s.Bucket, s.S3Endpoint, true)
	if err != nil {
		return err
	}
	s.Publisher, s.Packages = s3packages.NewPublisher(objects), s3packages.New(objects)
	return nil
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

// WriteSecrets replaces the local secrets file.
func (s *Stack) WriteSecrets(values map[string]string) error {
	b, err := json.MarshalIndent(values, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(s.SecretsFile, append(b, '\n'), 0o600)
}

// Describe lists how functions run, for the banner.
func (s *Stack) Describe() string {
	if s.Instances != nil {
		reclaim := "never reclaimed"
		if s.instanceIdle > 0 {
			reclaim = "reclaimed after " + s.instanceIdle.String() + " idle"
		}
		return fmt.Sprintf("%s, up to %d instances each, %s (%s)", s.Mode, s.instances, reclaim, strings.Join(s.Functions, ", "))
	}
	return fmt.Sprintf("%s (%s)", s.Mode, strings.Join(s.Functions, ", "))
}
