// Command devstack runs the whole satellite backend on this machine, read
// from template.yaml: DynamoDB Local, an S3-compatible server, the WebSocket
// gateway with the Management API, and the functions. It seeds a demo
// satellite, prints a banner with everything needed to connect, prints
// lifecycle events as they happen, and stops everything on Ctrl-C. `make dev`
// runs it.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/shared/lifecyclelog"
)

func main() {
	fs := flag.NewFlagSet("devstack", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8765", "listen address of the WebSocket gateway and the Management API")
	persist := fs.String("persist", "", "keep state (tables, bucket, secrets, event log) in this directory across restarts; in memory when empty")
	functions := fs.String("functions", "in-process", "how functions run: in-process, rie (built binaries under aws-lambda-rie) or an Invoke endpoint URL such as sam local start-lambda's")
	idle := fs.Duration("idle-timeout", 10*time.Minute, "close connections idle this long (API Gateway: 10m)")
	maxDuration := fs.Duration("max-duration", 2*time.Hour, "close connections older than this (API Gateway: 2h)")
	instances := fs.Int("instances", localstack.DefaultInstances, "instances per function, in process or under rie: each with its own memory, one event at a time, started on demand; a connection's next frame goes to another instance whenever one is free or may start")
	instanceIdle := fs.Duration("instance-idle", localstack.DefaultInstanceIdle, "reclaim an instance idle this long, so connections meet cold starts (0: never)")
	scheduleEvery := fs.Duration("schedule-every", 0, "run scheduled functions this often instead of their template rate (in process, the sweep's four passes are spread over it)")
	quiet := fs.Bool("quiet", false, "do not print the functions' JSON logs")
	level := fs.String("log-level", "INFO", "functions' log level")
	duplicates := fs.Float64("async-duplicates", 0.01, "share of asynchronous Lambda events delivered twice, as Lambda now and then does (0 to 1)")
	retryDelays := fs.String("async-retry-delays", "1m,2m", "waits before the retries of a failed asynchronous Lambda invocation (Lambda: 1m,2m)")
	_ = fs.Parse(os.Args[1:])

	if *instances < 1 {
		fatal(fmt.Errorf("-instances %d: want at least 1", *instances))
	}
	if *instanceIdle < 0 {
		fatal(fmt.Errorf("-instance-idle %v: want 0 (never) or a positive duration", *instanceIdle))
	}
	if *instanceIdle == 0 {
		*instanceIdle = -1 // localstack: never reclaim
	}
	var logLevel slog.Level
	if err := logLevel.UnmarshalText([]byte(*level)); err != nil {
		fatal(err)
	}
	if *duplicates < 0 || *duplicates > 1 {
		fatal(fmt.Errorf("-async-duplicates %v: want a share from 0 to 1", *duplicates))
	}
	var delays []time.Duration
	for _, d := range strings.Split(*retryDelays, ",") {
		v, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || v < 0 {
			fatal(fmt.Errorf("-async-retry-delays %q: want durations separated by commas", *retryDelays))
		}
		delays = append(delays, v)
	}
	opts := localstack.Options{
		Addr: *addr, DataDir: *persist, IdleTimeout: *idle, MaxDuration: *maxDuration,
		ScheduleEvery: *scheduleEvery, Seed: true, Log: os.Stderr, LogLevel: logLevel,
		AsyncDuplicateRate: *duplicates, AsyncRetryDelays: delays,
		Instances: *instances, InstanceIdle: *instanceIdle,
	}
	if !*quiet {
		opts.FunctionLog = os.Stdout
	}
	switch *functions {
	case "in-process":
		opts.Mode = localstack.InProcess
	case "rie":
		opts.Mode = localstack.RIE
	default:
		if !strings.HasPrefix(*functions, "http") {
			fatal(fmt.Errorf("-functions %q: want in-process, rie or an http(s) Invoke endpoint", *functions))
		}
		opts.Mode, opts.LambdaEndpoint = localstack.LambdaEndpoint, *functions
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(os.Stderr, "devstack: starting DynamoDB Local, S3, gateway and functions ...")
	stack, err := localstack.Start(ctx, opts)
	if err != nil {
		fatal(err)
	}
	fmt.Print(banner(stack, delays, *duplicates))
	go printEvents(ctx, stack.EventsFile)

	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "devstack: stopping ...")
		stack.Stop()
		fmt.Fprintln(os.Stderr, "devstack: stopped")
	case err := <-stack.Failed():
		fmt.Fprintf(os.Stderr, "\ndevstack: FAILED: %v\ndevstack: the stack cannot serve without it; stopping\n", err)
		stack.Stop()
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "devstack:", err)
	os.Exit(1)
}

