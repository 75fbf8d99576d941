package wshandler_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
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
	// On an instance without the connection's binding cached.
	ColdDynamoDB   int     `json:"coldDynamoRequests"`
	ColdReadUnits  float64 `json:"coldReadUnits"`
	ColdWriteUnits float64 `json:"coldWriteUnits"`
	// DurationMs is the handler's median time in process against DynamoDB
	// Local on the warm instance (one run for authenticate and $disconnect).
	DurationMs float64 `json:"durationMs"`
	// ItemBytes is the size of the item the message stores (results);
	// FeedEntryBytes the size of that result in a results feed message.
	ItemBytes      int `json:"itemBytes,omitempty"`
	FeedEntryBytes int `json:"feedEntryBytes,omitempty"`
}

func wantFigures() bool { return os.Getenv("COST_FIGURES_DIR") != "" }

// writeFigures writes v as name in COST_FIGURES_DIR, when it is set.
func writeFigures(t *testing.T, name string, v any) {
	t.Helper()
	dir := os.Getenv("COST_FIGURES_DIR")
	if dir == "" {
		return
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// medianMs runs fn n times and returns its median duration in ms.
func medianMs(t *testing.T, n int, fn func() error) float64 {
	t.Helper()
	took := make([]time.Duration, 0, n)
	for range n {
		began := time.Now()
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(began))
	}
	slices.Sort(took)
	return float64(took[n/2].Microseconds()) / 1000
}
