// Package testenv is the integration-test harness: it starts the real servers
// the tests run against (DynamoDB Local and an S3-compatible server) once per
// test binary, gives each test its own tables (created from template.yaml) and
// bucket, and builds the backend wired to them.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/packagecache"
	"github.com/checkstack/satellite-backend/shared/secretcache"
)

var servers struct {
	once     sync.Once
	err      error
	root     string
	template *samtemplate.Template
	dynamo   *localaws.DynamoDBLocal
	s3       *localaws.S3Server
}

// Main runs a package's tests with the shared servers and stops them after,
// then runs after. Use it as the package's TestMain.
// NeedsServers skips a test under -short: `go test -short ./...` runs only
// the tests that need no DynamoDB Local (Java), S3 server, built bootstrap
// or Node.js.
func NeedsServers(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("an integration test (DynamoDB Local, the S3 server, built functions): not run with -short")
	}
}

func Main(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	if servers.dynamo != nil {
		servers.dynamo.Stop()
	}
	if servers.s3 != nil {
		servers.s3.Stop()
	}
	os.Exit(code)
}

func start() error {
	servers.once.Do(func() {
		root, err := samtemplate.FindRepoRoot()
		if err != nil {
			servers.err = err
			return
		}
		servers.root = root
		if servers.template, err = samtemplate.Load(filepath.Join(root, "template.yaml")); err != nil {
			servers.err = err
			return
		}
		if servers.dynamo, err = localaws.StartDynamoDB(context.Background(), localaws.DynamoDBOptions{}); err != nil {
			servers.err = err
			return
		}
		servers.s3, servers.err = localaws.StartS3("127.0.0.1:0", "")
	})
	return servers.err
}

