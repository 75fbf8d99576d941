package main

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

// line is one line of the bill: dollars whatever the capacity mode, and
// DynamoDB units the mode prices. A line only one mode has (provisioned
// capacity's minimums) names it.
type line struct {
	item, detail string
	dollars      float64
	wru, rru     float64
	only         string
}

func (l line) cost(m capacityMode) float64 {
	if l.only != "" && l.only != m.name {
		return 0
	}
	return l.dollars + l.wru/1e6*m.perMillionWRU + l.rru/1e6*m.perMillionRRU
}

// frameRow is a frame type's figures in the scenario.
type frameRow struct {
	name                                 string
	volume, read, write, indexWrite      float64
	posts, cpuMs, localMs, waitsMs, logB float64
	function                             string
}

// bill is a fleet's month: the lines that grow with it and those a stack
// pays whatever its size.
type bill struct {
	sc       scenario
	frames   []frameRow
	lines    []line
	perStack []line
	shards   float64
	feedGB   float64
	messages float64 // API Gateway's billed messages
	warnings []string
}

func total(ls []line, m capacityMode) float64 {
	t := 0.0
	for _, l := range ls {
		t += l.cost(m)
	}
	return t
}

// all is what the stack costs in a mode.
func (b bill) all(m capacityMode) float64 { return total(b.lines, m) + total(b.perStack, m) }

