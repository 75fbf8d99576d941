package localstack_test

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/metrics"
)

// rawEvents returns the event log's lines of one satellite with their
// detail as decoded JSON: every field the log holds, whatever this code's
// types know of.
func rawEvents(t *testing.T, s *localstack.Stack, satelliteID string) []map[string]any {
	t.Helper()
	f, err := os.Open(s.EventsFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if d, _ := l["detail"].(map[string]any); d["satelliteId"] == satelliteID {
			out = append(out, l)
		}
	}
	return out
}

// emfSum adds up one metric over the EMF lines of the functions' log.
func emfSum(logs, name string) float64 {
	sum := 0.0
	for _, line := range strings.Split(logs, "\n") {
		start := strings.Index(line, "{")
		if start < 0 || !strings.Contains(line, `"_aws":`) {
			continue
		}
		decoded, _ := metrics.Decode([]byte(line[start:]))
		for _, m := range decoded {
			if m.Name == name {
				for _, v := range m.Values {
					sum += v
				}
			}
		}
	}
	return sum
}

// TestTheStockAgentsOversizedBatchesThroughTheGateway plays the stock
// agent's telemetry batch over 128 KB through the local gateway, as a
// satellite configured with the stack's core URL sends it: authenticate,
// send a message over API Gateway's limit, be closed with 1009, reconnect
// a moment later, again. The backend marks the satellite (the admin API
// says what to do), counts the repeats in a metric, logs once, and keeps
// the edges quiet: each disconnected edge says 1009, each reconnect is
// marked flapping, none is a recovery. Before: the $disconnect's status
// was dropped and every pair looked like any reconnect.
func TestTheStockAgentsOversizedBatchesThroughTheGateway(t *testing.T) {
	s, logs := startStackWithLogs(t, localstack.InProcess)
	tok := createSatellite(t, s, "sat-big-batches")
	// A telemetry batch as the agent packs it (up to 1,000,000 bytes):
	// 200 KB of log lines.
	line := strings.Repeat("l", 200)
	var items []map[string]any
	for len(items)*220 < 200<<10 {
		items = append(items, map[string]any{"stream": "app", "line": line})
	}
	batch, _ := json.Marshal(map[string]any{"type": "telemetry_batch", "batchId": "0", "kind": "logstream", "payload": items})
	if len(batch) <= 128<<10 {
		t.Fatalf("the batch is %d bytes, not over the limit", len(batch))
	}

	const rounds = 3
	for round := range rounds {
		c := dial(t, satelliteURL(t, s))
		c.send(map[string]any{"type": "authenticate", "clientId": "sat-big-batches", "token": tok, "capabilities": []string{"telemetry", "log-receivers"}})
		auth := c.expect("authenticated")
		if auth["maxMessageBytes"] != float64(131072) {
			t.Errorf("authenticated = %v; want maxMessageBytes 131072", auth)
		}
		// The gateway closes the socket once it has read past the limit,
		// maybe before the whole message is written: the write can fail.
		werr := c.conn.Write(ctx, websocket.MessageText, batch)
		if _, err := c.read(); werr == nil && websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("round %d: after %d bytes: %v; want the connection closed with 1009", round, len(batch), err)
		}
		testenv.Eventually(t, "the close handled", func() bool {
			return countOf(events(t, s, "sat-big-batches"), "satellite.disconnected") == round+1
		})
		time.Sleep(300 * time.Millisecond) // the agent's back-off, shortened
	}

	// The mark, through the admin API.
	v := admin(t, s, "GET", "/satellites/sat-big-batches", nil)
	warnings, _ := v["warnings"].([]any)
	if len(warnings) != 1 || warnings[0] != "messages over API Gateway's 128 KB limit: the agent's telemetry batch size must be lowered" {
		t.Errorf("GET /satellites/sat-big-batches warnings = %v", v["warnings"])
	}
	if o, _ := v["oversizedMessages"].(map[string]any); o["closes"] != float64(rounds) || o["marked"] != true || o["limitBytes"] != float64(131072) {
		t.Errorf("oversizedMessages = %v; want %d closes, marked", v["oversizedMessages"], rounds)
	}

	// The metric, as CloudWatch would read it from the functions' logs, and
	// one log line however many reconnects.
	testenv.Eventually(t, "the last close's metric written", func() bool {
		return emfSum(logs.String(), "OversizedMessageCloses") == rounds-1
	})
	checkMetricsAgainstDocs(t, logs.String(), []string{"OversizedMessageCloses", "Edges Edge=disconnected"})
	if n := strings.Count(logs.String(), `"msg":"satellite sends messages over the limit"`); n != 1 {
		t.Errorf("logged %d times, want once", n)
	}

	// The edges: all there, marked.
	got := rawEvents(t, s, "sat-big-batches")
	if len(got) != 2*rounds {
		t.Fatalf("%d events, want a connected and a disconnected per round: %v", len(got), got)
	}
	for i, e := range got {
		d := e["detail"].(map[string]any)
		switch {
		case i%2 == 1:
			if e["detailType"] != "satellite.disconnected" || d["closeCode"] != float64(1009) || d["reason"] != "message_too_big" {
				t.Errorf("event %d: %v; want disconnected, closeCode 1009, reason message_too_big", i, e)
			}
		case i == 0:
			if e["detailType"] != "satellite.connected" || d["flapping"] != nil {
				t.Errorf("event %d: %v; want the first connected edge unmarked", i, e)
			}
		default:
			ms, _ := d["reconnectAfterMs"].(float64)
			if e["detailType"] != "satellite.connected" || d["flapping"] != true || ms <= 0 || ms > 30000 || d["recovered"] != nil {
				t.Errorf("event %d: %v; want connected, flapping, reconnectAfterMs within 30 s, not a recovery", i, e)
			}
		}
	}
}
