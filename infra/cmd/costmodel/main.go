// Command costmodel prints what the backend costs per month per 1,000
// satellites, multiplied out from the per-message figures the tests measure
// (make cost runs TestRequestBudgets, TestHeartbeatCapacityInSteadyState
// and TestSweepReadsGrowWithStaleSatellitesNotTheFleet with
// COST_FIGURES_DIR set, then this program): requests, capacity units and
// handler durations per message type, the size of a stored result, and
// what the heartbeat sweep's passes read and take. Prices are AWS list
// prices, in one table below with their date.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

// Prices: AWS list prices in us-east-1, on-demand, without free tiers, as
// published in 2025 (DynamoDB's after its November 2024 reduction).
// Update them here; the table in docs/COST.md is this program's output.
const (
	pricesAsOf = "AWS list prices, us-east-1, 2025 (DynamoDB on-demand after the November 2024 reduction); free tiers left out"

	apiGatewayPerMillionMessages   = 1.00 // WebSocket, first billion a month; 32 KB per message
	apiGatewayPerMillionConnMinute = 0.25
	lambdaPerMillionRequests       = 0.20
	lambdaPerGBSecondArm           = 0.0000133334
	dynamoPerMillionWRU            = 0.625
	dynamoPerMillionRRU            = 0.125
	dynamoPerGBMonth               = 0.25
	s3PerThousandGET               = 0.0004 // GET and HEAD
	eventBridgePerMillionEvents    = 1.00
	logsPerGBIngested              = 0.50
	metricPerMonth                 = 0.30 // custom metric (EMF), first 10,000
	alarmPerMonth                  = 0.10
	dashboardPerMonth              = 3.00
	kmsKeyPerMonth                 = 1.00 // customer managed key (the alarm topic's); its requests are a few per alarm
	sqsPerMillionRequests          = 0.40 // standard queue; each 64 KiB of a request's payload is one request
	// CloudFront, North America and Europe (aws.amazon.com/cloudfront/pricing,
	// read 2026-12): a WebSocket upgrade is one HTTPS request; bytes to
	// the viewer are data transfer out, bytes the viewer sends go to the
	// origin at the regional data-transfer-to-origin price.
	cloudFrontPerTenThousandHTTPS = 0.0100
	cloudFrontPerGBToInternet     = 0.085
	cloudFrontPerGBToOrigin       = 0.020
	cloudFrontPerMillionFunctions = 0.10
)

// figure is one message's measured cost (shared/wshandler/figures_test.go).
type figure struct {
	DynamoDB       int     `json:"dynamoRequests"`
	S3             int     `json:"s3Requests"`
	Posts          int     `json:"posts"`
	ReadUnits      float64 `json:"readUnits"`
	WriteUnits     float64 `json:"writeUnits"`
	ColdDynamoDB   int     `json:"coldDynamoRequests"`
	ColdReadUnits  float64 `json:"coldReadUnits"`
	ColdWriteUnits float64 `json:"coldWriteUnits"`
	DurationMs     float64 `json:"durationMs"`
	ItemBytes      int     `json:"itemBytes"`
	FeedEntryBytes int     `json:"feedEntryBytes"`
}

type scenario struct {
	satellites      float64
	heartbeat       time.Duration
	resultEvery     time.Duration
	assignments     float64
	reconnectEvery  time.Duration
	refreshesPerMon float64
	coldShare       float64
	memoryMB        float64
	retention       time.Duration
	emfLineBytes    float64
	metricSeries    float64
	alarms          float64
	dashboards      float64
	kmsKeys         float64
	optionalKmsKeys float64
	dynamoLatencyMs float64

	// The results feed: the event source mapping's batching window (the
	// template's ResultsFeedBatchingSeconds), the Results table's stream
	// shards (one per table partition; an assumption), and the feed
	// function's billed time an invocation (an assumption: one
	// SendMessageBatch in the region).
	feedWindow  time.Duration
	feedShards  float64
	feedMs      float64
	feedMemory  float64
	keepalive   time.Duration
	blobBytes   float64
	frameBytes  map[string]float64 // the fixtures' frames, by type
	authReplyKB float64

	// The heartbeat sweep: its function's memory and the rate of its
	// schedule (one invocation of sweep.Passes passes).
	sweepMemory float64
	sweepEvery  time.Duration
}

