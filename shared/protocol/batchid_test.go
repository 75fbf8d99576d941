package protocol_test

import (
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/shared/protocol"
)

func telemetryFrame(batchID string) []byte {
	return []byte(`{"type":"telemetry_batch","batchId":` + batchID + `,"kind":"logstream","payload":[]}`)
}

// TestBatchIDsAreReadExactly checks a numeric batchId is read from its
// text, in any JSON form of an integer, and never rounded: two ids are one
// batch only when they are the same number or the same string.
func TestBatchIDsAreReadExactly(t *testing.T) {
	for _, tc := range []struct{ sent, echo, key string }{
		{`7`, `7`, "n:7"},
		{`7.0`, `7`, "n:7"},
		{`7e0`, `7`, "n:7"},
		{`70E-1`, `7`, "n:7"},
		{`0.7e1`, `7`, "n:7"},
		{`1e3`, `1000`, "n:1000"},
		{`0`, `0`, "n:0"},
		{`-0`, `0`, "n:0"},
		{`0.000e-99999999999999999999`, `0`, "n:0"},
		{`9007199254740991`, `9007199254740991`, "n:9007199254740991"},
		{`9007199254740991.000`, `9007199254740991`, "n:9007199254740991"},
		{`90071992547409910e-1`, `9007199254740991`, "n:9007199254740991"},
		{`"7"`, `"7"`, "s:7"},
		{`"<\u003c"`, `"\u003c\u003c"`, "s:<<"},
	} {
		msg, err := protocol.Parse(telemetryFrame(tc.sent))
		if err != nil {
			t.Errorf("batchId %s: %v", tc.sent, err)
			continue
		}
		b := msg.(*protocol.TelemetryBatch)
		if string(b.BatchID) != tc.echo || b.BatchKey != tc.key {
			t.Errorf("batchId %s: echoed %s, dedupe key %q; want %s, %q", tc.sent, b.BatchID, b.BatchKey, tc.echo, tc.key)
		}
	}
	for _, sent := range []string{
		`9007199254740992`, // 2^53: 2^53+1 reads as it through a float64
		`9007199254740993`,
		`9007199254740992.0`,
		`1e16`,
		`18446744073709551617`,
		`1e999999999999999999999`,
		`7.5`,
		`1e-1`,
		`-1`,
		`-1e-999999999999999999999`,
		`""`,
		`"` + strings.Repeat("x", protocol.MaxIDBytes+1) + `"`,
		`true`, `{}`, `[7]`, `null`,
	} {
		if _, err := protocol.Parse(telemetryFrame(sent)); err == nil {
			t.Errorf("batchId %s was accepted", sent)
		}
	}
}

// TestRefusedBatchIDsAreEchoedAsSent checks the batchId of a refused batch
// is what its ack carries: the id as Parse reads it when it is valid (the
// frame is refused for another field), else exactly as sent, when it is a
// string or number whose ack fits a frame.
func TestRefusedBatchIDsAreEchoedAsSent(t *testing.T) {
	long := `"` + strings.Repeat("<", 1000) + `"`
	for _, tc := range []struct {
		frame string
		echo  string // "" when there is nothing to answer to
	}{
		{`{"type":"telemetry_batch","batchId":7.0,"kind":"../x","payload":[]}`, `7`},
		{`{"type":"telemetry_batch","batchId":9007199254740993,"kind":"logstream","payload":[]}`, `9007199254740993`},
		{`{"type":"telemetry_batch","batchId": 1e400 ,"kind":"logstream","payload":[]}`, `1e400`},
		{`{"type":"telemetry_batch","batchId":-3,"kind":"logstream","payload":[]}`, `-3`},
		{`{"type":"telemetry_batch","batchId":` + long + `,"kind":"logstream","payload":[]}`, long},
		{`{"type":"telemetry_batch","batchId":{"n":1},"kind":"logstream","payload":[]}`, ``},
		{`{"type":"telemetry_batch","batchId":true,"kind":"logstream","payload":[]}`, ``},
		{`{"type":"telemetry_batch","batchId":null,"kind":"logstream","payload":[]}`, ``},
		{`{"type":"telemetry_batch","kind":"logstream","payload":[]}`, ``},
	} {
		id, ok := protocol.BatchIDOf([]byte(tc.frame))
		if string(id) != tc.echo || ok != (tc.echo != "") {
			t.Errorf("BatchIDOf(%.80s) = %.40s, %v; want %.40s", tc.frame, id, ok, tc.echo)
		}
	}
	// The longest id echoed leaves room for the ack's other fields.
	biggest := `"` + strings.Repeat("x", protocol.MaxEchoedBatchIDBytes-2) + `"`
	frame := []byte(`{"type":"telemetry_batch","batchId":` + biggest + `}`)
	id, ok := protocol.BatchIDOf(frame)
	if !ok {
		t.Fatal("the longest echoed id is not echoed")
	}
	if _, err := protocol.Encode(protocol.NewTelemetryAck(id, 0, 1, false)); err != nil {
		t.Errorf("the ack of the longest echoed id: %v", err)
	}
	if _, ok := protocol.BatchIDOf([]byte(`{"type":"telemetry_batch","batchId":"` + strings.Repeat("x", protocol.MaxEchoedBatchIDBytes) + `"}`)); ok {
		t.Error("an id past MaxEchoedBatchIDBytes is echoed")
	}
}
