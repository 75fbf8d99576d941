package wshandler_test

import (
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
)

// Every frame's log line says where its time went, phase by phase, with as
// many AWS calls as the frame made.
func TestFramesLogTheirPhases(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-phases", assignment(t, "cfg-1", "sys-1"))
	conn := h.authenticate("sat-phases", tok)

	h.send(testenv.Raw(t, conn, `{"type":"request_run_secrets","requestId":"r-1","configId":"cfg-1","collectorId":"nope","runId":"x"}`))
	lines := h.logLines("frame handled")
	var line map[string]any
	for _, l := range lines {
		if l["type"] == "request_run_secrets" {
			line = l
		}
	}
	if line == nil {
		t.Fatalf("no DEBUG \"frame handled\" line for request_run_secrets among %d", len(lines))
	}
	if line["level"] != "DEBUG" || line["satelliteId"] != "sat-phases" || line["connectionId"] != conn {
		t.Errorf("line = %v, want DEBUG with the satellite and connection", line)
	}
	for _, phase := range []string{"tookMs", "parseMs", "readsMs", "postMs"} {
		if v, ok := line[phase].(float64); !ok || v < 0 {
			t.Errorf("%s = %v, want a duration in milliseconds", phase, line[phase])
		}
	}
	if _, ok := line["writesMs"]; ok {
		t.Errorf("writesMs = %v for a frame that writes nothing", line["writesMs"])
	}
	// A warm instance's run-secrets request: one Query, one post.
	if got, want := line["awsCalls"], float64(2); got != want {
		t.Errorf("awsCalls = %v, want %v", got, want)
	}
}

// A frame over the slow threshold is logged at WARN, so that a slow answer
// can be explained without debug logs.
func TestSlowFramesAreWarned(t *testing.T) {
	h := newHarness(t, func(_ *app.Config, o *app.Options) { o.SlowFrame = time.Nanosecond })
	tok := h.satellite("sat-slow", assignment(t, "cfg-1", "sys-1"))
	conn := h.authenticate("sat-slow", tok)
	h.send(testenv.Raw(t, conn, `{"type":"heartbeat","version":"1","uptimeSeconds":3}`))

	var warned bool
	for _, l := range h.logLines("slow frame") {
		if l["type"] == "heartbeat" && l["level"] == "WARN" {
			warned = true
			if _, ok := l["writesMs"].(float64); !ok {
				t.Errorf("slow heartbeat line %v has no writesMs", l)
			}
		}
	}
	if !warned {
		t.Error("a heartbeat over the slow threshold was not logged at WARN")
	}
}
