package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/shared/admin"
	"github.com/checkstack/satellite-backend/shared/awssecrets"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/endpoint"
	"github.com/checkstack/satellite-backend/shared/eventbus"
	"github.com/checkstack/satellite-backend/shared/filesecrets"
	"github.com/checkstack/satellite-backend/shared/lifecyclelog"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/mgmtapi"
	"github.com/checkstack/satellite-backend/shared/push"
	"github.com/checkstack/satellite-backend/shared/s3packages"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/sweep"
	"github.com/checkstack/satellite-backend/shared/token"
	"github.com/checkstack/satellite-backend/shared/wshandler"
)

// Options adjusts what New builds. The zero value is production.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log receives structured logs; JSON on stdout when nil.
	Log *slog.Logger
	// Secrets, when set, replaces the Secrets Manager source (the local stack
	// uses a file).
	Secrets satellite.SecretSource
	// Lifecycle, when set, replaces the EventBridge or log sink.
	Lifecycle satellite.LifecycleSink
	// Tokens, when set, replaces bcrypt verification (tests count calls).
	Tokens satellite.TokenVerifier
	// APIOptions are added to every SDK client (tests count requests).
	APIOptions []func(*middleware.Stack) error
	// Endpoints overrides service endpoints (the local stack and tests). A
	// deployed function leaves them empty; a binary run under the Lambda
	// emulator can use the SDK's AWS_ENDPOINT_URL_<SERVICE> variables instead.
	Endpoints Endpoints
	// MetricsOutput receives the EMF metric lines; stdout when nil (where
	// Lambda sends everything to CloudWatch Logs).
	MetricsOutput io.Writer
}

// Endpoints are base URLs of AWS services or their local stand-ins.
type Endpoints struct {
	DynamoDB, S3, SecretsManager, EventBridge string
}

func endpointOf(url string) *string {
	if url == "" {
		return nil
	}
	return &url
}

// App is the assembled backend.
type App struct {
	Config    Config
	Log       *slog.Logger
	Metrics   *metrics.Recorder
	Registry  *dynamo.Registry
	Sender    *push.Sender
	Endpoint  *endpoint.Service
	WebSocket *wshandler.Handler
	// Push is nil unless MANAGEMENT_ENDPOINT is configured.
	Push *push.Service
	// Sweep is nil unless MANAGEMENT_ENDPOINT is configured.
	Sweep *sweep.Sweeper
	// Admin is nil unless MANAGEMENT_ENDPOINT is configured.
	Admin *admin.Handler

	closers []io.Closer
}

