// Package app wires the satellite backend together: it reads the environment
// into a Config, and its constructors build the clients and adapters once per
// function instance. Each function has its own constructor (NewConnect,
// NewMessage, ...) that builds only what that function uses, so its binary
// links nothing else; the local stack runs the same constructors, and New
// builds everything for the tests.
package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/shared/fanout"
	"github.com/checkstack/satellite-backend/shared/packagecache"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/secretcache"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

// Config is everything the functions read from their environment. The
// configuration table of docs/DEPLOY.md lists each variable.
type Config struct {
	Region string // AWS_REGION

	SatellitesTable  string // SATELLITES_TABLE (required)
	ConnectionsTable string // CONNECTIONS_TABLE (required)
	ResultsTable     string // RESULTS_TABLE (required)

	// ScriptPackagesBucket is SCRIPT_PACKAGES_BUCKET; empty means no
	// script-package store is configured.
	ScriptPackagesBucket string
	// SecretsPrefix is SECRETS_PREFIX; empty means secret delivery is not
	// configured. Run secret NAME is the Secrets Manager secret prefix+NAME.
	SecretsPrefix string
	// SecretsFile is SECRETS_FILE: a JSON file of run secrets used instead of
	// Secrets Manager (the local stack).
	SecretsFile string
	// EventBusName is EVENT_BUS_NAME; empty means lifecycle events are only
	// logged.
	EventBusName string
	// LifecycleLogFile is LIFECYCLE_LOG_FILE: without an event bus, lifecycle
	// events are also appended to it as JSON lines (the local stack).
	LifecycleLogFile string
	// TelemetryTable (TELEMETRY_TABLE) and TelemetryBucket
	// (TELEMETRY_BUCKET) configure telemetry storage; without both, every
	// telemetry batch is of a kind nothing stores.
	TelemetryTable  string
	TelemetryBucket string
	// TelemetryKinds is TELEMETRY_KINDS: the comma-separated kinds stored
	// (default logstream,metricstream,metric-scrape).
	TelemetryKinds []string
	// TelemetryBudget is TELEMETRY_BYTES_PER_MINUTE (2 MiB, at least
	// 128 KiB): the bytes of telemetry frames one connection may send per
	// minute before its batches are acked retryable.
	TelemetryBudget int
	// ManagementURL is MANAGEMENT_ENDPOINT: the @connections base URL
	// (https://host/stage). Required for pushes not caused by a WebSocket
	// event; when set it also overrides the URL derived from events.
	ManagementURL string
	// JobsTable is JOBS_TABLE: the fan-out jobs (an item per job,
	// expiring). FanoutFunction is FANOUT_FUNCTION: the function that runs
	// fan-out tasks (the admin function starts jobs on it; it hands the
	// rest of a segment on to itself). The admin and fan-out functions
	// need both.
	JobsTable      string
	FanoutFunction string
	// FanoutSegments is FANOUT_SEGMENTS (4, at most 64): parallel workers
	// per fan-out job.
	FanoutSegments int

	// DefaultSandboxPolicy is DEFAULT_SANDBOX_POLICY, compacted: the
	// sandbox policy satellites are sent while no operator has set one (a
	// JSON object); nil (the variable empty) sends none until one is set.
	DefaultSandboxPolicy json.RawMessage

	// ResultsFeedQueueURL is RESULTS_FEED_QUEUE_URL: the SQS queue the
	// feed function sends stored results to. The feed function needs it.
	ResultsFeedQueueURL string

	ResultRetention time.Duration // RESULT_RETENTION_DAYS, default 30
	BlobURLTTL      time.Duration // BLOB_URL_TTL_SECONDS, default 300
	PushConcurrency int           // PUSH_CONCURRENCY, default 16
	BindingCacheTTL time.Duration // CONNECTION_CACHE_SECONDS, default 1800; 0 disables
	// KeepaliveEvery is KEEPALIVE_SECONDS (240): how often a connection's
	// heartbeats are answered with a keepalive frame; 0 sends none.
	KeepaliveEvery time.Duration
	// PackageCacheBytes (PACKAGE_CACHE_BYTES, 16 MiB) and
	// PackageCacheEntries (PACKAGE_CACHE_ENTRIES, 1024) bound the manifests
	// and blobs a warm message function keeps; 0 keeps none.
	PackageCacheBytes   int64
	PackageCacheEntries int
	// SecretCacheTTL (SECRET_CACHE_SECONDS, 30) is how long a warm message
	// function keeps a value read from Secrets Manager, at most
	// SecretCacheEntries (SECRET_CACHE_ENTRIES, 1024) of them; 0 keeps
	// none.
	SecretCacheTTL     time.Duration
	SecretCacheEntries int
	// UnauthenticatedDeadline is UNAUTHENTICATED_DEADLINE_SECONDS (30).
	UnauthenticatedDeadline time.Duration
	// RepublishAfter is REPUBLISH_AFTER_SECONDS (120).
	RepublishAfter time.Duration
	S3UsePathStyle bool       // S3_USE_PATH_STYLE, for S3-compatible local servers
	LogLevel       slog.Level // LOG_LEVEL, else AWS_LAMBDA_LOG_LEVEL, default INFO
	// StackName is STACK_NAME: the Stack dimension of every metric.
	StackName string
	// MetricsPeriod is METRICS_PERIOD_SECONDS (60): the period a warm
	// instance aggregates its routine metrics over; 0 writes them every
	// invocation.
	MetricsPeriod time.Duration
}

