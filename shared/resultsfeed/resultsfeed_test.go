package resultsfeed_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/checkstack/satellite-backend/shared/resultsfeed"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func result(i int, detail string) resultsfeed.Record {
	latency := float64(i)
	r := satellite.Result{
		ID: fmt.Sprintf("req-%04d=", i), ConfigID: "cfg", SystemID: "sys", SatelliteID: "sat", Source: "Edge (eu-west-1)",
		Status: satellite.CheckHealthy, LatencyMs: &latency,
		ExecutedAt: time.Date(2026, 12, 3, 8, 0, i, 0, time.UTC), ReceivedAt: time.Date(2026, 12, 3, 8, 0, i, 500e6, time.UTC),
	}
	if detail != "" {
		r.Detail = []byte(detail)
	}
	return resultsfeed.Record{Position: fmt.Sprintf("%021d", i), Result: r}
}

func decode(t *testing.T, body []byte) resultsfeed.Message {
	t.Helper()
	var m resultsfeed.Message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("message %q is not JSON: %v", body, err)
	}
	if m.Version != 1 || m.Type != "results" {
		t.Fatalf("version %d type %q", m.Version, m.Type)
	}
	return m
}

func TestPacksKeepOrderAndStayUnderTheBillingChunk(t *testing.T) {
	var records []resultsfeed.Record
	for i := range 500 {
		records = append(records, result(i, `{"status":"healthy","metadata":{"connected":true,"pad":"`+strings.Repeat("x", 300)+`"}}`))
	}
	packs, err := resultsfeed.Packs(records, resultsfeed.MaxMessageBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(packs) < 3 {
		t.Fatalf("%d packs for ~200 KB of results", len(packs))
	}
	next := 0
	for _, p := range packs {
		if len(p.Body) > resultsfeed.MaxMessageBytes {
			t.Errorf("pack of %d bytes, over %d", len(p.Body), resultsfeed.MaxMessageBytes)
		}
		if p.First != next {
			t.Errorf("pack starts at %d, want %d", p.First, next)
		}
		m := decode(t, p.Body)
		if len(m.Results) != p.Count {
			t.Errorf("pack says %d results, holds %d", p.Count, len(m.Results))
		}
		for k, e := range m.Results {
			if want := records[p.First+k].Result.ID; e.ResultID != want {
				t.Errorf("result %d is %s, want %s", p.First+k, e.ResultID, want)
			}
		}
		next += p.Count
	}
	if next != len(records) {
		t.Errorf("packs hold %d results, want %d", next, len(records))
	}
}

func TestAResultLargerThanAPackGoesAlone(t *testing.T) {
	big := `{"blob":"` + strings.Repeat("y", 100<<10) + `"}`
	packs, err := resultsfeed.Packs([]resultsfeed.Record{result(1, ""), result(2, big), result(3, "")}, resultsfeed.MaxMessageBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(packs) != 3 || packs[1].Count != 1 || packs[1].First != 1 {
		t.Fatalf("packs %+v", packs)
	}
	if got := decode(t, packs[1].Body).Results[0].Result; !bytes.Equal(got, []byte(big)) {
		t.Errorf("large result not carried whole")
	}
}

func TestEntryFields(t *testing.T) {
	r := result(7, `{"status":"degraded","metadata":{"connected":true}}`)
	env := "env-prod"
	r.Result.EnvironmentID = &env
	e := resultsfeed.EntryOf(r.Result)
	b, _ := json.Marshal(e)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for k, want := range map[string]any{
		"resultId": "req-0007=", "satelliteId": "sat", "sourceLabel": "Edge (eu-west-1)", "configId": "cfg", "systemId": "sys",
		"environmentId": "env-prod", "status": "healthy", "latencyMs": float64(7),
		"executedAt": "2026-12-03T08:00:07Z", "receivedAt": "2026-12-03T08:00:07.5Z",
		"sequence": fmt.Sprintf("%013d-req-0007=", time.Date(2026, 12, 3, 8, 0, 7, 500e6, time.UTC).UnixMilli()),
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	if d, _ := m["result"].(map[string]any); d["status"] != "degraded" {
		t.Errorf("result = %v, want the object as sent", m["result"])
	}
	// Absent fields are null, not missing: the document has one shape.
	bare := result(8, "")
	bare.Result.LatencyMs = nil
	b, _ = json.Marshal(resultsfeed.EntryOf(bare.Result))
	m = map[string]any{}
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"environmentId", "latencyMs", "result"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}
	// clockSkewMs marks the exception, a result dated ahead: present only
	// on it, so a fleet with good clocks sends messages of the same size.
	if v, ok := m["clockSkewMs"]; ok {
		t.Errorf("clockSkewMs = %v on a result not dated ahead, want it left out", v)
	}
	skewed := result(9, "")
	skewed.Result.ExecutedAt = skewed.Result.ReceivedAt.Add(time.Hour)
	skewed.Result.ClockSkewMs = time.Hour.Milliseconds()
	b, _ = json.Marshal(resultsfeed.EntryOf(skewed.Result))
	m = map[string]any{}
	_ = json.Unmarshal(b, &m)
	if m["clockSkewMs"] != float64(3_600_000) || m["executedAt"] != "2026-12-03T09:00:09.5Z" || m["sequence"] != resultsfeed.Sequence(skewed.Result.ReceivedAt, "req-0009=") {
		t.Errorf("a result dated an hour ahead: clockSkewMs %v executedAt %v sequence %v", m["clockSkewMs"], m["executedAt"], m["sequence"])
	}
}

func TestSequenceOrdersByReceiptThenId(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	ordered := []string{
		resultsfeed.Sequence(t0, "b"), resultsfeed.Sequence(t0.Add(time.Millisecond), "a"),
		resultsfeed.Sequence(t0.Add(time.Second), "a"), resultsfeed.Sequence(t0.Add(1000*time.Hour), "a"),
	}
	for i := 1; i < len(ordered); i++ {
		if ordered[i-1] >= ordered[i] {
			t.Errorf("%q does not sort before %q", ordered[i-1], ordered[i])
		}
	}
}

// TestMessagesHoldOnlyWhatSQSAccepts: SQS refuses a message holding
// U+FFFE, U+FFFF or bytes that are not UTF-8 on every retry; the result
// object is stored as the satellite sent it.
func TestMessagesHoldOnlyWhatSQSAccepts(t *testing.T) {
	r := result(1, "{\"a\":\"x\uffffy\ufffez\",\"b\":\"\xff\xfe\"}")
	packs, err := resultsfeed.Packs([]resultsfeed.Record{r}, resultsfeed.MaxMessageBytes)
	if err != nil {
		t.Fatal(err)
	}
	body := packs[0].Body
	if !utf8.Valid(body) || bytes.ContainsRune(body, 0xFFFF) || bytes.ContainsRune(body, 0xFFFE) {
		t.Fatalf("body %q holds characters SQS refuses", body)
	}
	var detail map[string]string
	if err := json.Unmarshal(decode(t, body).Results[0].Result, &detail); err != nil {
		t.Fatal(err)
	}
	if detail["a"] != "x\uffffy\ufffez" {
		t.Errorf("escaped value decodes to %q, want the characters sent", detail["a"])
	}
	if detail["b"] != "\ufffd\ufffd" {
		t.Errorf("bytes that are not UTF-8 decode to %q, want replacement characters", detail["b"])
	}
}

// failingQueue refuses the messages whose index is in fail.
type failingQueue struct {
	fail map[int]bool
	got  [][]byte
}

func (q *failingQueue) SendBatch(_ context.Context, bodies [][]byte) []error {
	errs := make([]error, len(bodies))
	for i, b := range bodies {
		if q.fail[len(q.got)] {
			errs[i] = errors.New("refused")
		}
		q.got = append(q.got, b)
	}
	return errs
}

func TestDeliverReportsTheFirstResultNotSent(t *testing.T) {
	var records []resultsfeed.Record
	for i := range 300 {
		records = append(records, result(i, `{"pad":"`+strings.Repeat("z", 500)+`"}`))
	}
	packs, _ := resultsfeed.Packs(records, resultsfeed.MaxMessageBytes)
	if len(packs) < 3 {
		t.Fatalf("%d packs", len(packs))
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	q := &failingQueue{fail: map[int]bool{1: true}}
	next, err := (&resultsfeed.Feed{Queue: q, Log: log}).Deliver(context.Background(), records)
	if err == nil || next != packs[1].First {
		t.Errorf("Deliver = %d, %v; want the second pack's first result %d and an error", next, err, packs[1].First)
	}
	q = &failingQueue{}
	if next, err := (&resultsfeed.Feed{Queue: q, Log: log}).Deliver(context.Background(), records); err != nil || next != len(records) {
		t.Errorf("Deliver = %d, %v; want all %d sent", next, err, len(records))
	}
	if next, err := (&resultsfeed.Feed{Queue: q, Log: log}).Deliver(context.Background(), nil); err != nil || next != 0 {
		t.Errorf("Deliver(nothing) = %d, %v", next, err)
	}
}