// model multiplies the figures out for a scenario.
func model(fig figures, st stack, sc scenario) (bill, error) {
	b := bill{sc: sc}
	secs := month.Seconds()
	n := sc.satellites
	connects := n * secs / sc.reconnectEvery.Seconds()
	result := sc.resultFigure()
	volume := map[string]float64{
		"heartbeat":                       n * secs / sc.heartbeat.Seconds(),
		result:                            n * sc.streams() * secs / sc.resultEvery.Seconds(),
		"$connect":                        connects,
		"authenticate":                    connects,
		"$disconnect":                     connects,
		"request_script_package_manifest": n * sc.refreshesPerMon,
		"request_script_package_blob":     n * sc.refreshesPerMon,
	}
	order := []string{"heartbeat", result, "$connect", "authenticate", "$disconnect", "request_script_package_manifest", "request_script_package_blob"}
	if sc.telemetryEvery > 0 {
		volume["telemetry_logstream_8k"] = n * secs / sc.telemetryEvery.Seconds()
		order = append(order, "telemetry_logstream_8k")
	}
	logs := st.accessLogs[sc.accessLog]

	var messages, invocations, gbSeconds, rru, wru, indexWRU, gets, puts, objectGB, instanceMinutes, accessGB, appLogGB float64
	for _, name := range order {
		f, ok := fig.messages[name]
		if !ok {
			return b, fmt.Errorf("no figure for %s", name)
		}
		v, p := volume[name], f.at(sc.coldShare)
		fn := functionOf(name)
		waits := (p.requests + float64(f.S3) + float64(f.Posts)) * sc.awsLatencyMs
		ms := durationMs(waits, p.cpuMs, st.memory[fn])
		b.frames = append(b.frames, frameRow{name, v, p.read, p.write, p.indexWrite, float64(f.Posts), p.cpuMs, f.DurationMs, waits, float64(f.LogBytes), fn})
		// $connect and $disconnect are not billed as messages; pushes are.
		if name != "$connect" && name != "$disconnect" {
			messages += v * f.billedMessages()
		}
		messages += v * float64(f.Posts)
		invocations += v
		gbSeconds += v * ms / 1000 * st.memory[fn] / 1024
		instanceMinutes += v * ms / 1000 / 60
		rru += v * p.read
		wru += v * p.write
		indexWRU += v * p.indexWrite
		gets += v * float64(f.S3-f.S3Puts)
		puts += v * float64(f.S3Puts)
		objectGB += v * float64(f.ObjectBytes) / 1e9
		accessGB += v * logs.bytes[eventOf(name)] / 1e9
		appLogGB += v * float64(f.LogBytes) / 1e9
	}
	// Each refresh pushes refresh_script_packages to every satellite (the
	// fan-out function's own time and job writes are a few requests per
	// refresh, left out). A keepalive answers one heartbeat per
	// KeepaliveSeconds of a connection's age (a post from the heartbeat's
	// own invocation).
	messages += n * sc.refreshesPerMon
	keepalives := 0.0
	if st.keepalive > 0 {
		keepalives = n * secs / st.keepalive.Seconds()
	}
	messages += keepalives
	// EMF lines: per warm instance, about one line per frame type a minute
	// (counts are aggregated per clock minute); instances ≈ busy time.
	busyInstances := math.Max(1, instanceMinutes/(secs/60))
	emfGB := busyInstances * float64(len(order)) * (secs / 60) * sc.emfLineBytes / 1e9
	edges := 2 * connects // connected and disconnected per reconnect

	storage := storageOf(fig, st, sc, volume[result], volume["telemetry_logstream_8k"])
	results := volume[result]
	resultBytes := float64(fig.messages[result].ItemBytes)
	resultWCU := results / secs * 2 * math.Ceil(resultBytes/1024) // a transactional put
	b.shards = sc.streamShards
	if b.shards == 0 {
		b.shards = math.Max(sc.minShards, partitions(storage.resultsBaseGiB, resultWCU, 0))
	}
	feed, feedGB, feedWarn := feedLine(sc, st, b.shards, results, float64(fig.messages[result].FeedEntryBytes))
	b.feedGB = feedGB
	if feedWarn != "" {
		b.warnings = append(b.warnings, feedWarn)
	}
	// CloudFront carries every frame both ways. To the origin: what
	// satellites send; to them: replies and pushes.
	toOrigin := 0.0
	for _, name := range order {
		if name != "$connect" && name != "$disconnect" {
			toOrigin += volume[name] * (float64(fig.messages[name].FrameBytes) + wsFrameOverhead) / 1e9
		}
	}
	toViewer := (connects*sc.authReplyKB*1000 + (keepalives+volume["telemetry_logstream_8k"])*float64(len(`{"type":"keepalive"}`)+2) + n*sc.refreshesPerMon*(sc.blobBytes*4/3+1000)) / 1e9
	cloudFront := connects/1e4*cloudFrontPerTenThousandHTTPS + connects/1e6*cloudFrontPerMillionFunctions + toOrigin*cloudFrontPerGBToOrigin + toViewer*cloudFrontPerGBToInternet

	logsPrice := logsPerGBIngested
	if logs.group.infrequent {
		logsPrice = logsIAPerGBIngested
	}
	lambdaLogGB := appLogGB + emfGB
	b.lines = []line{
		{item: "API Gateway messages", detail: fmt.Sprintf("%s (frames and pushes; %s keepalives)", count(messages), count(keepalives)), dollars: tiered(messages, apiGatewayMessageTiers)},
		{item: "API Gateway connection minutes", detail: count(n * secs / 60), dollars: n * secs / 60 / 1e6 * apiGatewayPerMillionConnMinute},
		{item: "API Gateway access logs", detail: accessLogDetail(logs, accessGB, invocations),
			dollars: accessGB*logsPrice + storedLogGB(accessGB, logs.compressed, logs.group)*logsPerGBMonth},
		{item: "Lambda requests", detail: count(invocations), dollars: invocations / 1e6 * lambdaPerMillionRequests},
		{item: "Lambda duration", detail: fmt.Sprintf("%s GB-s, arm64; message function at %.0f MB", count(gbSeconds), st.memory["MessageFunction"]), dollars: tiered(gbSeconds, lambdaGBSecondTiers)},
		{item: "Lambda logs (INFO lines, EMF)", detail: fmt.Sprintf("%.2f GB (%.2f GB of lines at INFO, %.2f GB EMF), kept %.0f days", lambdaLogGB, appLogGB, emfGB, st.functionLogs.retentionDays),
			dollars: tiered(lambdaLogGB, lambdaLogTiers) + storedLogGB(lambdaLogGB, logs.compressedOr(0.15), st.functionLogs)*logsPerGBMonth},
		{item: "DynamoDB writes", detail: fmt.Sprintf("%s WRU (%s of them on indexes)", count(wru), count(indexWRU)), wru: wru},
		{item: "DynamoDB reads", detail: count(rru) + " RRU", rru: rru},
		{item: "DynamoDB storage", detail: storage.detail(), dollars: storage.allGiB() * dynamoPerGBMonth},
		{item: "DynamoDB point-in-time recovery", detail: storage.pitrDetail(), dollars: storage.pitrGiB * dynamoPITRPerGBMonth},
		{item: "S3 requests", detail: fmt.Sprintf("%s GET and HEAD (cold instances), %s PUT", count(gets), count(puts)), dollars: gets/1000*s3PerThousandGET + puts/1000*s3PerThousandPUT},
		{item: "EventBridge events", detail: count(edges) + " lifecycle edges", dollars: edges / 1e6 * eventBridgePerMillionEvents},
		{item: "CloudFront (satellite endpoint)", detail: fmt.Sprintf("%s connections, %s GB to the API, %s GB to satellites", count(connects), thousandsDecimal(toOrigin, 1), thousandsDecimal(toViewer, 2)), dollars: cloudFront},
		feed,
	}
	if objectGB > 0 {
		held := objectGB * st.telemetryRetention.Seconds() / secs
		b.lines = append(b.lines, line{item: "S3 storage (telemetry)", detail: fmt.Sprintf("%.0f GB held (%s retention)", held, st.telemetryRetention), dollars: held * s3PerGBMonth})
	}
	b.perStack = perStack(fig, st, sc, b.lines)
	b.messages = messages
	return b, nil
}

