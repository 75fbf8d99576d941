// Package metrics records the backend's CloudWatch metrics as Embedded Metric
// Format (EMF) log lines: JSON objects on stdout from which CloudWatch Logs
// extracts metrics, so emitting them costs no API call. Every metric is in
// one namespace with the dimension Stack (the CloudFormation stack, so two
// deployments in one account stay apart) plus at most one dimension whose
// values are a small fixed set: no dimension grows with the fleet.
package metrics

import (
	"context"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Namespace is the CloudWatch namespace of every metric.
const Namespace = "Checkstack/Satellites"

// StackDimension names the deployment a metric comes from.
const StackDimension = "Stack"

// Unit is a CloudWatch unit.
type Unit string

// Units in use.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
)

// Metric describes one metric. The metrics table of docs/OPERATIONS.md is
// checked against All.
type Metric struct {
	Name string
	Unit Unit
	// Dimension is the metric's dimension besides Stack, "" for none.
	Dimension string
	// Values are the values Dimension takes.
	Values []string
	// Sample metrics keep each recorded value as its own data point
	// (durations, gauges); the others are counters, summed.
	Sample bool
	// Routine metrics are the high-volume ones (one per frame): a warm
	// instance aggregates them per period and writes them once the period is
	// over. Anything else is written at the end of the invocation that
	// recorded it, because alarms watch it.
	Routine bool
}

// The metrics.
var (
	Frames = Metric{Name: "Frames", Unit: Count, Dimension: "FrameType", Routine: true,
		Values: append(append([]string(nil), protocol.InboundTypes...), FrameInvalid)}
	Authentications = Metric{Name: "Authentications", Unit: Count, Dimension: "Outcome", Values: []string{OK, Failed}}
	Edges           = Metric{Name: "Edges", Unit: Count, Dimension: "Edge",
		Values: []string{string(satellite.EdgeConnected), string(satellite.EdgeDisconnected), string(satellite.EdgeHeartbeatLost), string(satellite.EdgeRemoved)}}
	Pushes          = Metric{Name: "Pushes", Unit: Count, Dimension: "Outcome", Values: []string{Sent, Gone, Failed}, Routine: true}
	ResultsStored   = Metric{Name: "ResultsStored", Unit: Count, Routine: true}
	SweepDuration   = Metric{Name: "SweepDuration", Unit: Milliseconds, Sample: true}
	StaleSatellites = Metric{Name: "StaleSatellites", Unit: Count}
	// SatellitesOnline is a gauge: each sweep records the count it read.
	SatellitesOnline = Metric{Name: "SatellitesOnline", Unit: Count, Sample: true}
	// TelemetryBatches counts telemetry batches by what their ack said.
	TelemetryBatches = Metric{Name: "TelemetryBatches", Unit: Count, Dimension: "Outcome", Routine: true,
		Values: []string{TelemetryAccepted, TelemetryDuplicate, TelemetryOverBudget, TelemetryUnknownKind, TelemetryRejected, TelemetryFailed}}
	// ResultsFed counts results the feed put on the results queue,
	// FeedMessages the messages they went in, FeedFailures the batches
	// Lambda retries because a message could not be sent.
	ResultsFed   = Metric{Name: "ResultsFed", Unit: Count, Routine: true}
	FeedMessages = Metric{Name: "FeedMessages", Unit: Count, Routine: true}
	FeedFailures = Metric{Name: "FeedFailures", Unit: Count}
	// OversizedMessageCloses counts connections API Gateway closed with
	// 1009 (a message over its 128 KB limit) within an hour of their
	// satellite's previous such close: an agent whose messages cannot pass.
	OversizedMessageCloses = Metric{Name: "OversizedMessageCloses", Unit: Count}
)

// ResultsClockSkewed counts the stored results dated more than
// endpoint.MaxClockSkew ahead of the backend's clock (the satellite's clock
// runs fast): stored all the same, ordered by their receipt.
var ResultsClockSkewed = Metric{Name: "ResultsClockSkewed", Unit: Count, Routine: true}

