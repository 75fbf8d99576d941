package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/shared/admin"
	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/awssecrets"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/endpoint"
	"github.com/checkstack/satellite-backend/shared/eventbus"
	"github.com/checkstack/satellite-backend/shared/fanout"
	"github.com/checkstack/satellite-backend/shared/feedhandler"
	"github.com/checkstack/satellite-backend/shared/filesecrets"
	"github.com/checkstack/satellite-backend/shared/lambdainvoke"
	"github.com/checkstack/satellite-backend/shared/lifecyclelog"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/mgmtapi"
	"github.com/checkstack/satellite-backend/shared/packagecache"
	"github.com/checkstack/satellite-backend/shared/phases"
	"github.com/checkstack/satellite-backend/shared/push"
	"github.com/checkstack/satellite-backend/shared/resultsfeed"
	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/s3packages"
	"github.com/checkstack/satellite-backend/shared/s3telemetry"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/secretcache"
	"github.com/checkstack/satellite-backend/shared/sqsqueue"
	"github.com/checkstack/satellite-backend/shared/sweep"
	"github.com/checkstack/satellite-backend/shared/token"
	"github.com/checkstack/satellite-backend/shared/wshandler"
)

// Options adjusts what the constructors build. The zero value is production.
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
	// SlowFrame overrides endpoint.SlowFrame, the time after which a frame's
	// phases are logged at WARN (tests).
	SlowFrame time.Duration
	// APIOptions are added to the DynamoDB client (tests count requests).
	APIOptions []func(*middleware.Stack) error
	// Observe sees every request to the other AWS APIs (tests count them).
	Observe awsapi.Observer
	// Endpoints overrides service endpoints (the local stack, tests, and
	// the AWS_ENDPOINT_URL_<SERVICE> variables of a built function).
	Endpoints Endpoints
	// MetricsOutput receives the EMF metric lines; stdout when nil (where
	// Lambda sends everything to CloudWatch Logs).
	MetricsOutput io.Writer
	// PushSettle is the admin API's wait before a change's second push
	// (admin.Service.PushSettle); admin.DefaultPushSettle when zero.
	PushSettle time.Duration
	// SweepPassEvery spaces the sweep's passes within one invocation
	// (sweep.Sweeper.PassEvery); sweep.PassEvery when zero. The local
	// stack shortens it with its schedules.
	SweepPassEvery time.Duration
}

// Endpoints are base URLs of AWS services or their local stand-ins.
type Endpoints struct {
	DynamoDB, S3, SecretsManager, EventBridge, Lambda, SQS string
}

// ErrNoManagementURL is why a function that pushes outside a WebSocket
// event cannot start.
var ErrNoManagementURL = errors.New("MANAGEMENT_ENDPOINT is required: this function reaches connections outside a WebSocket event")

// ErrNoFeedQueue is why the feed function cannot start.
var ErrNoFeedQueue = errors.New("RESULTS_FEED_QUEUE_URL is required: this function sends stored results to the results feed")

// ErrNoFanout is why a function that starts or runs fan-out jobs cannot
// start.
var ErrNoFanout = errors.New("JOBS_TABLE and FANOUT_FUNCTION are required: this function starts or runs fan-out jobs")

// NewLogger returns the JSON logger every function uses.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// wiring builds the parts of the backend on demand, each once. Every
// function's constructor asks only for the parts it uses, so the linker
// leaves the rest (and the AWS clients behind them) out of its binary.
type wiring struct {
	cfg  Config
	aws  aws.Config
	opts Options

	metrics   *metrics.Recorder
	db        *dynamodb.Client
	registry  *dynamo.Registry
	api       *awsapi.Client
	sender    *push.Sender
	lifecycle satellite.LifecycleSink
	objects   *s3objects.Bucket
}

