package satellite_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestOversizedMessagesMarkAndLogOnceAnHour(t *testing.T) {
	at := func(s string) time.Time {
		t, _ := time.Parse(time.TimeOnly, s)
		return time.Date(2026, 11, 27, t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
	}
	var o satellite.OversizedMessages
	var logged []string
	for _, close := range []string{"08:10:00", "08:10:02", "08:30:00", "08:59:59", "09:00:01", "09:30:00", "11:00:00", "11:00:30", "11:01:00"} {
		before := o
		o = o.Closed(at(close))
		if satellite.FirstRepeatedInHour(before, o) {
			logged = append(logged, close)
		}
	}
	want := []string{"08:10:02", "09:00:01", "11:00:30"}
	if len(logged) != len(want) {
		t.Fatalf("logged at %v, want %v", logged, want)
	}
	for i := range want {
		if logged[i] != want[i] {
			t.Fatalf("logged at %v, want %v", logged, want)
		}
	}
	if o.Closes != 9 || !o.Repeated() {
		t.Errorf("record %+v", o)
	}
	if !o.MarkedAt(at("11:01:00").Add(23*time.Hour)) || o.MarkedAt(at("11:01:00").Add(satellite.OversizedMarkedFor)) {
		t.Errorf("the mark should hold for %s after the last close", satellite.OversizedMarkedFor)
	}
	single := satellite.OversizedMessages{}.Closed(at("08:00:00")).Closed(at("09:00:01"))
	if single.Repeated() || single.MarkedAt(at("09:00:02")) {
		t.Errorf("two closes over an hour apart read as repeated: %+v", single)
	}
}

func TestReconnectMarks(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	sat := satellite.Satellite{Oversized: satellite.OversizedMessages{Closes: 1, LastAt: now.Add(-1200 * time.Millisecond)}}
	if m := sat.ReconnectMarks(now); !m.Flapping || m.ReconnectAfter != 1200*time.Millisecond || m.Recovered {
		t.Errorf("1.2 s after a 1009 close: %+v", m)
	}
	if m := sat.ReconnectMarks(now.Add(satellite.FlapWindow)); m.Flapping {
		t.Errorf("past the flap window: %+v", m)
	}
	sat.HeartbeatLostAt = now.Add(-time.Minute)
	if m := sat.ReconnectMarks(now.Add(time.Hour)); !m.Recovered || m.Flapping {
		t.Errorf("after a heartbeat loss: %+v", m)
	}
}

func TestEdgeMarksInThePayload(t *testing.T) {
	for _, tc := range []struct {
		marks satellite.EdgeMarks
		want  string
	}{
		{satellite.EdgeMarks{}, `{"edgeId":"e","satelliteId":"s","name":"","region":"","status":"offline","lastSeenAt":null}`},
		{satellite.EdgeMarks{CloseCode: 1000}, `{"edgeId":"e","satelliteId":"s","name":"","region":"","status":"offline","lastSeenAt":null,"closeCode":1000}`},
		{satellite.EdgeMarks{CloseCode: 1009}, `{"edgeId":"e","satelliteId":"s","name":"","region":"","status":"offline","lastSeenAt":null,"closeCode":1009,"reason":"message_too_big"}`},
		{satellite.EdgeMarks{Recovered: true, Flapping: true, ReconnectAfter: 900 * time.Millisecond},
			`{"edgeId":"e","satelliteId":"s","name":"","region":"","status":"offline","lastSeenAt":null,"recovered":true,"flapping":true,"reconnectAfterMs":900}`},
	} {
		b, _ := json.Marshal(satellite.LifecycleEvent{ID: "e", SatelliteID: "s", Status: satellite.StatusOffline, EdgeMarks: tc.marks}.Payload())
		if string(b) != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.marks, b, tc.want)
		}
	}
}
