package app_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/checkstack/satellite-backend/shared/app"
)

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

// merged is base with extra's variables added or replaced.
func merged(base, extra map[string]string) map[string]string {
	out := maps.Clone(base)
	maps.Copy(out, extra)
	return out
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := app.LoadConfig(env(map[string]string{
		"SATELLITES_TABLE": "s", "CONNECTIONS_TABLE": "c", "RESULTS_TABLE": "r", "AWS_REGION": "eu-west-1",
		"MANAGEMENT_ENDPOINT": "https://x.execute-api.eu-west-1.amazonaws.com/prod/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ResultRetention != 30*24*time.Hour || cfg.BlobURLTTL != 5*time.Minute || cfg.PushConcurrency != 16 || cfg.LogLevel != slog.LevelInfo {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.ManagementURL != "https://x.execute-api.eu-west-1.amazonaws.com/prod" {
		t.Errorf("endpoint = %q, want trailing slash trimmed", cfg.ManagementURL)
	}
	if cfg.ScriptPackagesBucket != "" || cfg.SecretsPrefix != "" || cfg.EventBusName != "" {
		t.Errorf("optional features on by default: %+v", cfg)
	}
	if cfg.PackageCacheBytes != 16<<20 || cfg.PackageCacheEntries != 1024 || cfg.SecretCacheTTL != 30*time.Second || cfg.SecretCacheEntries != 1024 {
		t.Errorf("cache defaults = %d bytes, %d entries, %v, %d entries", cfg.PackageCacheBytes, cfg.PackageCacheEntries, cfg.SecretCacheTTL, cfg.SecretCacheEntries)
	}
	if cfg.FanoutSegments != 4 || cfg.JobsTable != "" || cfg.FanoutFunction != "" {
		t.Errorf("fan-out defaults = %d segments, table %q, function %q", cfg.FanoutSegments, cfg.JobsTable, cfg.FanoutFunction)
	}
}

func TestLoadConfigCaches(t *testing.T) {
	base := map[string]string{"SATELLITES_TABLE": "s", "CONNECTIONS_TABLE": "c", "RESULTS_TABLE": "r"}
	with := func(extra map[string]string) map[string]string { return merged(base, extra) }
	cfg, err := app.LoadConfig(env(with(map[string]string{
		"PACKAGE_CACHE_BYTES": "0", "PACKAGE_CACHE_ENTRIES": "10", "SECRET_CACHE_SECONDS": "0", "SECRET_CACHE_ENTRIES": "7",
	})))
	if err != nil || cfg.PackageCacheBytes != 0 || cfg.PackageCacheEntries != 10 || cfg.SecretCacheTTL != 0 || cfg.SecretCacheEntries != 7 {
		t.Errorf("caches turned off: %+v, %v", cfg, err)
	}
	_, err = app.LoadConfig(env(with(map[string]string{
		"PACKAGE_CACHE_BYTES": "-1", "PACKAGE_CACHE_ENTRIES": "many", "SECRET_CACHE_SECONDS": "30s", "SECRET_CACHE_ENTRIES": "1.5",
	})))
	for _, want := range []string{"PACKAGE_CACHE_BYTES", "PACKAGE_CACHE_ENTRIES", "SECRET_CACHE_SECONDS", "SECRET_CACHE_ENTRIES"} {
		if err == nil || !strings.Contains(err.Error(), want+" must be 0 or a positive integer") {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestFanoutConfiguration(t *testing.T) {
	base := map[string]string{"SATELLITES_TABLE": "s", "CONNECTIONS_TABLE": "c", "RESULTS_TABLE": "r", "AWS_REGION": "eu-west-1",
		"MANAGEMENT_ENDPOINT": "https://x.execute-api.eu-west-1.amazonaws.com/prod"}
	with := func(extra map[string]string) map[string]string { return merged(base, extra) }
	cfg, err := app.LoadConfig(env(with(map[string]string{"JOBS_TABLE": " jobs ", "FANOUT_FUNCTION": "stack-fanout", "FANOUT_SEGMENTS": "64"})))
	if err != nil || cfg.JobsTable != "jobs" || cfg.FanoutFunction != "stack-fanout" || cfg.FanoutSegments != 64 {
		t.Errorf("config = %+v, %v", cfg, err)
	}
	for _, bad := range []string{"0", "65", "many"} {
		if _, err := app.LoadConfig(env(with(map[string]string{"FANOUT_SEGMENTS": bad}))); err == nil || !strings.Contains(err.Error(), "FANOUT_SEGMENTS") {
			t.Errorf("FANOUT_SEGMENTS=%s: %v, want an error naming it", bad, err)
		}
	}
	// The admin and fan-out functions cannot start without the jobs table
	// and the fan-out function.
	cfg, _ = app.LoadConfig(env(base))
	if _, err := app.NewAdmin(cfg, aws.Config{Region: "eu-west-1"}, app.Options{}); !errors.Is(err, app.ErrNoFanout) {
		t.Errorf("NewAdmin without JOBS_TABLE: %v, want ErrNoFanout", err)
	}
	if _, err := app.NewFanout(cfg, aws.Config{Region: "eu-west-1"}, app.Options{}); !errors.Is(err, app.ErrNoFanout) {
		t.Errorf("NewFanout without JOBS_TABLE: %v, want ErrNoFanout", err)
	}
}

func TestLoadConfigNamesEveryProblem(t *testing.T) {
	_, err := app.LoadConfig(env(map[string]string{
		"CONNECTIONS_TABLE": "c", "RESULT_RETENTION_DAYS": "0", "BLOB_URL_TTL_SECONDS": "soon",
		"S3_USE_PATH_STYLE": "maybe", "LOG_LEVEL": "LOUD",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"SATELLITES_TABLE is required", "RESULTS_TABLE is required", "RESULT_RETENTION_DAYS", "BLOB_URL_TTL_SECONDS", "S3_USE_PATH_STYLE", "LOG_LEVEL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestLoadConfigLogLevelFromLambda(t *testing.T) {
	for lambda, want := range map[string]slog.Level{"TRACE": slog.LevelDebug, "DEBUG": slog.LevelDebug, "WARN": slog.LevelWarn, "FATAL": slog.LevelError} {
		cfg, err := app.LoadConfig(env(map[string]string{"SATELLITES_TABLE": "s", "CONNECTIONS_TABLE": "c", "RESULTS_TABLE": "r", "AWS_LAMBDA_LOG_LEVEL": lambda}))
		if err != nil || cfg.LogLevel != want {
			t.Errorf("AWS_LAMBDA_LOG_LEVEL=%s: level %v, %v; want %v", lambda, cfg.LogLevel, err, want)
		}
	}
}

// TestConfigurationTableListsEveryVariable checks the configuration table of
// docs/DEPLOY.md against Variables.
func TestConfigurationTableListsEveryVariable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "| `") {
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
			rows[name] = true
		}
	}
	for _, v := range app.Variables {
		if !rows[v.Name] {
			t.Errorf("docs/DEPLOY.md's configuration table does not list %s", v.Name)
		}
	}
}

// Every variable LoadConfig reads is in Variables.
func TestVariablesListsWhatLoadConfigReads(t *testing.T) {
	read := map[string]bool{}
	_, _ = app.LoadConfig(func(k string) string { read[k] = true; return "" })
	listed := map[string]bool{}
	for _, v := range app.Variables {
		listed[v.Name] = true
	}
	for name := range read {
		if !listed[name] && name != "AWS_LAMBDA_LOG_LEVEL" {
			t.Errorf("LoadConfig reads %s, which Variables does not list", name)
		}
	}
}

// TestFromEnvironmentReadsWhatLambdaProvides checks the AWS configuration a
// function builds from its environment: the region and the role's
// credentials Lambda sets, and the SDK's endpoint variables.
func TestFromEnvironmentReadsWhatLambdaProvides(t *testing.T) {
	for k, v := range map[string]string{
		"SATELLITES_TABLE": "s", "CONNECTIONS_TABLE": "c", "RESULTS_TABLE": "r", "AWS_REGION": "cn-north-1",
		"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "session",
		"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2", "AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:3",
	} {
		t.Setenv(k, v)
	}
	cfg, awsCfg, opts, err := app.FromEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := awsCfg.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "AKID" || creds.SecretAccessKey != "secret" || creds.SessionToken != "session" {
		t.Errorf("credentials = %+v, %v", creds, err)
	}
	if awsCfg.Region != "cn-north-1" || cfg.Region != "cn-north-1" {
		t.Errorf("region = %q / %q", awsCfg.Region, cfg.Region)
	}
	if e := opts.Endpoints; e.DynamoDB != "http://127.0.0.1:2" || e.S3 != "http://127.0.0.1:1" || e.EventBridge != "http://127.0.0.1:1" || e.SecretsManager != "http://127.0.0.1:1" || e.Lambda != "http://127.0.0.1:3" {
		t.Errorf("endpoints = %+v", e)
	}
	t.Setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
	if _, _, opts, _ := app.FromEnvironment(); opts.Endpoints != (app.Endpoints{}) {
		t.Errorf("endpoints kept though ignored: %+v", opts.Endpoints)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "")
	if _, _, _, err := app.FromEnvironment(); !errors.Is(err, app.ErrNoCredentials) {
		t.Errorf("without credentials: %v, want ErrNoCredentials", err)
	}
}