func newWiring(cfg Config, awsCfg aws.Config, opts Options) *wiring {
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
	if opts.PushSettle == 0 {
		opts.PushSettle = admin.DefaultPushSettle
	}
	if cfg.Region == "" {
		cfg.Region = awsCfg.Region
	}
	awsCfg.Region = cfg.Region
	return &wiring{
		cfg: cfg, aws: awsCfg, opts: opts,
		metrics: metrics.New(opts.MetricsOutput, cfg.StackName, cfg.MetricsPeriod, opts.Now),
	}
}

func (w *wiring) dynamoDB() *dynamodb.Client {
	if w.db == nil {
		w.db = dynamodb.NewFromConfig(w.aws, func(o *dynamodb.Options) {
			if w.opts.Endpoints.DynamoDB != "" {
				o.BaseEndpoint = aws.String(w.opts.Endpoints.DynamoDB)
			}
			o.APIOptions = append(o.APIOptions, phases.DynamoDB)
			o.APIOptions = append(o.APIOptions, w.opts.APIOptions...)
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

func (w *wiring) dynamoRegistry() *dynamo.Registry {
	if w.registry == nil {
		w.registry = dynamo.NewRegistry(w.dynamoDB(), dynamo.Tables{
			Satellites: w.cfg.SatellitesTable, Connections: w.cfg.ConnectionsTable, Results: w.cfg.ResultsTable,
		})
	}
	return w.registry
}

func (w *wiring) awsAPI() *awsapi.Client {
	if w.api == nil {
		w.api = awsapi.New(w.aws, awsapi.Options{Observe: w.opts.Observe})
	}
	return w.api
}

// lifecycleSink is where lifecycle events go: EventBridge, or the log (and
// a file, locally); every published event is counted.
func (w *wiring) lifecycleSink() satellite.LifecycleSink {
	if w.lifecycle == nil {
		sink := w.opts.Lifecycle
		switch {
		case sink != nil:
		case w.cfg.EventBusName != "":
			sink = eventbus.New(w.awsAPI(), w.opts.Endpoints.EventBridge, w.cfg.EventBusName)
		case w.cfg.LifecycleLogFile != "":
			sink = lifecyclelog.New(w.opts.Log, lifecyclelog.AppendFile(w.cfg.LifecycleLogFile))
		default:
			sink = lifecyclelog.New(w.opts.Log, nil)
		}
		w.lifecycle = metrics.EdgeSink{Sink: sink, Metrics: w.metrics}
	}
	return w.lifecycle
}

func (w *wiring) pushSender() *push.Sender {
	if w.sender == nil {
		w.sender = &push.Sender{
			Registry:    w.dynamoRegistry(),
			Connections: mgmtapi.New(w.awsAPI()),
			Lifecycle:   w.lifecycleSink(),
			Log:         w.opts.Log,
			Now:         w.opts.Now,
			Metrics:     w.metrics,
		}
	}
	return w.sender
}

// packageObjects is the script-package bucket; nil when none is configured.
func (w *wiring) packageObjects() (*s3objects.Bucket, error) {
	if w.objects == nil && w.cfg.ScriptPackagesBucket != "" {
		o, err := s3objects.New(w.awsAPI(), w.cfg.ScriptPackagesBucket, w.opts.Endpoints.S3, w.cfg.S3UsePathStyle)
		if err != nil {
			return nil, fmt.Errorf("SCRIPT_PACKAGES_BUCKET: %w", err)
		}
		w.objects = o
	}
	return w.objects, nil
}

// telemetryStore is the telemetry bucket's store; nil unless both the
// bucket and the table are configured.
func (w *wiring) telemetryStore() (*s3telemetry.Store, error) {
	if w.cfg.TelemetryBucket == "" || w.cfg.TelemetryTable == "" {
		return nil, nil
	}
	o, err := s3objects.New(w.awsAPI(), w.cfg.TelemetryBucket, w.opts.Endpoints.S3, w.cfg.S3UsePathStyle)
	if err != nil {
		return nil, fmt.Errorf("TELEMETRY_BUCKET: %w", err)
	}
	return s3telemetry.New(o), nil
}

// secretSource is where secrets are resolved: Secrets Manager behind this
// instance's short cache, or the local stack's file (read on every request,
// so edits apply at once).
func (w *wiring) secretSource() satellite.SecretSource {
	switch {
	case w.opts.Secrets != nil:
		return w.opts.Secrets
	case w.cfg.SecretsFile != "":
		return filesecrets.New(w.cfg.SecretsFile)
	case w.cfg.SecretsPrefix != "":
		src := awssecrets.New(w.awsAPI(), w.opts.Endpoints.SecretsManager, w.cfg.SecretsPrefix)
		if w.cfg.SecretCacheTTL <= 0 || w.cfg.SecretCacheEntries <= 0 {
			return src
		}
		return secretcache.New(src, w.cfg.SecretCacheTTL, w.cfg.SecretCacheEntries, w.opts.Now)
	}
	return nil
}

// endpointService is the endpoint with the ports every WebSocket function
// needs; NewMessage adds the rest.
func (w *wiring) endpointService() *endpoint.Service {
	return &endpoint.Service{
		Registry:        w.dynamoRegistry(),
		Tokens:          w.opts.Tokens,
		Now:             w.opts.Now,
		Log:             w.opts.Log,
		ResultRetention: w.cfg.ResultRetention,
		BlobURLTTL:      w.cfg.BlobURLTTL,
		BindingCacheTTL: w.cfg.BindingCacheTTL,
		KeepaliveEvery:  w.cfg.KeepaliveEvery,
		SlowFrame:       w.opts.SlowFrame,
		Metrics:         w.metrics,

		DefaultSandboxPolicy: w.cfg.DefaultSandboxPolicy,
	}
}

func (w *wiring) webSocket(svc *endpoint.Service) *wshandler.Handler {
	return &wshandler.Handler{Service: svc, ManagementURL: w.cfg.ManagementURL, Region: w.cfg.Region}
}

func (w *wiring) pushService() (*push.Service, error) {
	if w.cfg.ManagementURL == "" {
		return nil, ErrNoManagementURL
	}
	return &push.Service{
		Sender:             w.pushSender(),
		ManagementURL:      w.cfg.ManagementURL,
		PackagesConfigured: w.cfg.ScriptPackagesBucket != "",
	}, nil
}

// fanoutStores are the jobs table and the queue of fan-out tasks (the
// fan-out function, invoked asynchronously).
func (w *wiring) fanoutStores() (*dynamo.FanoutJobs, *lambdainvoke.Queue, error) {
	if w.cfg.JobsTable == "" || w.cfg.FanoutFunction == "" {
		return nil, nil, ErrNoFanout
	}
	queue := &lambdainvoke.Queue{Client: lambdainvoke.New(w.awsAPI(), w.opts.Endpoints.Lambda), Function: w.cfg.FanoutFunction}
	return dynamo.NewFanoutJobs(w.dynamoDB(), w.cfg.JobsTable), queue, nil
}

func (w *wiring) fanoutStarter() (*fanout.Starter, error) {
	jobs, queue, err := w.fanoutStores()
	if err != nil {
		return nil, err
	}
	return &fanout.Starter{Jobs: jobs, Queue: queue, Segments: w.cfg.FanoutSegments, Now: w.opts.Now, Log: w.opts.Log}, nil
}

func (w *wiring) fanoutWorker() (*fanout.Worker, error) {
	if w.cfg.ManagementURL == "" {
		return nil, ErrNoManagementURL
	}
	jobs, queue, err := w.fanoutStores()
	if err != nil {
		return nil, err
	}
	return &fanout.Worker{
		Jobs: jobs, Queue: queue, Connections: w.dynamoRegistry(), Sender: w.pushSender(), ManagementURL: w.cfg.ManagementURL,
		Concurrency: w.cfg.PushConcurrency, Now: w.opts.Now, Log: w.opts.Log, Metrics: w.metrics,
		Settings: w.dynamoRegistry().Settings,
	}, nil
}

func (w *wiring) messageService() (*endpoint.Service, error) {
	svc := w.endpointService()
	svc.Sender = w.pushSender()
	objects, err := w.packageObjects()
	if err != nil {
		return nil, err
	}
	if objects != nil {
		store := s3packages.New(objects)
		store.Log = w.opts.Log
		svc.Packages = packagecache.New(store, w.cfg.PackageCacheEntries, w.cfg.PackageCacheBytes)
	}
	svc.Secrets = w.secretSource()
	store, err := w.telemetryStore()
	if err != nil {
		return nil, err
	}
	if store != nil {
		svc.Telemetry = store
		svc.TelemetryLedger = dynamo.NewTelemetryLedger(w.dynamoDB(), w.cfg.TelemetryTable, w.cfg.SatellitesTable)
		svc.TelemetryKinds = map[string]bool{}
		for _, k := range w.cfg.TelemetryKinds {
			svc.TelemetryKinds[k] = true
		}
	}
	svc.TelemetryBudget = w.cfg.TelemetryBudget
	return svc, nil
}

func (w *wiring) sweeper() (*sweep.Sweeper, error) {
	if w.cfg.ManagementURL == "" {
		return nil, ErrNoManagementURL
	}
	return &sweep.Sweeper{
		Store: w.dynamoRegistry(), Sender: w.pushSender(), ManagementURL: w.cfg.ManagementURL, Now: w.opts.Now, Log: w.opts.Log,
		UnauthenticatedDeadline: w.cfg.UnauthenticatedDeadline, RepublishAfter: w.cfg.RepublishAfter,
		Metrics: w.metrics, PassEvery: w.opts.SweepPassEvery,
	}, nil
}

func (w *wiring) adminHandler() (*admin.Handler, error) {
	pushes, err := w.pushService()
	if err != nil {
		return nil, err
	}
	starter, err := w.fanoutStarter()
	if err != nil {
		return nil, err
	}
	svc := &admin.Service{Registry: w.dynamoRegistry(), Push: pushes, Fanout: starter, Now: w.opts.Now, Log: w.opts.Log, PushSettle: w.opts.PushSettle,
		DefaultSandboxPolicy: w.cfg.DefaultSandboxPolicy}
	objects, err := w.packageObjects()
	if err != nil {
		return nil, err
	}
	if objects != nil {
		store := s3packages.New(objects)
		store.Log = w.opts.Log
		svc.Packages, svc.Publisher = store, s3packages.NewPublisher(objects)
	}
	store, err := w.telemetryStore()
	if err != nil {
		return nil, err
	}
	if store != nil {
		svc.Telemetry, svc.TelemetryKinds = store, w.cfg.TelemetryKinds
	}
	return &admin.Handler{Service: svc, Log: w.opts.Log, Metrics: w.metrics}, nil
}

// NewConnect builds the $connect function: it only records connections.
func NewConnect(cfg Config, awsCfg aws.Config, opts Options) (*wshandler.Handler, error) {
	w := newWiring(cfg, awsCfg, opts)
	return w.webSocket(w.endpointService()), nil
}

// NewMessage builds the $default function: every satellite frame.
func NewMessage(cfg Config, awsCfg aws.Config, opts Options) (*wshandler.Handler, error) {
	w := newWiring(cfg, awsCfg, opts)
	svc, err := w.messageService()
	if err != nil {
		return nil, err
	}
	return w.webSocket(svc), nil
}

// NewDisconnect builds the $disconnect function: it closes connections and
// publishes the disconnected edge; it posts nothing.
func NewDisconnect(cfg Config, awsCfg aws.Config, opts Options) (*wshandler.Handler, error) {
	w := newWiring(cfg, awsCfg, opts)
	svc := w.endpointService()
	svc.Sender = &push.Sender{
		Registry: w.dynamoRegistry(), Lifecycle: w.lifecycleSink(), Log: w.opts.Log, Now: w.opts.Now, Metrics: w.metrics,
	}
	return w.webSocket(svc), nil
}

// NewSweep builds the scheduled sweep. ErrNoManagementURL without
// MANAGEMENT_ENDPOINT.
func NewSweep(cfg Config, awsCfg aws.Config, opts Options) (*sweep.Sweeper, error) {
	return newWiring(cfg, awsCfg, opts).sweeper()
}

// NewAdmin builds the admin API. ErrNoManagementURL without
// MANAGEMENT_ENDPOINT; ErrNoFanout without JOBS_TABLE and FANOUT_FUNCTION.
func NewAdmin(cfg Config, awsCfg aws.Config, opts Options) (*admin.Handler, error) {
	return newWiring(cfg, awsCfg, opts).adminHandler()
}

// NewFanout builds the fan-out function: one task (a segment of a job) per
// invocation. ErrNoManagementURL without MANAGEMENT_ENDPOINT; ErrNoFanout
// without JOBS_TABLE and FANOUT_FUNCTION.
func NewFanout(cfg Config, awsCfg aws.Config, opts Options) (*fanout.Worker, error) {
	return newWiring(cfg, awsCfg, opts).fanoutWorker()
}

// NewFeed builds the feed function: the Results table's stream to the
// results queue. ErrNoFeedQueue without RESULTS_FEED_QUEUE_URL.
func NewFeed(cfg Config, awsCfg aws.Config, opts Options) (*feedhandler.Handler, error) {
	w := newWiring(cfg, awsCfg, opts)
	if w.cfg.ResultsFeedQueueURL == "" {
		return nil, ErrNoFeedQueue
	}
	queue := sqsqueue.New(w.awsAPI(), w.opts.Endpoints.SQS, w.cfg.ResultsFeedQueueURL)
	feed := &resultsfeed.Feed{Queue: queue, Log: w.opts.Log, Metrics: w.metrics}
	return &feedhandler.Handler{Feed: feed, Log: w.opts.Log, Metrics: w.metrics}, nil
}

// App is the whole backend in one process, for the tests: every function's
// services over one set of clients.
type App struct {
	Config    Config
	Log       *slog.Logger
	Metrics   *metrics.Recorder
	Registry  *dynamo.Registry
	Sender    *push.Sender
	Endpoint  *endpoint.Service
	WebSocket *wshandler.Handler
	// Push, Sweep, Admin and Fanout are nil unless MANAGEMENT_ENDPOINT is
	// configured (Admin and Fanout also need JOBS_TABLE and
	// FANOUT_FUNCTION).
	Push   *push.Service
	Sweep  *sweep.Sweeper
	Admin  *admin.Handler
	Fanout *fanout.Worker
}

// New builds every function's services, sharing clients and metrics.
func New(cfg Config, awsCfg aws.Config, opts Options) (*App, error) {
	w := newWiring(cfg, awsCfg, opts)
	svc, err := w.messageService()
	if err != nil {
		return nil, err
	}
	a := &App{
		Config: w.cfg, Log: w.opts.Log, Metrics: w.metrics, Registry: w.dynamoRegistry(), Sender: w.pushSender(),
		Endpoint: svc, WebSocket: w.webSocket(svc),
	}
	if w.cfg.ManagementURL == "" {
		return a, nil
	}
	if a.Push, err = w.pushService(); err != nil {
		return nil, err
	}
	if a.Sweep, err = w.sweeper(); err != nil {
		return nil, err
	}
	if w.cfg.JobsTable == "" && w.cfg.FanoutFunction == "" {
		return a, nil
	}
	if a.Admin, err = w.adminHandler(); err != nil {
		return nil, err
	}
	if a.Fanout, err = w.fanoutWorker(); err != nil {
		return nil, err
	}
	return a, nil
}