// Dimension values shared by several metrics.
const (
	OK     = "ok"
	Failed = "failed"
	Sent   = "sent"
	Gone   = "gone"
	// FrameInvalid counts frames that are not a frame of the protocol
	// (unparseable, unknown type, missing or mistyped fields).
	FrameInvalid = "invalid"
	// Telemetry batch outcomes: stored; a resend of one handled or in
	// flight; over the connection's budget (retryable); of a kind nothing
	// stores; a payload its kind cannot hold; storage failed (retryable).
	TelemetryAccepted    = "accepted"
	TelemetryDuplicate   = "duplicate"
	TelemetryOverBudget  = "over_budget"
	TelemetryUnknownKind = "unknown_kind"
	TelemetryRejected    = "rejected"
	TelemetryFailed      = "failed"
)

// All lists every metric.
var All = []Metric{Frames, Authentications, Edges, Pushes, ResultsStored, SweepDuration, StaleSatellites, SatellitesOnline, TelemetryBatches,
	ResultsFed, FeedMessages, FeedFailures, ResultsClockSkewed, OversizedMessageCloses}

// maxSamples is EMF's limit of values per metric in one line.
const maxSamples = 100

type key struct{ name, value string }

type entry struct {
	metric Metric
	value  string
	sum    float64
	values []float64
}

// Recorder aggregates metrics and writes them as EMF lines. Its methods are
// safe for concurrent use, and a nil *Recorder records nothing, so code can
// record unconditionally.
//
// What it holds belongs to one aggregation period (a clock-aligned minute by
// default) and is stamped with the period's start, so counts written late,
// by the next invocation of an instance that sat idle, still land in the
// minute they happened.
type Recorder struct {
	w      io.Writer
	stack  string
	period time.Duration
	now    func() time.Time

	mu      sync.Mutex
	pending map[key]*entry
	urgent  bool
	// start is when the pending records' period began.
	start time.Time
}

// New returns a Recorder writing to w for the deployment stack. Routine
// metrics are aggregated per period (0 writes everything at the end of
// every invocation).
func New(w io.Writer, stack string, period time.Duration, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{w: w, stack: stack, period: period, now: now, pending: map[key]*entry{}}
}

// periodOf returns the start of the aggregation period holding t.
func (r *Recorder) periodOf(t time.Time) time.Time {
	if r.period <= 0 {
		return t
	}
	return t.Truncate(r.period)
}

// Count adds 1 to a counter; value is its dimension's value ("" when it has
// none).
func (r *Recorder) Count(m Metric, value string) { r.Add(m, value, 1) }

// Add records v: added to a counter, or kept as a data point of a sample
// metric. A value outside the metric's declared set is recorded under
// "other", so a caller's bug cannot create unbounded dimensions.
func (r *Recorder) Add(m Metric, value string, v float64) {
	if r == nil {
		return
	}
	switch {
	case m.Dimension == "":
		value = ""
	case !contains(m.Values, value):
		value = "other"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.periodOf(r.now()); len(r.pending) == 0 {
		r.start = now
	} else if r.period > 0 && !now.Equal(r.start) {
		r.write() // a new period: the previous one is complete
		r.start = now
	}
	k := key{m.Name, value}
	e := r.pending[k]
	if e == nil {
		e = &entry{metric: m, value: value}
		r.pending[k] = e
	}
	if m.Sample {
		e.values = append(e.values, v)
	} else {
		e.sum += v
	}
	if !m.Routine || len(e.values) >= maxSamples {
		r.urgent = true
	}
}

func contains(values []string, v string) bool {
	for _, x := range values {
		if x == v {
			return true
		}
	}
	return false
}

// Flush writes what is pending when it is due: at once when anything but a
// routine metric is pending (or the period is 0), else once its period is
// over. Functions call it at the end of every invocation.
func (r *Recorder) Flush() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return
	}
	if r.period <= 0 || r.urgent || !r.periodOf(r.now()).Equal(r.start) {
		r.write()
	}
}

// FlushAll writes everything pending now, due or not.
func (r *Recorder) FlushAll() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) > 0 {
		r.write()
	}
}

