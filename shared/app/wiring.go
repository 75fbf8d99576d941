package app

import (
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/checkstack/satellite-backend/shared/admin"
	"github.com/checkstack/satellite-backend/shared/awssecrets"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/endpoint"
	"github.com/checkstack/satellite-backend/shared/eventbus"
	"github.com/checkstack/satellite-backend/shared/fanout"
	"github.com/checkstack/satellite-backend/shared/filesecrets"
	"github.com/checkstack/satellite-backend/shared/lambdainvoke"
	"github.com/checkstack/satellite-backend/shared/lifecyclelog"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/mgmtapi"
	"github.com/checkstack/satellite-backend/shared/packagecache"
	"github.com/checkstack/satellite-backend/shared/push"
	"github.com/checkstack/satellite-backend/shared/s3objects"
	"github.com/checkstack/satellite-backend/shared/s3packages"
	"github.com/checkstack/satellite-backend/shared/s3telemetry"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/secretcache"
	"github.com/checkstack/satellite-backend/shared/sweep"
	"github.com/checkstack/satellite-backend/shared/token"
	"github.com/checkstack/satellite-backend/shared/wshandler"
)

// wiring builds the parts of the backend on demand, each once. Every
// function's constructor asks only for the parts it uses, so the linker
// leaves the rest (and the AWS clients behind them) out of its binary.
type wiring struct {
	cfg  Config
	aws  aws.Config
	opts Options

	metrics *metrics.Recorder

	// The AWS clients (clients.go), each built on first use.
	http      aws.HTTPClient
	db        *dynamodb.Client
	s3        *s3.Client
	s3presign *s3.PresignClient
	events    *eventbridge.Client
	secrets   *secretsmanager.Client
	lambda    *lambda.Client
	sqs       *sqs.Client
	mgmt      *apigatewaymanagementapi.Client

	registry  *dynamo.Registry
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

func (w *wiring) dynamoRegistry() *dynamo.Registry {
	if w.registry == nil {
		w.registry = dynamo.NewRegistry(w.dynamoDB(), dynamo.Tables{
			Satellites: w.cfg.SatellitesTable, Connections: w.cfg.ConnectionsTable, Results: w.cfg.ResultsTable,
		})
	}
	return w.registry
}

// lifecycleSink is where lifecycle events go: EventBridge, or the log (and
// a file, locally); every published event is counted.
func (w *wiring) lifecycleSink() satellite.LifecycleSink {
	if w.lifecycle == nil {
		sink := w.opts.Lifecycle
		switch {
		case sink != nil:
		case w.cfg.EventBusName != "":
			sink = eventbus.New(w.eventBridge(), w.cfg.EventBusName)
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
			Connections: mgmtapi.New(w.managementAPI()),
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
		w.objects = s3objects.New(w.s3Client(), w.s3Presigner(), w.cfg.ScriptPackagesBucket)
	}
	return w.objects, nil
}

// telemetryStore is the telemetry bucket's store; nil unless both the
// bucket and the table are configured.
func (w *wiring) telemetryStore() (*s3telemetry.Store, error) {
	if w.cfg.TelemetryBucket == "" || w.cfg.TelemetryTable == "" {
		return nil, nil
	}
	return s3telemetry.New(s3objects.New(w.s3Client(), w.s3Presigner(), w.cfg.TelemetryBucket)), nil
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
		src := awssecrets.New(w.secretsManager(), w.cfg.SecretsPrefix)
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
	queue := &lambdainvoke.Queue{Client: lambdainvoke.New(w.lambdaClient()), Function: w.cfg.FanoutFunction}
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