const month = 30 * 24 * time.Hour

func main() {
	dir := flag.String("figures", ".build/cost", "directory of the measured figures")
	var sc scenario
	flag.Float64Var(&sc.satellites, "satellites", 1000, "satellites connected all month")
	flag.DurationVar(&sc.heartbeat, "heartbeat", 15*time.Second, "heartbeat interval")
	flag.DurationVar(&sc.resultEvery, "result-every", 30*time.Second, "interval of each assignment's results")
	flag.Float64Var(&sc.assignments, "assignments", 2, "assignments per satellite")
	flag.DurationVar(&sc.reconnectEvery, "reconnect-every", 2*time.Hour, "how often a satellite reconnects (API Gateway closes a connection after 2 h)")
	flag.Float64Var(&sc.refreshesPerMon, "refreshes", 4, "script-package publications a month (each satellite fetches the manifest and one blob)")
	flag.Float64Var(&sc.coldShare, "cold-share", 1, "share of frames handled by an instance without the connection's binding cached (near 1 at fleet scale: many instances)")
	flag.Float64Var(&sc.memoryMB, "memory", 512, "the message function's memory (template MemorySize)")
	flag.DurationVar(&sc.retention, "retention", 30*24*time.Hour, "result retention (RESULT_RETENTION_DAYS)")
	flag.Float64Var(&sc.dynamoLatencyMs, "dynamodb-latency", 6, "per DynamoDB request on AWS, ms, for the adjusted Lambda duration (AWS documents single-digit ms)")
	flag.Float64Var(&sc.feedShards, "stream-shards", 4, "shards of the Results table's stream (one per partition): each sends at least one feed message a batching window")
	flag.Float64Var(&sc.feedMs, "feed-ms", 25, "the feed function's billed ms an invocation (one SendMessageBatch)")
	flag.Float64Var(&sc.blobBytes, "blob-bytes", 50000, "bytes of the script-package blob each satellite fetches per refresh")
	flag.Float64Var(&sc.authReplyKB, "authenticated-kb", 2, "KB of the authenticated reply (assignments, sandbox policy)")
	flag.Parse()
	sc.emfLineBytes = 450
	// Metric series from the metrics catalogue; alarms, dashboards and KMS
	// keys from the template.
	for _, m := range metrics.All {
		sc.metricSeries += math.Max(1, float64(len(m.Values)))
	}
	tpl, err := samtemplate.Load("template.yaml")
	if err != nil {
		fmt.Fprintln(os.Stderr, "costmodel: run from the repository root:", err)
		os.Exit(1)
	}
	sc.alarms = float64(len(tpl.ResourcesOfType("AWS::CloudWatch::Alarm")))
	if sc.feedWindow, err = secondsParameter(tpl, "ResultsFeedBatchingSeconds"); err != nil {
		fail(err)
	}
	if sc.keepalive, err = secondsParameter(tpl, "KeepaliveSeconds"); err != nil {
		fail(err)
	}
	sc.feedMemory = 128
	if m, ok := tpl.Resources["FeedFunction"].Properties["MemorySize"].(float64); ok {
		sc.feedMemory = m
	}
	// The frames satellites send, as the event fixtures hold them.
	sc.frameBytes = map[string]float64{}
	for _, name := range []string{"heartbeat", "result"} {
		var ev struct{ Body string }
		if err := readJSON(filepath.Join("events", "message-"+name+".json"), &ev); err != nil {
			fail(err)
		}
		sc.frameBytes[name] = float64(len(ev.Body))
	}
	sc.sweepMemory = tpl.MemorySize("SweepFunction")
	sc.sweepEvery = time.Minute
	if ev, ok := tpl.Resources["SweepFunction"].Properties["Events"].(map[string]any)["EveryMinute"].(map[string]any); ok {
		if p, ok := ev["Properties"].(map[string]any); ok && p["Schedule"] != "rate(1 minute)" {
			fail(fmt.Errorf("SweepFunction's schedule is %v: this model knows rate(1 minute)", p["Schedule"]))
		}
	}
	sc.dashboards = float64(len(tpl.ResourcesOfType("AWS::CloudWatch::Dashboard")))
	// Keys created only when an option is on (the connectivity
	// notifications' topic key) are left out of the fixed cost.
	for _, id := range tpl.ResourcesOfType("AWS::KMS::Key") {
		if tpl.Resources[id].Condition == "" {
			sc.kmsKeys++
		} else {
			sc.optionalKmsKeys++
		}
	}
	if err := run(*dir, sc); err != nil {
		fmt.Fprintln(os.Stderr, "costmodel:", err)
		os.Exit(1)
	}
}

