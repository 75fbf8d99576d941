package filesecrets_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/shared/filesecrets"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestResolveReadsEveryNameFromOneRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.json")
	src := filesecrets.New(path)
	if _, err := src.Resolve(context.Background(), []string{"A"}); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("without a file: %v, want ENOTFOUND", err)
	}
	if err := os.WriteFile(path, []byte(`{"A": "a-value", "B": "b-value"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := src.Resolve(context.Background(), []string{"A", "B", "A"})
	if err != nil || got["A"] != "a-value" || got["B"] != "b-value" || len(got) != 2 {
		t.Errorf("Resolve = %v, %v", got, err)
	}
	_, err = src.Resolve(context.Background(), []string{"A", "MISSING", "OTHER"})
	if satellite.ErrorCode(err) != satellite.ENOTFOUND || satellite.ErrorMessage(err) != "Secret MISSING could not be resolved" {
		t.Errorf("missing name: %v, want ENOTFOUND naming the first missing", err)
	}
	// Edits apply on the next call (the local stack has no cache).
	if err := os.WriteFile(path, []byte(`{"A": "rotated"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := src.Resolve(context.Background(), []string{"A"}); err != nil || got["A"] != "rotated" {
		t.Errorf("after an edit: %v, %v", got, err)
	}
	// A malformed file is an error that quotes none of it.
	if err := os.WriteFile(path, []byte(`{"A": "half-a-secret`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Resolve(context.Background(), []string{"A"}); satellite.ErrorCode(err) != satellite.EINTERNAL || strings.Contains(err.Error(), "half-a-secret") {
		t.Errorf("malformed file: %v, want EINTERNAL without its content", err)
	}
}