// Telemetry defaults.
const (
	DefaultTelemetryKinds  = "logstream,metricstream,metric-scrape"
	DefaultTelemetryBudget = 2 << 20
)

// DefaultBindingCacheTTL is how long a warm instance trusts a connection's
// binding by default (CONNECTION_CACHE_SECONDS).
const DefaultBindingCacheTTL = 30 * time.Minute

// DefaultKeepaliveEvery is KEEPALIVE_SECONDS' default: well inside the 10
// minutes after which CloudFront closes a WebSocket its origin sent nothing
// on, with room for one lost heartbeat.
const DefaultKeepaliveEvery = 4 * time.Minute

// LoadConfig reads a Config through getenv (os.Getenv in production). It
// returns an error naming every variable that is missing or malformed.
func LoadConfig(getenv func(string) string) (Config, error) {
	var problems []string
	required := func(name string) string {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			problems = append(problems, name+" is required")
		}
		return v
	}
	positive := func(name string, def int) int {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			problems = append(problems, fmt.Sprintf("%s must be a positive integer, got %q", name, v))
			return def
		}
		return n
	}
	nonNegative := func(name string, def int) int {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			problems = append(problems, fmt.Sprintf("%s must be 0 or a positive integer, got %q", name, v))
			return def
		}
		return n
	}
	cfg := Config{
		Region:                  strings.TrimSpace(getenv("AWS_REGION")),
		SatellitesTable:         required("SATELLITES_TABLE"),
		ConnectionsTable:        required("CONNECTIONS_TABLE"),
		ResultsTable:            required("RESULTS_TABLE"),
		ScriptPackagesBucket:    strings.TrimSpace(getenv("SCRIPT_PACKAGES_BUCKET")),
		SecretsPrefix:           getenv("SECRETS_PREFIX"),
		SecretsFile:             strings.TrimSpace(getenv("SECRETS_FILE")),
		EventBusName:            strings.TrimSpace(getenv("EVENT_BUS_NAME")),
		LifecycleLogFile:        strings.TrimSpace(getenv("LIFECYCLE_LOG_FILE")),
		ManagementURL:           strings.TrimRight(strings.TrimSpace(getenv("MANAGEMENT_ENDPOINT")), "/"),
		ResultRetention:         time.Duration(positive("RESULT_RETENTION_DAYS", 30)) * 24 * time.Hour,
		BlobURLTTL:              time.Duration(positive("BLOB_URL_TTL_SECONDS", 300)) * time.Second,
		PushConcurrency:         positive("PUSH_CONCURRENCY", fanout.DefaultConcurrency),
		JobsTable:               strings.TrimSpace(getenv("JOBS_TABLE")),
		FanoutFunction:          strings.TrimSpace(getenv("FANOUT_FUNCTION")),
		FanoutSegments:          positive("FANOUT_SEGMENTS", fanout.DefaultSegments),
		ResultsFeedQueueURL:     strings.TrimSpace(getenv("RESULTS_FEED_QUEUE_URL")),
		BindingCacheTTL:         DefaultBindingCacheTTL,
		UnauthenticatedDeadline: time.Duration(positive("UNAUTHENTICATED_DEADLINE_SECONDS", int(sweep.DefaultUnauthenticatedDeadline/time.Second))) * time.Second,
		RepublishAfter:          time.Duration(positive("REPUBLISH_AFTER_SECONDS", int(sweep.DefaultRepublishAfter/time.Second))) * time.Second,
		StackName:               strings.TrimSpace(getenv("STACK_NAME")),
		TelemetryTable:          strings.TrimSpace(getenv("TELEMETRY_TABLE")),
		TelemetryBucket:         strings.TrimSpace(getenv("TELEMETRY_BUCKET")),
		TelemetryBudget:         positive("TELEMETRY_BYTES_PER_MINUTE", DefaultTelemetryBudget),
		MetricsPeriod:           60 * time.Second,
		PackageCacheBytes:       int64(nonNegative("PACKAGE_CACHE_BYTES", packagecache.DefaultMaxBytes)),
		PackageCacheEntries:     nonNegative("PACKAGE_CACHE_ENTRIES", packagecache.DefaultMaxEntries),
		SecretCacheTTL:          time.Duration(nonNegative("SECRET_CACHE_SECONDS", int(secretcache.DefaultTTL/time.Second))) * time.Second,
		SecretCacheEntries:      nonNegative("SECRET_CACHE_ENTRIES", secretcache.DefaultMaxEntries),
		KeepaliveEvery:          time.Duration(nonNegative("KEEPALIVE_SECONDS", int(DefaultKeepaliveEvery/time.Second))) * time.Second,
	}
	if cfg.StackName == "" {
		cfg.StackName = "local"
	}
	if cfg.FanoutSegments > fanout.MaxSegments {
		problems = append(problems, fmt.Sprintf("FANOUT_SEGMENTS must be at most %d, got %d", fanout.MaxSegments, cfg.FanoutSegments))
	}
	if cfg.TelemetryBudget < protocol.MaxMessageBytes {
		problems = append(problems, fmt.Sprintf("TELEMETRY_BYTES_PER_MINUTE must be at least %d (one full frame), got %d", protocol.MaxMessageBytes, cfg.TelemetryBudget))
	}
	kinds := getenv("TELEMETRY_KINDS")
	if strings.TrimSpace(kinds) == "" {
		kinds = DefaultTelemetryKinds
	}
	for _, k := range strings.Split(kinds, ",") {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
		case !protocol.ValidName(k):
			problems = append(problems, fmt.Sprintf("TELEMETRY_KINDS: %q is not a kind (letters, digits, '.', '_', '-')", k))
		default:
			cfg.TelemetryKinds = append(cfg.TelemetryKinds, k)
		}
	}
	if v := strings.TrimSpace(getenv("DEFAULT_SANDBOX_POLICY")); v != "" {
		policy, err := parseSandboxPolicy(v)
		if err != nil {
			problems = append(problems, "DEFAULT_SANDBOX_POLICY (the DefaultSandboxPolicy parameter) "+err.Error())
		}
		cfg.DefaultSandboxPolicy = policy
	}
	if v := strings.TrimSpace(getenv("METRICS_PERIOD_SECONDS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			problems = append(problems, fmt.Sprintf("METRICS_PERIOD_SECONDS must be 0 or a positive integer, got %q", v))
		}
		cfg.MetricsPeriod = time.Duration(n) * time.Second
	}
	if v := strings.TrimSpace(getenv("CONNECTION_CACHE_SECONDS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			problems = append(problems, fmt.Sprintf("CONNECTION_CACHE_SECONDS must be 0 or a positive integer, got %q", v))
		}
		cfg.BindingCacheTTL = time.Duration(n) * time.Second
	}
	if v := strings.TrimSpace(getenv("S3_USE_PATH_STYLE")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("S3_USE_PATH_STYLE must be true or false, got %q", v))
		}
		cfg.S3UsePathStyle = b
	}
	level := getenv("LOG_LEVEL")
	if level == "" {
		level = getenv("AWS_LAMBDA_LOG_LEVEL")
	}
	if level != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(normaliseLevel(level))); err != nil {
			problems = append(problems, fmt.Sprintf("LOG_LEVEL must be DEBUG, INFO, WARN or ERROR, got %q", level))
		}
	}
	if len(problems) > 0 {
		return cfg, fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	return cfg, nil
}