// write emits what is pending, stamped with its period's start: one EMF
// line per dimension value (CloudWatch reads one value per dimension from a
// line), with every metric that shares it.
func (r *Recorder) write() {
	type group struct {
		dimension, value string
		entries          []*entry
	}
	groups := map[[2]string]*group{}
	for _, e := range r.pending {
		gk := [2]string{e.metric.Dimension, e.value}
		g := groups[gk]
		if g == nil {
			g = &group{dimension: e.metric.Dimension, value: e.value}
			groups[gk] = g
		}
		g.entries = append(g.entries, e)
	}
	keys := make([][2]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return strings.Join(keys[i][:], "\x00") < strings.Join(keys[j][:], "\x00") })
	for _, k := range keys {
		g := groups[k]
		sort.Slice(g.entries, func(i, j int) bool { return g.entries[i].metric.Name < g.entries[j].metric.Name })
		dims := []string{StackDimension}
		doc := map[string]any{StackDimension: r.stack}
		if g.dimension != "" {
			dims = append(dims, g.dimension)
			doc[g.dimension] = g.value
		}
		defs := make([]metricDef, 0, len(g.entries))
		for _, e := range g.entries {
			defs = append(defs, metricDef{Name: e.metric.Name, Unit: e.metric.Unit})
			switch {
			case !e.metric.Sample:
				doc[e.metric.Name] = e.sum
			case len(e.values) == 1:
				doc[e.metric.Name] = e.values[0]
			default:
				doc[e.metric.Name] = e.values
			}
		}
		doc["_aws"] = envelope{
			Timestamp: r.start.UnixMilli(),
			CloudWatchMetrics: []directive{{
				Namespace:  Namespace,
				Dimensions: [][]string{dims},
				Metrics:    defs,
			}},
		}
		line, err := json.Marshal(doc)
		if err != nil {
			continue // only numbers and strings: cannot happen
		}
		_, _ = r.w.Write(append(line, '\n'))
	}
	r.pending = map[key]*entry{}
	r.urgent = false
}

// Line is a decoded EMF line, for tests and tools that read them back.
type Line struct {
	AWS envelope `json:"_aws"`
}

type envelope struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

type directive struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []metricDef `json:"Metrics"`
}

type metricDef struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit"`
}

// Decoded is one metric read back from an EMF line.
type Decoded struct {
	Namespace  string
	Name       string
	Unit       Unit
	Dimensions map[string]string
	Values     []float64
	Timestamp  time.Time
}

// Decode reads the metrics of one log line; ok is false when the line is not
// an EMF line.
func Decode(line []byte) (out []Decoded, ok bool) {
	var raw map[string]json.RawMessage
	if json.Unmarshal(line, &raw) != nil || raw["_aws"] == nil {
		return nil, false
	}
	var env envelope
	if json.Unmarshal(raw["_aws"], &env) != nil {
		return nil, false
	}
	for _, d := range env.CloudWatchMetrics {
		for _, dims := range d.Dimensions {
			values := map[string]string{}
			for _, name := range dims {
				var v string
				_ = json.Unmarshal(raw[name], &v)
				values[name] = v
			}
			for _, m := range d.Metrics {
				dec := Decoded{Namespace: d.Namespace, Name: m.Name, Unit: m.Unit, Dimensions: values, Timestamp: time.UnixMilli(env.Timestamp)}
				var one float64
				if json.Unmarshal(raw[m.Name], &one) == nil {
					dec.Values = []float64{one}
				} else {
					_ = json.Unmarshal(raw[m.Name], &dec.Values)
				}
				out = append(out, dec)
			}
		}
	}
	return out, true
}

// EdgeSink counts the lifecycle events its Sink publishes (Edges, by edge),
// republications included.
type EdgeSink struct {
	Sink    satellite.LifecycleSink
	Metrics *Recorder
}

var _ satellite.BatchLifecycleSink = EdgeSink{}

// Emit implements satellite.LifecycleSink.
func (s EdgeSink) Emit(ctx context.Context, e satellite.LifecycleEvent) error {
	return s.EmitBatch(ctx, []satellite.LifecycleEvent{e})[0]
}

// EmitBatch implements satellite.BatchLifecycleSink, in batches when the
// sink it wraps can.
func (s EdgeSink) EmitBatch(ctx context.Context, es []satellite.LifecycleEvent) []error {
	errs := satellite.EmitAll(ctx, s.Sink, es)
	for i, err := range errs {
		if err == nil {
			s.Metrics.Count(Edges, string(es[i].Edge))
		}
	}
	return errs
}
