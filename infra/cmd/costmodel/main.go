// Command costmodel prints what the backend costs a month, at 1,000 and at
// 100,000 satellites, with DynamoDB on demand and provisioned, multiplied
// out from figures the tests measure (make cost runs TestRequestBudgets,
// TestHeartbeatCapacityInSteadyState and
// TestSweepReadsGrowWithStaleSatellitesNotTheFleet with COST_FIGURES_DIR
// set, then this program): requests, capacity units (tables and indexes),
// CPU time, log lines and handler durations per message type, what a
// satellite and a result store, and what the heartbeat sweep's passes read
// and take. The rest it reads from template.yaml: memory sizes, the access
// log's format and retention, tables, projections, point-in-time recovery,
// provisioned minimums. Prices are AWS list prices with their sources, in
// prices.go.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

func main() {
	dir := flag.String("figures", ".build/cost", "directory of the measured figures")
	fleets := flag.String("satellites", "1000,100000", "fleet sizes, satellites connected all month, comma-separated")
	var sc scenario
	flag.DurationVar(&sc.heartbeat, "heartbeat", 15*time.Second, "heartbeat interval")
	flag.DurationVar(&sc.resultEvery, "result-every", 30*time.Second, "interval of each check's results")
	flag.Float64Var(&sc.assignments, "assignments", 1, "assignments (checks) per satellite")
	flag.Float64Var(&sc.environments, "environments", 2, "environments each assignment runs in, one result each (the demo's two); 0: env-less runs")
	flag.DurationVar(&sc.reconnectEvery, "reconnect-every", 2*time.Hour, "how often a satellite reconnects (API Gateway closes a connection after 2 h)")
	flag.Float64Var(&sc.refreshesPerMon, "refreshes", 4, "script-package publications a month (each satellite fetches the manifest and one blob)")
	flag.Float64Var(&sc.coldShare, "cold-share", 1, "share of frames handled by an instance without the connection's binding cached (near 1 at fleet scale: many instances)")
	flag.Float64Var(&sc.messageMemory, "memory", 0, "the message function's memory in MB (0: template MemorySize)")
	flag.DurationVar(&sc.retention, "retention", 30*24*time.Hour, "result retention (RESULT_RETENTION_DAYS)")
	flag.Float64Var(&sc.awsLatencyMs, "aws-latency", 6, "ms a handler waits per AWS request (DynamoDB, S3, @connections), one after the other (AWS documents single-digit ms for DynamoDB)")
	flag.Float64Var(&sc.streamShards, "stream-shards", 0, "shards of the Results table's stream (0: one per partition: 10 GB stored, 1,000 WCU)")
	flag.Float64Var(&sc.minShards, "min-stream-shards", 4, "shards at least, when derived")
	flag.Float64Var(&sc.feedMs, "feed-ms", 25, "the feed function's billed ms an invocation (one SendMessageBatch)")
	flag.Float64Var(&sc.blobBytes, "blob-bytes", 50000, "bytes of the script-package blob each satellite fetches per refresh")
	flag.Float64Var(&sc.authReplyKB, "authenticated-kb", 2, "KB of the authenticated reply (assignments, sandbox policy)")
	flag.Float64Var(&sc.minRCU, "min-rcu", 1, "provisioned read capacity each table and index keeps, when the template has no scalable targets")
	flag.Float64Var(&sc.minWCU, "min-wcu", 1, "provisioned write capacity each table and index keeps, likewise")
	telemetryEvery := flag.Duration("telemetry-every", time.Minute, "the telemetry variant: a logstream batch of about 8 KB this often per satellite")
	flag.Parse()
	sc.emfLineBytes = 450

	var sizes []float64
	for _, s := range strings.Split(*fleets, ",") {
		n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || n < 1 {
			fail(fmt.Errorf("-satellites %q: want fleet sizes", *fleets))
		}
		sizes = append(sizes, n)
	}
	tpl, err := samtemplate.Load("template.yaml")
	if err != nil {
		fail(fmt.Errorf("run from the repository root: %w", err))
	}
	st, err := readStack(tpl, sc)
	if err != nil {
		fail(err)
	}
	fig, err := readFigures(*dir)
	if err != nil {
		fail(err)
	}
	r := report{fig: fig, st: st, sc: sc, sizes: sizes, telemetryEvery: *telemetryEvery, tpl: tpl}
	if err := r.print(os.Stdout); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "costmodel:", err)
	os.Exit(1)
}