type line struct {
	item, detail string
	dollars      float64
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "costmodel:", err)
	os.Exit(1)
}

// secondsParameter is a Number parameter's default, in seconds.
func secondsParameter(tpl *samtemplate.Template, name string) (time.Duration, error) {
	v, ok := tpl.Parameters[name].Default.(float64)
	if !ok {
		return 0, fmt.Errorf("template parameter %s has no numeric default", name)
	}
	return time.Duration(v * float64(time.Second)), nil
}

// wsFrameOverhead is a WebSocket frame's header, client to server (masked,
// payload under 64 KiB).
const wsFrameOverhead = 8

// feedLine is the results feed: the stream's batches, each packed into
// messages of up to 64 KiB, sent in one SendMessageBatch; the consumer
// receives and deletes each message.
func feedLine(sc scenario, results, entryBytes float64) (line, float64) {
	secs := month.Seconds()
	perSecond := results / secs
	// Lambda polls a shard four times a second; within the window a batch
	// holds what the shard received.
	window := math.Max(sc.feedWindow.Seconds(), 0.25)
	perBatch := math.Max(1, perSecond/sc.feedShards*window)
	invocations := results / perBatch
	messagesPerBatch := math.Ceil(perBatch * entryBytes / (64 << 10))
	messages := invocations * messagesPerBatch
	// Send: one 64 KiB chunk a message. Receive and delete: a consumer
	// long-polling all the time gets about one message a call at this
	// rate (more when it falls behind, which only lowers this).
	sqsRequests := 3 * messages
	gbs := invocations * sc.feedMs / 1000 * sc.feedMemory / 1024
	dollars := sqsRequests/1e6*sqsPerMillionRequests + invocations/1e6*lambdaPerMillionRequests + gbs*lambdaPerGBSecondArm
	detail := fmt.Sprintf("%.1f M messages (%.0f results each, %s window, %.0f shards): %.1f M SQS requests, %.1f M invocations", messages/1e6, perBatch/messagesPerBatch, sc.feedWindow, sc.feedShards, sqsRequests/1e6, invocations/1e6)
	return line{"Results feed (SQS, feed function)", detail, dollars}, results * entryBytes / 1e9
}

// sweepCost is what the heartbeat sweep costs a month: one scheduled
// invocation per sc.sweepEvery, of sweep.Passes passes sweep.PassEvery
// apart (passes > 1) or of one pass (passes == 1, as before the 15 s
// passes), from the figures TestSweepReadsGrowWithStaleSatellitesNotTheFleet
// measured with nothing stale: what a full pass (the first) and a later one
// read and take, and the online gauge. Lambda bills the waits between
// passes. An empty Query reads nothing, and DynamoDB Local reports 0 units
// for it, but AWS bills it the minimum read (0.5 unit, eventually
// consistent): each query counts at least that. On AWS a pass waits at
// least sc.dynamoLatencyMs for each of its queries, which run one after
// the other.
type sweepCost struct {
	invocations, gbSeconds, readUnits, dollars float64
}

