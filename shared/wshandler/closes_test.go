package wshandler_test

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// API Gateway reports how a connection closed in its $disconnect event:
// requestContext.disconnectStatusCode and disconnectReason. A message over
// its 128 KB limit closes the connection with 1009 (AWS, "Quotas for
// configuring and running a WebSocket API in API Gateway": message payload
// size 128 KB, and a footnote: a larger message or frame closes the
// connection with code 1009). These tests deliver such events through the
// disconnect function and read what the backend made of them: the event
// log (as raw JSON, every field it holds), the metric lines and the logs.

// closeWith delivers $disconnect with the close status API Gateway reports.
func (h *harness) closeWith(id string, code int, reason string) {
	h.t.Helper()
	h.mgmt.Drop(id)
	ev := testenv.Event(h.t, "disconnect", id)
	ev.RequestContext.DisconnectStatusCode = int64(code)
	ev.RequestContext.DisconnectReason = &reason
	resp, err := h.disconnect.WebSocket.Disconnect(ctx, ev)
	if err != nil || resp.StatusCode != 200 {
		h.t.Fatalf("$disconnect: status %d, error %v", resp.StatusCode, err)
	}
}

// rawEvent is one line of the event log, its detail as decoded JSON.
type rawEvent struct {
	DetailType string         `json:"detailType"`
	Detail     map[string]any `json:"detail"`
}

// rawEvents returns the event log lines of one satellite, in order.
func (h *harness) rawEvents(satelliteID string) []rawEvent {
	h.t.Helper()
	f, err := os.Open(h.eventsF)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var out []rawEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e rawEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			h.t.Fatalf("event log line %q: %v", sc.Text(), err)
		}
		if e.Detail["satelliteId"] == satelliteID {
			out = append(out, e)
		}
	}
	return out
}