func banner(s *localstack.Stack, retryDelays []time.Duration, duplicates float64) string {
	var waits []string
	for _, d := range retryDelays {
		waits = append(waits, d.String())
	}
	retries := strings.Join(waits, ", ")
	state := "in memory (gone on exit; make dev PERSIST=dir keeps it)"
	if s.DataDir != "" {
		state = s.DataDir
	}
	var b strings.Builder
	fmt.Fprintf(&b, `
Checkstack satellite backend (local stack)
Core URL for satellites: %s
  (a satellite opens <core URL>/api/ws/satellite, served as the CloudFront
  front of template.yaml serves it)
  WebSocket URL     %s
  @connections URL  %s/@connections
  Admin API         %s
  Lambda API        %s/2015-03-31/functions/{name}/invocations (Event: retried after %s, %.0f%% delivered twice)
  Functions         %s
  DynamoDB Local    %s
  S3                %s (buckets %s, %s)
  Results feed      %s
                    (SQS at %s: what the core consumes; AWS_ENDPOINT_URL_SQS)
  State             %s
  Secrets file      %s
  Event log         %s
Demo satellite (an HTTP check in two environments with config and run
secrets, a scrape capability with a bound secret; the fleet has a sandbox
policy)
  clientId          %s
  token             %s
%sConnect the simulator (it exercises every message of the protocol):
  go run ./infra/cmd/satsim -core-url %s -client-id %s -token %s
Manage the fleet:
  go run ./infra/cmd/satctl --endpoint %s list
Press Ctrl-C to stop.

`, coreURL(s), s.URL, s.ManagementURL, s.AdminURL, s.LambdaURL, retries, 100*duplicates, s.Describe(), s.DynamoDBEndpoint, s.S3Endpoint, s.Bucket, s.TelemetryBucket, s.ResultsFeedQueueURL, s.SQSEndpoint, state,
		s.SecretsFile, s.EventsFile, s.Demo.SatelliteID, s.Demo.Token, samHint(s), coreURL(s), s.Demo.SatelliteID, s.Demo.Token, s.AdminURL)
	return b.String()
}

// coreURL is the stack's core URL; a template without a front has none.
func coreURL(s *localstack.Stack) string {
	if s.CoreURL == "" {
		return "(none: template.yaml has no CloudFront front; use the WebSocket URL)"
	}
	return s.CoreURL
}

func samHint(s *localstack.Stack) string {
	if s.SAMEnvFile == "" {
		return ""
	}
	return "Start the functions (functions reach the servers above on 127.0.0.1; from a container use host.docker.internal):\n" +
		"  sam build && sam local start-lambda --env-vars " + s.SAMEnvFile + "\n"
}

// printEvents follows the event log and prints each lifecycle event.
func printEvents(ctx context.Context, path string) {
	var offset int64
	if fi, err := os.Stat(path); err == nil {
		offset = fi.Size() // a persisted log's history is not news
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if _, err := f.Seek(offset, io.SeekStart); err == nil {
			r := bufio.NewReader(f)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					break
				}
				offset += int64(len(line))
				var l lifecyclelog.Line
				if json.Unmarshal([]byte(line), &l) == nil {
					seen := "never"
					if l.Detail.LastSeenAt != nil {
						seen = *l.Detail.LastSeenAt
					}
					fmt.Printf("EVENT %s %s (%s, %s) status=%s lastSeenAt=%s\n", l.DetailType, l.Detail.SatelliteID, l.Detail.Name, l.Detail.Region, l.Detail.Status, seen)
				}
			}
		}
		f.Close()
	}
}
