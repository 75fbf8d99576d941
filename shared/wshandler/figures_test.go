package wshandler_test

import (
	"encoding/json"
	"strings"

	"github.com/checkstack/satellite-backend/infra/testenv"
)

// The cost model (make cost) multiplies out figures that tests measure:
// with COST_FIGURES_DIR set, TestRequestBudgets and
// TestHeartbeatCapacityInSteadyState write them there as JSON.

// levelAtLeastInfo are the levels a function at LOG_LEVEL INFO writes.
var levelAtLeastInfo = map[string]bool{"INFO": true, "WARN": true, "ERROR": true}

// loggedAtInfo sums the lines of logs (the harness's JSON lines) a
// deployed function at LOG_LEVEL INFO would write, without the harness's
// own "function" attribute and without the lifecycle log (the local
// stand-in for EventBridge).
func loggedAtInfo(logs string) (bytes, lines int) {
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if line == "" || json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		level, _ := m["level"].(string)
		if !levelAtLeastInfo[level] || m["msg"] == "lifecycle event" {
			continue
		}
		if fn, ok := m["function"].(string); ok {
			line = strings.Replace(line, `,"function":`+jsonString(fn), "", 1)
		}
		bytes += len(line) + 1
		lines++
	}
	return bytes, lines
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// cpuPerRun runs fn n times and returns the mean CPU time per run, in ms.
func cpuPerRun(n int, fn func()) float64 {
	began := testenv.CPUTime()
	for range n {
		fn()
	}
	return float64((testenv.CPUTime() - began).Microseconds()) / 1000 / float64(n)
}