// storedLogGB is what a month's ingestion keeps stored, archived
// compressed: its retention's worth (a year where logs never expire).
func storedLogGB(ingestedGB, compressed float64, g logGroup) float64 {
	days := g.retentionDays
	if days == 0 {
		days = 365
	}
	return ingestedGB * compressed * days / 30
}

// compressedOr is the variant's compressed share, or def when it has none
// (access logs off).
func (v accessLogVariant) compressedOr(def float64) float64 {
	if v.compressed > 0 {
		return v.compressed
	}
	return def
}

func accessLogDetail(v accessLogVariant, gb, lines float64) string {
	if v.bytes == nil {
		return "access logs off"
	}
	return fmt.Sprintf("%s lines, %.0f B a message line, %s GB; kept %.0f days, %.0f %% compressed", count(lines), v.bytes[eventMessage], thousandsDecimal(gb, 1), v.group.retentionDays, 100*v.compressed)
}

// wsFrameOverhead is a WebSocket frame's header, client to server (masked,
// payload under 64 KiB).
const wsFrameOverhead = 8

// feedLine is the results feed: the stream's batches, each packed into
// messages of up to 64 KiB, sent in one SendMessageBatch; the consumer
// receives and deletes each message.
func feedLine(sc scenario, st stack, shards, results, entryBytes float64) (line, float64, string) {
	secs := month.Seconds()
	perSecond := results / secs
	// Lambda polls a shard four times a second; within the window a batch
	// holds what the shard received.
	window := math.Max(st.feedWindow.Seconds(), 0.25)
	perBatch := math.Max(1, perSecond/shards*window)
	invocations := results / perBatch
	messagesPerBatch := math.Ceil(perBatch * entryBytes / (64 << 10))
	messages := invocations * messagesPerBatch
	// Send: one 64 KiB chunk a message. Receive and delete: a consumer
	// long-polling all the time gets about one message a call at this
	// rate (more when it falls behind, which only lowers this).
	sqsRequests := 3 * messages
	warn := ""
	if sqsRequests > sqsFirstTier {
		warn = fmt.Sprintf("the feed makes %.0f SQS requests a month, past the first price tier (not modeled)", sqsRequests)
	}
	gbs := invocations * sc.feedMs / 1000 * st.memory["FeedFunction"] / 1024
	dollars := sqsRequests/1e6*sqsPerMillionRequests + invocations/1e6*lambdaPerMillionRequests + gbs*lambdaPerGBSecondArm
	detail := fmt.Sprintf("%s messages (%.0f results each, %s window, %.0f shards): %s SQS requests", count(messages), perBatch/messagesPerBatch, st.feedWindow, shards, count(sqsRequests))
	return line{item: "Results feed (SQS, feed function)", detail: detail, dollars: dollars}, results * entryBytes / 1e9, warn
}

