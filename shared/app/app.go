package app

import (
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/shared/admin"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/endpoint"
	"github.com/checkstack/satellite-backend/shared/fanout"
	"github.com/checkstack/satellite-backend/shared/feedhandler"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/push"
	"github.com/checkstack/satellite-backend/shared/resultsfeed"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/sqsqueue"
	"github.com/checkstack/satellite-backend/shared/sweep"
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
	// APIOptions are added to every AWS client (tests count requests).
	APIOptions []func(*middleware.Stack) error
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
	queue := sqsqueue.New(w.sqsClient(), w.cfg.ResultsFeedQueueURL)
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