// Close releases what the App opened (the lifecycle log file). A Lambda
// function never needs it; the local stack calls it on shutdown.
func (a *App) Close() error {
	var first error
	for _, c := range a.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ErrNoManagementEndpoint is why a function that pushes outside a WebSocket
// event cannot start.
var ErrNoManagementEndpoint = errors.New("MANAGEMENT_ENDPOINT is required: this function reaches connections outside a WebSocket event")

// NewLogger returns the JSON logger every function uses.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// FromEnvironment builds the App from the process environment and the default
// AWS credential chain. Functions call it once, outside their handler.
func FromEnvironment(ctx context.Context) (*App, error) {
	cfg, err := LoadConfig(os.Getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	return New(cfg, awsCfg, Options{})
}

// New builds the App from a Config and an AWS configuration.
func New(cfg Config, awsCfg aws.Config, opts Options) (*App, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = NewLogger(os.Stdout, cfg.LogLevel)
	}
	if opts.Tokens == nil {
		opts.Tokens = token.Bcrypt{}
	}
	if opts.MetricsOutput == nil {
		opts.MetricsOutput = os.Stdout
	}
	recorder := metrics.New(opts.MetricsOutput, cfg.StackName, cfg.MetricsFlushInterval, opts.Now)
	if cfg.Region == "" {
		cfg.Region = awsCfg.Region
	}
	withAPIOptions := func(existing *[]func(*middleware.Stack) error) {
		*existing = append(*existing, opts.APIOptions...)
	}

	db := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		if ep := endpointOf(opts.Endpoints.DynamoDB); ep != nil {
			o.BaseEndpoint = ep
		}
		withAPIOptions(&o.APIOptions)
	})
	registry := dynamo.NewRegistry(db, dynamo.Tables{
		Satellites: cfg.SatellitesTable, Connections: cfg.ConnectionsTable, Results: cfg.ResultsTable,
	})
	management := apigatewaymanagementapi.NewFromConfig(awsCfg, func(o *apigatewaymanagementapi.Options) {
		withAPIOptions(&o.APIOptions)
	})

	var closers []io.Closer
	lifecycle := opts.Lifecycle
	if lifecycle == nil {
		switch {
		case cfg.EventBusName != "":
			lifecycle = eventbus.New(eventbridge.NewFromConfig(awsCfg, func(o *eventbridge.Options) {
				if ep := endpointOf(opts.Endpoints.EventBridge); ep != nil {
					o.BaseEndpoint = ep
				}
				withAPIOptions(&o.APIOptions)
			}), cfg.EventBusName)
		case cfg.LifecycleLogFile != "":
			f, err := os.OpenFile(cfg.LifecycleLogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return nil, fmt.Errorf("LIFECYCLE_LOG_FILE: %w", err)
			}
			closers = append(closers, f)
			lifecycle = lifecyclelog.New(opts.Log, f)
		default:
			lifecycle = lifecyclelog.New(opts.Log, nil)
		}
	}
	sender := &push.Sender{
		Registry:    registry,
		Connections: mgmtapi.New(management),
		Lifecycle:   metrics.EdgeSink{Sink: lifecycle, Metrics: recorder},
		Log:         opts.Log,
		Now:         opts.Now,
		Metrics:     recorder,
	}

	svc := &endpoint.Service{
		Registry:        registry,
		Sender:          sender,
		Tokens:          opts.Tokens,
		Now:             opts.Now,
		Log:             opts.Log,
		ResultRetention: cfg.ResultRetention,
		BlobURLTTL:      cfg.BlobURLTTL,
		BindingCacheTTL: cfg.BindingCacheTTL,
		Metrics:         recorder,
	}
	var s3Client *s3.Client
	if cfg.ScriptPackagesBucket != "" {
		s3Client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
			o.UsePathStyle = cfg.S3UsePathStyle
			if ep := endpointOf(opts.Endpoints.S3); ep != nil {
				o.BaseEndpoint = ep
			}
			withAPIOptions(&o.APIOptions)
		})
		svc.Packages = s3packages.New(s3Client, s3.NewPresignClient(s3Client), cfg.ScriptPackagesBucket)
	}
	switch {
	case opts.Secrets != nil:
		svc.Secrets = opts.Secrets
	case cfg.SecretsFile != "":
		svc.Secrets = filesecrets.New(cfg.SecretsFile)
	case cfg.SecretsPrefix != "":
		svc.Secrets = awssecrets.New(secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) {
			if ep := endpointOf(opts.Endpoints.SecretsManager); ep != nil {
				o.BaseEndpoint = ep
			}
			withAPIOptions(&o.APIOptions)
		}), cfg.SecretsPrefix)
	}

	a := &App{
		Config:    cfg,
		Log:       opts.Log,
		Metrics:   recorder,
		Registry:  registry,
		Sender:    sender,
		Endpoint:  svc,
		WebSocket: &wshandler.Handler{Service: svc, ManagementEndpoint: cfg.ManagementEndpoint, Region: cfg.Region},
		closers:   closers,
	}
	if cfg.ManagementEndpoint != "" {
		a.Push = &push.Service{
			Sender:             sender,
			Endpoint:           cfg.ManagementEndpoint,
			PackagesConfigured: cfg.ScriptPackagesBucket != "",
			Concurrency:        cfg.PushConcurrency,
		}
		adminSvc := &admin.Service{Registry: registry, Push: a.Push, Now: opts.Now, Log: opts.Log}
		if svc.Packages != nil {
			adminSvc.Packages = svc.Packages
			adminSvc.Publisher = s3packages.NewPublisher(s3Client, cfg.ScriptPackagesBucket)
		}
		a.Admin = &admin.Handler{Service: adminSvc, Log: opts.Log, Metrics: recorder}
		a.Sweep = &sweep.Sweeper{
			Store: registry, Sender: sender, Endpoint: cfg.ManagementEndpoint, Now: opts.Now, Log: opts.Log,
			UnauthenticatedDeadline: cfg.UnauthenticatedDeadline, RepublishAfter: cfg.RepublishAfter,
			Metrics: recorder,
		}
	}
	return a, nil
}