// metricSum adds up a counter over the EMF lines in out.
func metricSum(t *testing.T, out string, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, line := range strings.Split(out, "\n") {
		decoded, ok := metrics.Decode([]byte(line))
		if !ok {
			continue
		}
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

// withMetrics sends every function's metric lines to buf.
// TestDisconnectedEdgeCarriesTheCloseCode: the disconnected edge says how
// the connection closed; a close for a message over the limit says so in
// words too.
func TestDisconnectedEdgeCarriesTheCloseCode(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-close-code")
	h.close(h.authenticate("sat-close-code", tok)) // the fixture's 1000
	h.clock.Advance(time.Minute)
	h.closeWith(h.authenticate("sat-close-code", tok), 1009, "Message too big")

	var closes []map[string]any
	for _, e := range h.rawEvents("sat-close-code") {
		if e.DetailType == "satellite.disconnected" {
			closes = append(closes, e.Detail)
		}
	}
	if len(closes) != 2 {
		t.Fatalf("%d disconnected events, want 2", len(closes))
	}
	if closes[0]["closeCode"] != float64(1000) || closes[0]["reason"] != nil {
		t.Errorf("disconnected after a normal close: %v; want closeCode 1000 and no reason", closes[0])
	}
	if closes[1]["closeCode"] != float64(1009) || closes[1]["reason"] != "message_too_big" {
		t.Errorf("disconnected after 1009: %v; want closeCode 1009, reason message_too_big", closes[1])
	}
}

// TestRepeatedOversizedClosesAreCountedAndLoggedOnceAnHour plays what the
// stock agent does with a telemetry batch over 128 KB: API Gateway closes
// with 1009, the agent reconnects a second later, authenticates and sends
// the batch again. From the second close within an hour each close is
// counted (OversizedMessageCloses); it is logged once an hour, not once a
// reconnect; every reconnect's connected edge is marked flapping, with how
// long after the close it came, and no edge is dropped.
func TestRepeatedOversizedClosesAreCountedAndLoggedOnceAnHour(t *testing.T) {
	var out testenv.SafeBuffer
	h := newHarness(t, withMetrics(&out))
	tok := h.satellite("sat-1009")
	cycle := func() {
		id := h.authenticate("sat-1009", tok)
		h.clock.Advance(2 * time.Second) // the agent sends its batch
		h.closeWith(id, 1009, "Message too big")
		h.clock.Advance(time.Second) // and reconnects
	}
	for range 5 {
		cycle()
	}
	if got := metricSum(t, out.String(), "OversizedMessageCloses"); got != 4 {
		t.Errorf("OversizedMessageCloses = %v after 5 closes within a minute, want 4 (every close after the first)", got)
	}
	if got := len(h.logLines("satellite sends messages over the limit")); got != 1 {
		t.Errorf("logged %d times after 5 closes within the hour, want once", got)
	}
	// An hour later: the first close follows the last by over an hour (not
	// repeated), the second repeats it and is logged, once in this hour.
	h.clock.Advance(time.Hour)
	cycle()
	cycle()
	if got := len(h.logLines("satellite sends messages over the limit")); got != 2 {
		t.Errorf("logged %d times after closes in a second hour, want twice", got)
	}
	if got := metricSum(t, out.String(), "OversizedMessageCloses"); got != 5 {
		t.Errorf("OversizedMessageCloses = %v, want 5", got)
	}
	if lines := h.logLines("satellite sends messages over the limit"); len(lines) == 0 {
		t.Error("nothing logged")
	} else if line := lines[0]; line["satelliteId"] != "sat-1009" || line["warning"] != "messages over API Gateway's 128 KB limit: the agent's telemetry batch size must be lowered" || line["level"] != "WARN" {
		t.Errorf("log line %v", line)
	}

	events := h.rawEvents("sat-1009")
	if len(events) != 14 {
		t.Fatalf("%d events, want a connected and a disconnected edge for each of the 7 connections", len(events))
	}
	for i, e := range events {
		switch {
		case i%2 == 1:
			if e.DetailType != "satellite.disconnected" || e.Detail["closeCode"] != float64(1009) || e.Detail["reason"] != "message_too_big" {
				t.Errorf("event %d: %s %v; want disconnected with closeCode 1009", i, e.DetailType, e.Detail)
			}
		case i == 0 || i == 10:
			// The first connection, and the first an hour later, follow no
			// recent close.
			if e.DetailType != "satellite.connected" || e.Detail["flapping"] != nil || e.Detail["reconnectAfterMs"] != nil {
				t.Errorf("event %d: %s %v; want connected, not flapping", i, e.DetailType, e.Detail)
			}
		default:
			if e.DetailType != "satellite.connected" || e.Detail["flapping"] != true || e.Detail["reconnectAfterMs"] != float64(1000) {
				t.Errorf("event %d: %s %v; want connected, flapping, 1000 ms after the close", i, e.DetailType, e.Detail)
			}
		}
	}

	// A reconnect long after the last close (past the 30 s flap window)
	// is an ordinary one.
	h.clock.Advance(31 * time.Second)
	h.authenticate("sat-1009", tok)
	events = h.rawEvents("sat-1009")
	if last := events[len(events)-1]; last.DetailType != "satellite.connected" || last.Detail["flapping"] != nil {
		t.Errorf("connected %v after the flap window; want it unmarked", last.Detail)
	}
}

// TestAnOversizedCloseAfterTheReconnectStillCounts: when the agent's new
// connection authenticates before the old one's $disconnect is handled,
// that close changes no state, but its 1009 is recorded all the same.
func TestAnOversizedCloseAfterTheReconnectStillCounts(t *testing.T) {
	var out testenv.SafeBuffer
	h := newHarness(t, withMetrics(&out))
	tok := h.satellite("sat-late-1009")
	old := h.authenticate("sat-late-1009", tok)
	h.clock.Advance(time.Second)
	current := h.authenticate("sat-late-1009", tok)
	h.closeWith(old, 1009, "Message too big") // stale: no edge
	if got := h.eventTypes("sat-late-1009"); len(got) != 2 {
		t.Fatalf("events %v, want the two connected edges only", got)
	}
	h.clock.Advance(time.Second)
	h.closeWith(current, 1009, "Message too big")
	if got := metricSum(t, out.String(), "OversizedMessageCloses"); got != 1 {
		t.Errorf("OversizedMessageCloses = %v, want 1: the stale close was the first of two", got)
	}
	if got := len(h.logLines("satellite sends messages over the limit")); got != 1 {
		t.Errorf("logged %d times, want once", got)
	}
}

// TestTheEdgeAfterAHeartbeatLossIsMarkedRecovered: the connected edge that
// ends a heartbeat_lost says so, whether a heartbeat restores it on the
// same connection or a new connection brings the satellite back, after a
// disconnect or not. Routine reconnects are not marked.
func TestTheEdgeAfterAHeartbeatLossIsMarkedRecovered(t *testing.T) {
	h := newHarness(t)
	sweeper := h.build("sweep")
	tok := h.satellite("sat-recover")
	lose := func() {
		t.Helper()
		h.clock.Advance(satellite.DefaultOfflineThreshold + 2*time.Minute)
		if r, err := sweeper.Sweep.Sweep(ctx); err != nil || r.HeartbeatLost != 1 {
			t.Fatalf("sweep: %+v, %v; want the satellite lost", r, err)
		}
	}
	id := h.authenticate("sat-recover", tok)
	lose()
	h.send(testenv.Message(t, "heartbeat", id, nil)) // restored on the same connection
	lose()
	h.closeWith(id, 1006, "Connection closed abnormally")
	h.clock.Advance(time.Minute)
	id = h.authenticate("sat-recover", tok) // back on a new one
	h.clock.Advance(time.Minute)
	h.closeWith(id, 1001, "Going away")
	h.clock.Advance(time.Minute)
	h.authenticate("sat-recover", tok) // a routine reconnect
	lose()
	h.authenticate("sat-recover", tok) // a new connection while the old one lingers

	var got []string
	for _, e := range h.rawEvents("sat-recover") {
		s := strings.TrimPrefix(e.DetailType, "satellite.")
		if e.Detail["recovered"] == true {
			s += "+recovered"
		}
		got = append(got, s)
	}
	want := []string{"connected", "heartbeat_lost", "connected+recovered", "heartbeat_lost", "disconnected",
		"connected+recovered", "disconnected", "connected", "heartbeat_lost", "connected+recovered"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events\n  %v\nwant\n  %v", got, want)
	}
}

// TestRepublishedEdgesKeepTheirMarks: an edge the bus refused is published
// again by the sweep with the marks it was recorded with.
func TestRepublishedEdgesKeepTheirMarks(t *testing.T) {
	var bus *flakySink
	h := newHarness(t, func(_ *app.Config, o *app.Options) {
		if bus == nil {
			bus = &flakySink{LifecycleSink: o.Lifecycle}
		}
		o.Lifecycle = bus
	})
	sweeper := h.build("sweep")
	tok := h.satellite("sat-republish-marks")
	id := h.authenticate("sat-republish-marks", tok)
	bus.mu.Lock()
	bus.left = 2
	bus.mu.Unlock()
	h.clock.Advance(time.Second)
	h.closeWith(id, 1009, "Message too big")
	h.clock.Advance(time.Second)
	h.authenticate("sat-republish-marks", tok)
	if got := h.eventTypes("sat-republish-marks"); len(got) != 1 {
		t.Fatalf("events %v published while the bus was down", got)
	}
	h.clock.Advance(3 * time.Minute)
	if r, err := sweeper.Sweep.Sweep(ctx); err != nil || r.Republished != 2 {
		t.Fatalf("sweep: %+v, %v; want both republished", r, err)
	}
	// (The satellite, silent for minutes, is also found lost: a fourth.)
	events := h.rawEvents("sat-republish-marks")
	if len(events) < 3 {
		t.Fatalf("events %v", events)
	}
	if d := events[1].Detail; events[1].DetailType != "satellite.disconnected" || d["closeCode"] != float64(1009) || d["reason"] != "message_too_big" {
		t.Errorf("republished %s %v; want disconnected with closeCode 1009", events[1].DetailType, d)
	}
	if d := events[2].Detail; events[2].DetailType != "satellite.connected" || d["flapping"] != true || d["reconnectAfterMs"] != float64(1000) {
		t.Errorf("republished %s %v; want connected, flapping, 1000 ms after the close", events[2].DetailType, d)
	}
}

// TestAuthenticatedAdvertisesTheMessageLimit: authenticated tells the agent
// the largest message it may send, the limit API Gateway closes a
// connection over (an extension: older agents ignore unknown fields).
func TestAuthenticatedAdvertisesTheMessageLimit(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-limit")
	id := h.open()
	h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-limit", "token": tok}))
	frames := h.mgmt.Frames(t, id)
	if len(frames) != 1 || frames[0]["type"] != "authenticated" || frames[0]["maxMessageBytes"] != float64(131072) {
		t.Errorf("frames %v; want authenticated with maxMessageBytes 131072", frames)
	}
}
