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
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/s3packages"
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
