package simulator_test

import (
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/simulator"
)

func TestBackoffStaysWithinBoundsAndGrows(t *testing.T) {
	lo, hi := 100*time.Millisecond, 3*time.Second
	for attempt := 0; attempt < 40; attempt++ {
		ceiling := hi
		if d := lo << attempt; attempt < 30 && d < hi {
			ceiling = d
		}
		for i := 0; i < 200; i++ {
			d := simulator.Backoff(attempt, lo, hi)
			if d < lo/2 || d > ceiling {
				t.Fatalf("Backoff(%d) = %v, outside [%v, %v]", attempt, d, lo/2, ceiling)
			}
		}
	}
	// Jitter: repeated draws differ.
	seen := map[time.Duration]bool{}
	for i := 0; i < 50; i++ {
		seen[simulator.Backoff(5, lo, hi)] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays in 50 draws: no jitter", len(seen))
	}
}