// RepoRoot returns the repository root.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// Template returns the parsed template.yaml.
func Template(tb testing.TB) *samtemplate.Template {
	tb.Helper()
	tpl, err := samtemplate.Load(filepath.Join(RepoRoot(tb), "template.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return tpl
}

// Env is one test's isolated slice of the shared servers.
type Env struct {
	DynamoDBEndpoint string
	S3Endpoint       string
	// TableNames maps each template table's logical id to this test's table.
	TableNames map[string]string
	Tables     dynamo.Tables
	Bucket     string
	// TelemetryTable and TelemetryBucket hold this test's telemetry.
	TelemetryTable  string
	TelemetryBucket string
	DB              *dynamodb.Client
	S3              *s3.Client
	Template        *samtemplate.Template
	// JobsTable holds this test's fan-out jobs.
	JobsTable string
	// Lambda is the Lambda Invoke API the App's admin function starts
	// fan-out tasks on, running a fan-out function App builds (nil until
	// App is called); FanoutCalls records that function's requests.
	Lambda      *Lambda
	FanoutCalls *Calls
	// AsyncDuplicateRate is the share of fan-out tasks Lambda delivers
	// twice (set it before App).
	AsyncDuplicateRate float64
}

// New creates fresh tables and a fresh bucket for one test.
func New(tb testing.TB) *Env {
	tb.Helper()
	NeedsServers(tb)
	if err := start(); err != nil {
		tb.Fatalf("test servers: %v", err)
	}
	suffix := randomID(6)
	names := map[string]string{}
	tables, err := servers.template.Tables()
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range tables {
		names[t.LogicalID] = t.LogicalID + "-" + suffix
	}
	db := localaws.DynamoDBClient(servers.dynamo.Endpoint)
	// The tests' clocks are their own: DynamoDB Local must not expire
	// their items by the real one.
	if err := localaws.CreateTables(context.Background(), db, servers.template, names, localaws.TableOptions{KeepExpired: true}); err != nil {
		tb.Fatal(err)
	}
	bucket := "packages-" + strings.ToLower(suffix)
	telemetry := "telemetry-" + strings.ToLower(suffix)
	for _, b := range []string{bucket, telemetry} {
		if err := servers.s3.CreateBucket(b); err != nil {
			tb.Fatal(err)
		}
	}
	return &Env{
		DynamoDBEndpoint: servers.dynamo.Endpoint,
		S3Endpoint:       servers.s3.URL,
		TableNames:       names,
		Tables: dynamo.Tables{
			Satellites:  names["SatellitesTable"],
			Connections: names["ConnectionsTable"],
			Results:     names["ResultsTable"],
		},
		Bucket:          bucket,
		TelemetryTable:  names["TelemetryTable"],
		TelemetryBucket: telemetry,
		JobsTable:       names["JobsTable"],
		DB:              db,
		S3: s3.NewFromConfig(localaws.AWSConfig(), func(o *s3.Options) {
			o.BaseEndpoint = aws.String(servers.s3.URL)
			o.UsePathStyle = true
		}),
		Template: servers.template,
	}
}

// Config returns the functions' configuration for this Env, with the
// Management API at managementURL.
func (e *Env) Config(managementURL string) app.Config {
	return app.Config{
		Region:                  localaws.Region,
		SatellitesTable:         e.Tables.Satellites,
		ConnectionsTable:        e.Tables.Connections,
		ResultsTable:            e.Tables.Results,
		ScriptPackagesBucket:    e.Bucket,
		TelemetryTable:          e.TelemetryTable,
		TelemetryBucket:         e.TelemetryBucket,
		TelemetryKinds:          strings.Split(app.DefaultTelemetryKinds, ","),
		TelemetryBudget:         app.DefaultTelemetryBudget,
		ManagementURL:           managementURL,
		ResultRetention:         30 * 24 * time.Hour,
		BindingCacheTTL:         app.DefaultBindingCacheTTL,
		UnauthenticatedDeadline: 30 * time.Second,
		RepublishAfter:          2 * time.Minute,
		BlobURLTTL:              5 * time.Minute,
		PushConcurrency:         8,
		S3UsePathStyle:          true,
		PackageCacheBytes:       packagecache.DefaultMaxBytes,
		PackageCacheEntries:     packagecache.DefaultMaxEntries,
		SecretCacheTTL:          secretcache.DefaultTTL,
		SecretCacheEntries:      secretcache.DefaultMaxEntries,
		JobsTable:               e.JobsTable,
		FanoutFunction:          FanoutFunction,
		FanoutSegments:          2,
	}
}

// App builds the backend against this Env. It returns the recorder of every
// SDK request the App makes. With a fan-out function configured, the App's
// admin function starts fan-out tasks on e.Lambda, which runs them on a
// fan-out function of their own (built from cfg and opts' clock, log and
// endpoints).
func (e *Env) App(tb testing.TB, cfg app.Config, opts app.Options) (*app.App, *Calls) {
	tb.Helper()
	calls := &Calls{}
	opts.Endpoints.DynamoDB, opts.Endpoints.S3 = e.DynamoDBEndpoint, e.S3Endpoint
	if cfg.FanoutFunction != "" && opts.Endpoints.Lambda == "" {
		opts.Endpoints.Lambda = e.lambda(tb).URL
	}
	if opts.Log == nil {
		opts.Log = Logger(tb)
	}
	if opts.MetricsOutput == nil {
		opts.MetricsOutput = &tbWriter{tb: tb}
	}
	if opts.PushSettle == 0 {
		// The second push of a change still happens, without the wait
		// for authentications in flight (tests have none).
		opts.PushSettle = time.Nanosecond
	}
	if e.Lambda != nil && opts.Endpoints.Lambda == e.Lambda.URL {
		e.fanoutWorker(tb, cfg, opts)
	}
	opts.APIOptions = append(opts.APIOptions, calls.APIOption)
	a, err := app.New(cfg, localaws.AWSConfig(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	return a, calls
}

// Registry returns a registry over this Env's tables (for seeding and reading
// state directly).
func (e *Env) Registry() *dynamo.Registry { return dynamo.NewRegistry(e.DB, e.Tables) }

// PutObject stores an object in this Env's bucket.
func (e *Env) PutObject(tb testing.TB, key string, body []byte) {
	tb.Helper()
	_, err := e.S3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		tb.Fatalf("put s3://%s/%s: %v", e.Bucket, key, err)
	}
}

// Logger returns a JSON logger that writes into the test log, plus nothing
// else: a failing test shows what the backend logged.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewJSONHandler(&tbWriter{tb: tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// LogBuffer returns a JSON logger that writes into a buffer the test can read.
func LogBuffer() (*slog.Logger, *SafeBuffer) {
	buf := &SafeBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// SafeBuffer is a bytes.Buffer safe for concurrent writers.
type SafeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SafeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SafeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type tbWriter struct{ tb testing.TB }

func (w *tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = (*tbWriter)(nil)

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewConnectionID returns an id shaped like API Gateway's (12 base64 chars
// ending in '=').
func NewConnectionID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%sCIF=", strings.ToUpper(hex.EncodeToString(b))[:8])
}

// ScanAll returns every item of a table, for tests that check how items are
// stored.
func ScanAll(tb testing.TB, db *dynamodb.Client, table string) []map[string]types.AttributeValue {
	tb.Helper()
	var items []map[string]types.AttributeValue
	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)}
	for {
		out, err := db.Scan(context.Background(), in)
		if err != nil {
			tb.Fatalf("scan %s: %v", table, err)
		}
		items = append(items, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			return items
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}