func sweepCostOf(f map[string]float64, sc scenario, passes int) sweepCost {
	invocations := month.Seconds() / sc.sweepEvery.Seconds()
	fullRead := math.Max(f["fullPassReadUnits"], 0.5*f["fullPassQueries"])
	laterRead := math.Max(f["laterPassReadUnits"], 0.5*f["laterPassRequests"])
	fullMs := math.Max(f["fullPassMs"], f["fullPassRequests"]*sc.dynamoLatencyMs)
	laterMs := math.Max(f["laterPassMs"], f["laterPassRequests"]*sc.dynamoLatencyMs)
	later := float64(passes - 1)
	// Passes start PassEvery apart and each ends well before the next
	// slot: an invocation lasts until the last pass ends.
	seconds := fullMs / 1000
	if passes > 1 {
		seconds = later*sweep.PassEvery.Seconds() + laterMs/1000
	}
	c := sweepCost{invocations: invocations}
	c.gbSeconds = invocations * seconds * sc.sweepMemory / 1024
	gauges := month.Seconds() / sweep.OnlineEvery.Seconds()
	c.readUnits = invocations*(fullRead+later*laterRead) + gauges*f["gaugeReadUnits"]/f["gaugeSatellites"]*sc.satellites
	c.dollars = invocations/1e6*lambdaPerMillionRequests + c.gbSeconds*lambdaPerGBSecondArm + c.readUnits/1e6*dynamoPerMillionRRU
	return c
}

