package simulator_test

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/shared/s3packages"
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

func TestVerifyIntegrity(t *testing.T) {
	data := []byte("export const x = 1;\n")
	s256, s384, s512 := sha256.Sum256(data), sha512.Sum384(data), sha512.Sum512(data)
	for _, good := range []string{
		"sha256-" + base64.StdEncoding.EncodeToString(s256[:]),
		"sha384-" + base64.StdEncoding.EncodeToString(s384[:]),
		"sha512-" + base64.StdEncoding.EncodeToString(s512[:]),
	} {
		if !s3packages.VerifyIntegrity(good, data) {
			t.Errorf("%s rejected", good)
		}
		if s3packages.VerifyIntegrity(good, append(data, '!')) {
			t.Errorf("%s accepted different data", good)
		}
	}
	for _, bad := range []string{"", "sha512", "md5-abc", "sha512-" + base64.StdEncoding.EncodeToString(s256[:])} {
		if s3packages.VerifyIntegrity(bad, data) {
			t.Errorf("%q accepted", bad)
		}
	}
}
