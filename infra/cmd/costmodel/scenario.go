package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/metrics"
)

const month = 30 * 24 * time.Hour

// scenario is what a fleet does in a month (the flags).
type scenario struct {
	satellites      float64
	heartbeat       time.Duration
	resultEvery     time.Duration
	assignments     float64
	environments    float64 // each assignment runs once per environment; 0: env-less runs
	reconnectEvery  time.Duration
	refreshesPerMon float64
	coldShare       float64
	retention       time.Duration
	awsLatencyMs    float64
	emfLineBytes    float64
	messageMemory   float64 // the message function's MB (0: the template's)

	// The results feed: the stream's shards (0: one per partition of the
	// Results table, at least minShards) and the feed function's billed ms
	// an invocation (an assumption: one SendMessageBatch in the region).
	streamShards, minShards float64
	feedMs                  float64

	blobBytes   float64
	authReplyKB float64

	// Provisioned capacity every table and index keeps when the template
	// has no scalable targets to read it from.
	minRCU, minWCU float64

	// Variants: a logstream batch every telemetryEvery per satellite (0:
	// none), and which of the stage's access log variants (0: the
	// template's defaults).
	telemetryEvery time.Duration
	accessLog      int
}

// streams is how many results a satellite reports each resultEvery.
func (sc scenario) streams() float64 { return sc.assignments * math.Max(1, sc.environments) }

// resultFigure is the figure of the scenario's results.
func (sc scenario) resultFigure() string {
	if sc.environments > 0 {
		return "result_in_environment"
	}
	return "result"
}

// stack is what the model reads from template.yaml and the metrics
// catalogue.
type stack struct {
	metricSeries, alarms, dashboards, kmsKeys, optionalKmsKeys float64

	feedWindow, keepalive time.Duration
	memory                map[string]float64 // MB by function logical id
	sweepEvery            time.Duration
	functionLogs          logGroup           // the message function's log group
	accessLogs            []accessLogVariant // the defaults' first
	tables                map[string]table
	telemetryRetention    time.Duration

	minRCU, minWCU         float64 // summed over the stack's tables and indexes
	scalableTargets        float64
	minimumsFromTemplate   bool
	tablesAndIndexes       float64
	offVariantFromTemplate bool
}

func readStack(tpl *samtemplate.Template, sc scenario) (stack, error) {
	e := evaluator{tpl}
	st := stack{memory: map[string]float64{}, tables: map[string]table{}}
	// Metric series from the metrics catalogue; alarms, dashboards and KMS
	// keys from the template.
	for _, m := range metrics.All {
		st.metricSeries += math.Max(1, float64(len(m.Values)))
	}
	st.alarms = float64(len(tpl.ResourcesOfType("AWS::CloudWatch::Alarm")))
	st.dashboards = float64(len(tpl.ResourcesOfType("AWS::CloudWatch::Dashboard")))
	// Keys created only when an option is on (the connectivity
	// notifications' topic key) are left out of the fixed cost.
	for _, id := range tpl.ResourcesOfType("AWS::KMS::Key") {
		if tpl.Resources[id].Condition == "" {
			st.kmsKeys++
		} else {
			st.optionalKmsKeys++
		}
	}
	var err error
	for name, d := range map[string]*time.Duration{"ResultsFeedBatchingSeconds": &st.feedWindow, "KeepaliveSeconds": &st.keepalive, "TelemetryRetentionDays": &st.telemetryRetention} {
		n, err := e.number(map[string]any{"Ref": name})
		if err != nil {
			return st, err
		}
		unit := time.Second
		if strings.HasSuffix(name, "Days") {
			unit = 24 * time.Hour
		}
		*d = time.Duration(n * float64(unit))
	}
	for _, fn := range []string{"ConnectFunction", "MessageFunction", "DisconnectFunction", "SweepFunction", "FeedFunction"} {
		st.memory[fn] = tpl.MemorySize(fn)
	}
	if sc.messageMemory > 0 {
		st.memory["MessageFunction"] = sc.messageMemory
	}
	st.sweepEvery = time.Minute
	if ev, ok := tpl.Resources["SweepFunction"].Properties["Events"].(map[string]any)["EveryMinute"].(map[string]any); ok {
		if p, ok := ev["Properties"].(map[string]any); ok && p["Schedule"] != "rate(1 minute)" {
			return st, fmt.Errorf("SweepFunction's schedule is %v: this model knows rate(1 minute)", p["Schedule"])
		}
	}
	logging, _ := tpl.Resources["MessageFunction"].Properties["LoggingConfig"].(map[string]any)
	group, _ := samtemplate.Ref(logging["LogGroup"])
	if st.functionLogs, err = e.logGroup(group); err != nil {
		return st, err
	}
	if st.accessLogs, err = accessLogVariants(e); err != nil {
		return st, err
	}
	for _, v := range st.accessLogs {
		st.offVariantFromTemplate = st.offVariantFromTemplate || v.bytes == nil
	}
	if !st.offVariantFromTemplate {
		st.accessLogs = append(st.accessLogs, accessLogVariant{label: "off (no template option yet)"})
	}
	tables, err := e.tables()
	if err != nil {
		return st, err
	}
	for _, tb := range tables {
		st.tables[tb.id] = tb
		st.tablesAndIndexes += 1 + float64(len(tb.indexes))
	}
	var targets int
	if st.minRCU, st.minWCU, targets, st.minimumsFromTemplate, err = e.minimumCapacity(); err != nil {
		return st, err
	}
	st.scalableTargets = float64(targets)
	if !st.minimumsFromTemplate {
		st.minRCU, st.minWCU = sc.minRCU*st.tablesAndIndexes, sc.minWCU*st.tablesAndIndexes
		st.scalableTargets = 2 * st.tablesAndIndexes
	}
	return st, nil
}

// functionOf is the function that handles a frame type.
func functionOf(frame string) string {
	switch frame {
	case "$connect":
		return "ConnectFunction"
	case "$disconnect":
		return "DisconnectFunction"
	}
	return "MessageFunction"
}

// eventOf is a frame's access log event type.
func eventOf(frame string) string {
	switch frame {
	case "$connect":
		return eventConnect
	case "$disconnect":
		return eventDisconnect
	}
	return eventMessage
}

// durationMs is a frame's billed duration at a memory size: what it waits
// for AWS (its requests one after the other, each awsLatencyMs) and its
// CPU time as measured here, which takes 1,769/M times as long below
// 1,769 MB, where Lambda gives M/1,769 of a vCPU. Lambda bills whole ms.
func durationMs(waitsMs, cpuMs, memoryMB float64) float64 {
	return math.Ceil(waitsMs + cpuMs*math.Max(1, lambdaMBPerVCPU/memoryMB))
}