// parseSandboxPolicy checks a default sandbox policy as PUT /sandbox-policy
// checks a policy (a JSON object, at most satellite.MaxSandboxPolicyBytes
// compacted, nested at most protocol.MaxResultDepth levels) and returns it
// compacted. A function whose default is not one fails to start rather
// than send satellites something it cannot vouch for.
func parseSandboxPolicy(v string) (json.RawMessage, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &probe); err != nil || probe == nil {
		reason := "it is null"
		if err != nil {
			reason = err.Error()
		}
		return nil, fmt.Errorf("must be a JSON object (or empty for none): %s", reason)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(v)); err != nil {
		return nil, fmt.Errorf("must be a JSON object: %w", err)
	}
	if compact.Len() > satellite.MaxSandboxPolicyBytes {
		return nil, fmt.Errorf("is %d bytes, over the %d byte limit of a sandbox policy", compact.Len(), satellite.MaxSandboxPolicyBytes)
	}
	if protocol.Depth(compact.Bytes()) > protocol.MaxResultDepth {
		return nil, fmt.Errorf("nests deeper than %d levels", protocol.MaxResultDepth)
	}
	return compact.Bytes(), nil
}

// normaliseLevel maps Lambda's TRACE and FATAL onto slog's levels.
func normaliseLevel(level string) string {
	switch strings.ToUpper(strings.TrimSpace(level)) {
	case "TRACE":
		return "DEBUG"
	case "FATAL":
		return "ERROR"
	}
	return strings.TrimSpace(level)
}
