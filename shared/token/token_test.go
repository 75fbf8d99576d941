package token_test

import (
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/shared/token"
)

func TestWellFormed(t *testing.T) {
	tok, err := token.New()
	if err != nil {
		t.Fatal(err)
	}
	if !token.WellFormed(tok) {
		t.Errorf("a new token %q is not well formed", tok)
	}
	for _, bad := range []string{
		"", "csat_", "csat_wrong", tok[:len(tok)-1], tok + "A", "CSAT_" + tok[5:], "xsat_" + tok[5:],
		"csat_" + strings.Repeat("A", 42) + "=", "csat_" + strings.Repeat("A", 42) + "/", "csat_" + strings.Repeat("é", 22),
	} {
		if token.WellFormed(bad) {
			t.Errorf("WellFormed(%q) = true", bad)
		}
	}
}
