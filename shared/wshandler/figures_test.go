package wshandler_test

import (
	"encoding/json"
	"strings"

	"github.com/checkstack/satellite-backend/infra/testenv"
)

// The cost model (make cost) multiplies out figures that tests measure:
// with COST_FIGURES_DIR set, TestRequestBudgets and
// TestHeartbeatCapacityInSteadyState write them there as JSON.

// costFigure is what one message costs.
type costFigure struct {
	DynamoDB   int     `json:"dynamoRequests"` // on the warm instance
	S3         int     `json:"s3Requests"`
	Posts      int     `json:"posts"`
	ReadUnits  float64 `json:"readUnits"` // warm instance
	WriteUnits float64 `json:"writeUnits"`
	// The indexes' part of ReadUnits and WriteUnits (ReturnConsumedCapacity
	// INDEXES).
	IndexReadUnits  float64 `json:"indexReadUnits"`
	IndexWriteUnits float64 `json:"indexWriteUnits"`
	// On an instance without the connection's binding cached.
	ColdDynamoDB        int     `json:"coldDynamoRequests"`
	ColdReadUnits       float64 `json:"coldReadUnits"`
	ColdWriteUnits      float64 `json:"coldWriteUnits"`
	ColdIndexWriteUnits float64 `json:"coldIndexWriteUnits"`
	// DurationMs is the handler's median time in process against DynamoDB
	// Local on the warm instance (one run for authenticate and $disconnect).
	DurationMs float64 `json:"durationMs"`
	// CPUMs and ColdCPUMs are the CPU time (user and system, getrusage) this
	// process spent per frame, on the warm and on a cold instance: the mean
	// of the runs DurationMs times (of one run for authenticate, $connect
	// and $disconnect). It includes the SDK's side of each request and any
	// in-process test server the frame talks to (the Management API's, the
	// S3 server's), never DynamoDB Local (another process).
	CPUMs     float64 `json:"cpuMs"`
	ColdCPUMs float64 `json:"coldCpuMs"`
	// LogBytes and LogLines are what the function logs per frame at the
	// template's default LOG_LEVEL (INFO): lines at INFO and above, as a
	// deployed function writes them (without the harness's "function"
	// attribute and the local stand-in for EventBridge's lines).
	LogBytes int `json:"logBytes"`
	LogLines int `json:"logLines"`
	// ItemBytes is the size of the item the message stores (results);
	// FeedEntryBytes the size of that result in a results feed message.
	ItemBytes      int `json:"itemBytes,omitempty"`
	FeedEntryBytes int `json:"feedEntryBytes,omitempty"`
	// FrameBytes is the frame's body; S3Puts the objects it writes and
	// ObjectBytes their size (telemetry).
	FrameBytes  int `json:"frameBytes,omitempty"`
	S3Puts      int `json:"s3Puts,omitempty"`
	ObjectBytes int `json:"objectBytes,omitempty"`
}

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
