package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// FiguresDir is where `make cost` asks the tests to write the figures the
// cost model multiplies out ("" when it does not).
func FiguresDir() string { return os.Getenv("COST_FIGURES_DIR") }

// CostFigure is what one message costs, as the tests measure it (make
// cost: TestRequestBudgets and the figures beside it) and the cost model
// (infra/cmd/costmodel) reads it.
type CostFigure struct {
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

// WriteFigures writes v as name in FiguresDir, when it is set.
func WriteFigures(tb testing.TB, name string, v any) {
	tb.Helper()
	dir := FiguresDir()
	if dir == "" {
		return
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// MedianMs runs fn n times and returns its median duration in ms: in
// process against DynamoDB Local, so a figure for the cost model, never a
// test's assertion (noisy on a loaded machine).
func MedianMs(tb testing.TB, n int, fn func() error) float64 {
	tb.Helper()
	took := make([]time.Duration, 0, n)
	for range n {
		began := time.Now()
		if err := fn(); err != nil {
			tb.Fatal(err)
		}
		took = append(took, time.Since(began))
	}
	slices.Sort(took)
	return float64(took[n/2].Microseconds()) / 1000
}
