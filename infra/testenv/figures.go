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
