package metrics_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/metrics"
)

func decodeAll(t *testing.T, out string) []metrics.Decoded {
	t.Helper()
	var all []metrics.Decoded
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		ms, ok := metrics.Decode([]byte(line))
		if !ok {
			t.Fatalf("not an EMF line: %s", line)
		}
		all = append(all, ms...)
	}
	return all
}

func find(ms []metrics.Decoded, name, dim, value string) (metrics.Decoded, bool) {
	for _, m := range ms {
		if m.Name == name && (dim == "" || m.Dimensions[dim] == value) {
			return m, true
		}
	}
	return metrics.Decoded{}, false
}

func TestLinesAreEmbeddedMetricFormat(t *testing.T) {
	var buf bytes.Buffer
	clock := testenv.NewClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	r := metrics.New(&buf, "prod", 0, clock.Now)
	r.Count(metrics.Authentications, metrics.Failed)
	r.Count(metrics.Authentications, metrics.Failed)
	r.Count(metrics.Pushes, metrics.Failed)
	r.Count(metrics.Frames, "heartbeat")
	r.Add(metrics.SweepDuration, "", 12)
	r.Add(metrics.SweepDuration, "", 30)
	r.Flush()

	// One line per dimension value, each a JSON object CloudWatch reads.
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3 (Outcome=failed, FrameType=heartbeat, no dimension):\n%s", len(lines), buf.String())
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &doc); err != nil {
		t.Fatal(err)
	}
	aws := doc["_aws"].(map[string]any)
	if aws["Timestamp"] != float64(clock.Now().UnixMilli()) {
		t.Errorf("timestamp = %v", aws["Timestamp"])
	}
	directive := aws["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if directive["Namespace"] != metrics.Namespace {
		t.Errorf("namespace = %v", directive["Namespace"])
	}
	for _, dims := range directive["Dimensions"].([]any) {
		for _, name := range dims.([]any) {
			if _, ok := doc[name.(string)].(string); !ok {
				t.Errorf("dimension %v has no string value in the line", name)
			}
		}
	}

	ms := decodeAll(t, buf.String())
	if m, ok := find(ms, "Authentications", "Outcome", "failed"); !ok || m.Values[0] != 2 || m.Dimensions["Stack"] != "prod" || m.Unit != metrics.Count {
		t.Errorf("Authentications failed = %+v", m)
	}
	if m, ok := find(ms, "Pushes", "Outcome", "failed"); !ok || m.Values[0] != 1 {
		t.Errorf("Pushes failed = %+v", m)
	}
	if m, ok := find(ms, "SweepDuration", "", ""); !ok || len(m.Values) != 2 || m.Values[1] != 30 || m.Unit != metrics.Milliseconds || len(m.Dimensions) != 1 {
		t.Errorf("SweepDuration = %+v, want both samples, Stack only", m)
	}
}

func TestRoutineMetricsWaitForTheirPeriodOthersDoNot(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)
	clock := testenv.NewClock(t0)
	r := metrics.New(&buf, "prod", time.Minute, clock.Now)

	for range 40 {
		r.Count(metrics.Frames, "heartbeat")
		r.Flush()
	}
	if buf.Len() != 0 {
		t.Fatalf("routine counts written before their minute was over: %s", buf.String())
	}
	r.Count(metrics.Edges, "heartbeat_lost")
	r.Flush()
	ms := decodeAll(t, buf.String())
	if m, ok := find(ms, "Frames", "FrameType", "heartbeat"); !ok || m.Values[0] != 40 {
		t.Errorf("an edge did not write the pending frames with it: %+v", ms)
	}
	if m, ok := find(ms, "Edges", "Edge", "heartbeat_lost"); !ok || !m.Timestamp.Equal(t0.Truncate(time.Minute)) {
		t.Errorf("edge not written at the end of its invocation, stamped with its minute: %+v", ms)
	}

	buf.Reset()
	r.Count(metrics.Frames, "result")
	clock.Set(t0.Add(49 * time.Second)) // 12:00:59
	r.Flush()
	if buf.Len() != 0 {
		t.Fatalf("written before the minute was over: %s", buf.String())
	}
	clock.Set(t0.Add(50 * time.Second)) // 12:01:00
	r.Flush()
	m, ok := find(decodeAll(t, buf.String()), "Frames", "FrameType", "result")
	if !ok || m.Values[0] != 1 || !m.Timestamp.Equal(t0.Truncate(time.Minute)) {
		t.Errorf("routine counts not written after their minute, stamped with it: %s", buf.String())
	}
}

// TestLateCountsKeepTheirMinute checks that counts an idle instance writes
// long after recording them carry the minute they happened in, and that a
// record in a new minute first writes the previous one.
func TestLateCountsKeepTheirMinute(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)
	clock := testenv.NewClock(t0)
	r := metrics.New(&buf, "prod", time.Minute, clock.Now)
	r.Count(metrics.ResultsStored, "")
	r.Flush()
	clock.Set(t0.Add(3 * time.Hour))
	r.Count(metrics.ResultsStored, "")
	ms := decodeAll(t, buf.String())
	if len(ms) != 1 || ms[0].Values[0] != 1 || !ms[0].Timestamp.Equal(t0.Truncate(time.Minute)) {
		t.Errorf("first minute's count = %+v, want 1 at %s", ms, t0.Truncate(time.Minute))
	}
	buf.Reset()
	r.FlushAll()
	ms = decodeAll(t, buf.String())
	if len(ms) != 1 || !ms[0].Timestamp.Equal(t0.Add(3*time.Hour).Truncate(time.Minute)) {
		t.Errorf("second count = %+v, want its own minute", ms)
	}
}

func TestDimensionValuesStayBounded(t *testing.T) {
	var buf bytes.Buffer
	r := metrics.New(&buf, "prod", 0, nil)
	r.Count(metrics.Frames, "made-up-type-from-a-satellite")
	r.Count(metrics.ResultsStored, "ignored")
	r.FlushAll()
	ms := decodeAll(t, buf.String())
	if _, ok := find(ms, "Frames", "FrameType", "other"); !ok {
		t.Errorf("an undeclared dimension value was not recorded as other: %s", buf.String())
	}
	if m, ok := find(ms, "ResultsStored", "", ""); !ok || len(m.Dimensions) != 1 {
		t.Errorf("ResultsStored = %+v, want the Stack dimension only", m)
	}
	for _, m := range metrics.All {
		if m.Dimension != "" && len(m.Values) == 0 {
			t.Errorf("%s has dimension %s without a declared set of values", m.Name, m.Dimension)
		}
	}
}

func TestNilRecorderRecordsNothing(t *testing.T) {
	var r *metrics.Recorder
	r.Count(metrics.Frames, "heartbeat")
	r.Flush()
	r.FlushAll()
}