func run(dir string, sc scenario) error {
	var msgs map[string]figure
	if err := readJSON(filepath.Join(dir, "messages.json"), &msgs); err != nil {
		return err
	}
	var hb map[string]float64
	if err := readJSON(filepath.Join(dir, "heartbeat.json"), &hb); err != nil {
		return err
	}
	var sweepFigures map[string]float64
	if err := readJSON(filepath.Join(dir, "sweep.json"), &sweepFigures); err != nil {
		return err
	}
	// The steady-state heartbeat (ten minutes of them): the index moves once
	// a minute, which one heartbeat alone does not show.
	heartbeat := msgs["heartbeat"]
	heartbeat.WriteUnits, heartbeat.ColdWriteUnits = hb["writeUnits"], hb["writeUnits"]
	msgs["heartbeat"] = heartbeat

	secs := month.Seconds()
	n := sc.satellites
	connects := n * secs / sc.reconnectEvery.Seconds()
	// Frames a month by type.
	volume := map[string]float64{
		"heartbeat":                       n * secs / sc.heartbeat.Seconds(),
		"result":                          n * sc.assignments * secs / sc.resultEvery.Seconds(),
		"$connect":                        connects,
		"authenticate":                    connects,
		"$disconnect":                     connects,
		"request_script_package_manifest": n * sc.refreshesPerMon,
		"request_script_package_blob":     n * sc.refreshesPerMon,
	}
	order := []string{"heartbeat", "result", "$connect", "authenticate", "$disconnect", "request_script_package_manifest", "request_script_package_blob"}

	var (
		messages, invocations, gbSeconds, gbSecondsAWS, rru, wru, s3 float64
		instanceMinutes                                              float64
	)
	fmt.Printf("Per-message figures (measured by the tests; duration in process against DynamoDB Local):\n\n")
	fmt.Printf("%-33s %12s %6s %6s %7s %7s %9s\n", "message", "a month", "RRU", "WRU", "posts", "ms", "AWS ms")
	for _, name := range order {
		f, ok := msgs[name]
		if !ok {
			return fmt.Errorf("no figure for %s in %s", name, dir)
		}
		v := volume[name]
		read := sc.coldShare*f.ColdReadUnits + (1-sc.coldShare)*f.ReadUnits
		write := sc.coldShare*f.ColdWriteUnits + (1-sc.coldShare)*f.WriteUnits
		requests := sc.coldShare*float64(f.ColdDynamoDB) + (1-sc.coldShare)*float64(f.DynamoDB)
		if f.ColdDynamoDB == 0 { // one instance kind measured ($connect, authenticate, $disconnect)
			read, write, requests = f.ReadUnits, f.WriteUnits, float64(f.DynamoDB)
		}
		// Lambda bills whole milliseconds. On AWS a handler waits for each
		// DynamoDB request over the network: at least that long.
		ms := math.Ceil(f.DurationMs)
		awsMs := math.Ceil(math.Max(f.DurationMs, requests*sc.dynamoLatencyMs))
		fmt.Printf("%-33s %12.0f %6.2f %6.2f %7d %7.0f %9.0f\n", name, v, read, write, f.Posts, ms, awsMs)
		// $connect and $disconnect are not billed as messages; pushes are.
		if name != "$connect" && name != "$disconnect" {
			messages += v
		}
		messages += v * float64(f.Posts)
		invocations += v
		gbSeconds += v * ms / 1000 * sc.memoryMB / 1024
		gbSecondsAWS += v * awsMs / 1000 * sc.memoryMB / 1024
		instanceMinutes += v * awsMs / 1000 / 60
		rru += v * read
		wru += v * write
		s3 += v * float64(f.S3)
	}
	// Each refresh pushes refresh_script_packages to every satellite (the
	// fan-out function's own time and job writes are a few requests per
	// refresh, left out).
	messages += n * sc.refreshesPerMon
	// A keepalive answers one heartbeat per KeepaliveSeconds of a
	// connection's age (a post from the heartbeat's own invocation).
	keepalives := 0.0
	if sc.keepalive > 0 {
		keepalives = n * secs / sc.keepalive.Seconds()
	}
	messages += keepalives
	// Stored results: a retention's worth, at the measured item size.
	resultBytes := float64(msgs["result"].ItemBytes)
	storedGB := volume["result"] * (sc.retention.Seconds() / secs) * resultBytes / 1e9
	// EMF lines: per warm instance, about one line per frame type a minute
	// (counts are aggregated per clock minute); instances ≈ busy time.
	busyInstances := math.Max(1, instanceMinutes/(secs/60))
	logGB := busyInstances * float64(len(order)) * (secs / 60) * sc.emfLineBytes / 1e9
	edges := 2 * connects // connected and disconnected per reconnect

	feed, feedGB := feedLine(sc, volume["result"], float64(msgs["result"].FeedEntryBytes))
	// CloudFront carries every frame both ways. To the origin: what
	// satellites send; to them: replies and pushes.
	toOrigin := (volume["heartbeat"]*(sc.frameBytes["heartbeat"]+wsFrameOverhead) + volume["result"]*(sc.frameBytes["result"]+wsFrameOverhead)) / 1e9
	toViewer := (connects*sc.authReplyKB*1000 + keepalives*float64(len(`{"type":"keepalive"}`)+2) + n*sc.refreshesPerMon*(sc.blobBytes*4/3+1000)) / 1e9
	cloudFront := connects/1e4*cloudFrontPerTenThousandHTTPS + connects/1e6*cloudFrontPerMillionFunctions + toOrigin*cloudFrontPerGBToOrigin + toViewer*cloudFrontPerGBToInternet

	lines := []line{
		{"API Gateway messages", fmt.Sprintf("%.1f M (frames and pushes; %.1f M keepalives)", messages/1e6, keepalives/1e6), messages / 1e6 * apiGatewayPerMillionMessages},
		{"API Gateway connection minutes", fmt.Sprintf("%.1f M", n*secs/60/1e6), n * secs / 60 / 1e6 * apiGatewayPerMillionConnMinute},
		{"Lambda requests", fmt.Sprintf("%.1f M", invocations/1e6), invocations / 1e6 * lambdaPerMillionRequests},
		{"Lambda duration (AWS-adjusted)", fmt.Sprintf("%.0f GB-s at %.0f MB, arm64 (%.0f GB-s as measured)", gbSecondsAWS, sc.memoryMB, gbSeconds), gbSecondsAWS * lambdaPerGBSecondArm},
		{"DynamoDB writes", fmt.Sprintf("%.1f M WRU", wru/1e6), wru / 1e6 * dynamoPerMillionWRU},
		{"DynamoDB reads", fmt.Sprintf("%.1f M RRU", rru/1e6), rru / 1e6 * dynamoPerMillionRRU},
		{"DynamoDB storage (results)", fmt.Sprintf("%.1f GB (%.0f B a result, %s retention)", storedGB, resultBytes, sc.retention), storedGB * dynamoPerGBMonth},
		{"S3 requests", fmt.Sprintf("%.0f GET and HEAD (cold instances)", s3), s3 / 1000 * s3PerThousandGET},
		{"EventBridge events", fmt.Sprintf("%.2f M lifecycle edges", edges/1e6), edges / 1e6 * eventBridgePerMillionEvents},
		{"CloudWatch Logs (EMF)", fmt.Sprintf("%.2f GB", logGB), logGB * logsPerGBIngested},
		{"CloudFront (satellite endpoint)", fmt.Sprintf("%.2f M connections, %.1f GB to the API, %.2f GB to satellites", connects/1e6, toOrigin, toViewer), cloudFront},
		feed,
	}
	total := 0.0
	fmt.Printf("\nScenario: %.0f satellites, heartbeat every %s, %.0f assignments with a result every %s each, a reconnect every %s, %.0f package refreshes a month, %.0f%% of frames on an instance without the binding cached; 30-day month.\n\n",
		n, sc.heartbeat, sc.assignments, sc.resultEvery, sc.reconnectEvery, sc.refreshesPerMon, 100*sc.coldShare)
	fmt.Printf("| %-34s | %-96s | %10s |\n", "item", "volume a month", "$ a month")
	fmt.Printf("|%s|%s|%s|\n", strings.Repeat("-", 36), strings.Repeat("-", 98), strings.Repeat("-", 12))
	for _, l := range lines {
		fmt.Printf("| %-34s | %-96s | %10.2f |\n", l.item, l.detail, l.dollars)
		total += l.dollars
	}
	fmt.Printf("| %-34s | %-96s | %10.2f |\n", "total", fmt.Sprintf("per %.0f satellites", n), total)
	fixed := sc.metricSeries*metricPerMonth + sc.alarms*alarmPerMonth + sc.dashboards*dashboardPerMonth + sc.kmsKeys*kmsKeyPerMonth
	sw, once := sweepCostOf(sweepFigures, sc, sweep.Passes), sweepCostOf(sweepFigures, sc, 1)
	fmt.Printf("\nPer satellite: $%.4f a month. Per stack, whatever the fleet: $%.2f a month (%.0f metric series at most, %.0f alarms, %.0f dashboard, %.0f KMS key, the heartbeat sweep).\n",
		total/n, fixed+sw.dollars, sc.metricSeries, sc.alarms, sc.dashboards, sc.kmsKeys)
	fmt.Printf("Heartbeat sweep: %.0f invocations of %d passes %s apart: %.0f GB-s at %.0f MB, arm64 (the waits between passes are billed), %.2f M read units: $%.2f a month; one pass a minute would be %.0f GB-s, %.2f M read units: $%.2f.\n",
		sw.invocations, sweep.Passes, sweep.PassEvery, sw.gbSeconds, sc.sweepMemory, sw.readUnits/1e6, sw.dollars, once.gbSeconds, once.readUnits/1e6, once.dollars)
	if sc.optionalKmsKeys > 0 {
		fmt.Printf("Connectivity notifications, when on, add %.0f KMS key ($%.2f a month) and their SNS deliveries.\n", sc.optionalKmsKeys, sc.optionalKmsKeys*kmsKeyPerMonth)
	}
	fmt.Printf("The feed's consumer receives %.1f GB a month: free within the region; from outside AWS, data transfer out adds about $%.2f (at $0.09/GB).\n", feedGB, feedGB*0.09)
	fmt.Printf("Prices: %s.\n", pricesAsOf)
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w (make cost measures the figures first)", err)
	}
	return json.Unmarshal(b, v)
}