// stored is what the tables hold in the steady state.
type stored struct {
	byTable              map[string][2]float64 // GiB in the table and in its indexes
	pitrGiB              float64
	resultsBaseGiB       float64
	resultBase, resultIx float64 // bytes a result takes in the table and in its indexes
}

func (s stored) allGiB() float64 {
	t := 0.0
	for _, v := range s.byTable {
		t += v[0] + v[1]
	}
	return t
}

func (s stored) detail() string {
	var ids []string
	for id := range s.byTable {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	d := fmt.Sprintf("%s: a result %.0f B + %.0f B indexed", size(s.allGiB()), s.resultBase, s.resultIx)
	for _, id := range ids {
		if v := s.byTable[id]; id != "ResultsTable" && v[0]+v[1] > 0 {
			d += fmt.Sprintf("; %s %s", strings.TrimSuffix(id, "Table"), size(v[0]+v[1]))
		}
	}
	return d
}

func (s stored) pitrDetail() string {
	return fmt.Sprintf("%s of tables with PITR on (results %s)", size(s.pitrGiB), size(s.resultsBaseGiB))
}

// storageOf is what the tables hold, from the items the demo satellite
// stored: the Satellites and Connections tables' per satellite, a result's
// for each result within the retention, and a telemetry batch's marks for
// ConnectionRecordTTL (their TTL) per batch of the variant. TTL deletes
// within days of expiry on AWS; that lag is not counted.
func storageOf(fig figures, st stack, sc scenario, resultsAMonth, batchesAMonth float64) stored {
	s := stored{byTable: map[string][2]float64{}}
	secs := month.Seconds()
	for id, tb := range st.tables {
		items := fig.stored[id]
		var base, ix float64
		switch id {
		case "ResultsTable":
			s.resultBase, s.resultIx = meanBilledBytes(items, tb)
			count := resultsAMonth * sc.retention.Seconds() / secs
			base, ix = count*s.resultBase, count*s.resultIx
		case "TelemetryTable":
			mb, mi := meanBilledBytes(items, tb)
			alive := batchesAMonth / secs * satellite.ConnectionRecordTTL.Seconds()
			base, ix = alive*mb, alive*mi
		case "JobsTable": // a few jobs a month, each kept a day
		default:
			tableBytes, indexBytes := totalBilledBytes(items, tb)
			base, ix = sc.satellites*tableBytes, sc.satellites*indexBytes
		}
		s.byTable[id] = [2]float64{base / gib, ix / gib}
		if tb.pitr {
			s.pitrGiB += base / gib
		}
		if id == "ResultsTable" {
			s.resultsBaseGiB = base / gib
		}
	}
	return s
}

// perStack is what a stack pays whatever its fleet: metrics, alarms,
// dashboards and keys; the heartbeat sweep; provisioned capacity's
// minimums and its auto scaling alarms.
func perStack(fig figures, st stack, sc scenario, fleet []line) []line {
	sw := sweepCostOf(fig.sweep, st, sc, sweep.Passes)
	hours := month.Hours()
	minimums := "the template's minimums"
	if !st.minimumsFromTemplate {
		minimums = fmt.Sprintf("%.0f read, %.0f write each, no capacity stacks in the template", sc.minRCU, sc.minWCU)
	}
	// Auto scaling keeps the fleet's steady load over the target
	// utilization (what the fleet's lines bill); the minimums cost more
	// only where they exceed it. Summed over the stack, not per table: an
	// approximation that is exact when every table's load is above its
	// minimum or none is.
	var wru, rru float64
	for _, l := range fleet {
		wru, rru = wru+l.wru, rru+l.rru
	}
	secs := month.Seconds()
	extraRCU := math.Max(0, st.minRCU-rru/2/secs/dynamoTargetUtilization)
	extraWCU := math.Max(0, st.minWCU-wru/secs/dynamoTargetUtilization)
	return []line{
		{item: "Metrics, alarms, dashboard, key", detail: fmt.Sprintf("%.0f metric series at most, %.0f alarms, %.0f dashboard, %.0f KMS key", st.metricSeries, st.alarms, st.dashboards, st.kmsKeys),
			dollars: st.metricSeries*metricPerMonth + st.alarms*alarmPerMonth + st.dashboards*dashboardPerMonth + st.kmsKeys*kmsKeyPerMonth},
		{item: "Heartbeat sweep", detail: fmt.Sprintf("%s invocations of %d passes, %s GB-s, %s RRU", count(sw.invocations), sweep.Passes, count(sw.gbSeconds), count(sw.readUnits)),
			dollars: sw.invocations/1e6*lambdaPerMillionRequests + sw.gbSeconds*lambdaPerGBSecondArm, rru: sw.readUnits},
		{item: "Provisioned minimums over the load", detail: fmt.Sprintf("%.0f RCU, %.0f WCU over %.0f tables and indexes (%s); %.0f RCU, %.0f WCU above the fleet's load", st.minRCU, st.minWCU, st.tablesAndIndexes, minimums, extraRCU, extraWCU),
			dollars: hours * (extraRCU*dynamoPerRCUHour + extraWCU*dynamoPerWCUHour), only: "provisioned"},
		{item: "Auto scaling alarms", detail: fmt.Sprintf("%.0f scalable targets, %d alarms each", st.scalableTargets, alarmsPerScalingPolicy),
			dollars: st.scalableTargets * alarmsPerScalingPolicy * alarmPerMonth, only: "provisioned"},
	}
}

// sweepCost is what the heartbeat sweep costs a month: one scheduled
// invocation per st.sweepEvery, of sweep.Passes passes sweep.PassEvery
// apart (passes > 1) or of one pass (passes == 1, as before the 15 s
// passes), from the figures TestSweepReadsGrowWithStaleSatellitesNotTheFleet
// measured with nothing stale: what a full pass (the first) and a later one
// read and take, and the online gauge. Lambda bills the waits between
// passes. An empty Query reads nothing, and DynamoDB Local reports 0 units
// for it, but AWS bills it the minimum read (0.5 unit, eventually
// consistent): each query counts at least that. On AWS a pass waits at
// least sc.awsLatencyMs for each of its queries, which run one after
// the other.
type sweepCost struct {
	invocations, gbSeconds, readUnits float64
}

func sweepCostOf(f map[string]float64, st stack, sc scenario, passes int) sweepCost {
	invocations := month.Seconds() / st.sweepEvery.Seconds()
	fullRead := math.Max(f["fullPassReadUnits"], 0.5*f["fullPassQueries"])
	laterRead := math.Max(f["laterPassReadUnits"], 0.5*f["laterPassRequests"])
	fullMs := math.Max(f["fullPassMs"], f["fullPassRequests"]*sc.awsLatencyMs)
	laterMs := math.Max(f["laterPassMs"], f["laterPassRequests"]*sc.awsLatencyMs)
	later := float64(passes - 1)
	// Passes start PassEvery apart and each ends well before the next
	// slot: an invocation lasts until the last pass ends.
	seconds := fullMs / 1000
	if passes > 1 {
		seconds = later*sweep.PassEvery.Seconds() + laterMs/1000
	}
	c := sweepCost{invocations: invocations}
	c.gbSeconds = invocations * seconds * st.memory["SweepFunction"] / 1024
	gauges := month.Seconds() / sweep.OnlineEvery.Seconds()
	c.readUnits = invocations*(fullRead+later*laterRead) + gauges*f["gaugeReadUnits"]/f["gaugeSatellites"]*sc.satellites
	return c
}

// count writes a monthly count: 357.5 M, 35.75 B.
func count(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f B", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f M", v/1e6)
	}
	return thousands(v)
}

// size writes GiB, in MiB below one.
func size(g float64) string {
	if g < 1 {
		return fmt.Sprintf("%.1f MiB", g*1024)
	}
	return fmt.Sprintf("%s GiB", thousandsDecimal(g, 1))
}
