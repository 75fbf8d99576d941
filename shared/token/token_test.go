package token_test

import (
	"strings"
	"sync/atomic"
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

// TestRefusingCostsWhatAWrongTokenCosts checks the verifier spends one
// bcrypt on every well-formed token, whether it matches, is wrong, is for a
// deleted satellite (empty hash) or for none at all, and none on a
// malformed one.
func TestRefusingCostsWhatAWrongTokenCosts(t *testing.T) {
	tok, _ := token.New()
	other, _ := token.New()
	hash, err := token.Hash(tok)
	if err != nil {
		t.Fatal(err)
	}
	var compared atomic.Int64
	v := token.Bcrypt{Compared: &compared}
	cost := func(f func()) int64 {
		before, process := compared.Load(), token.Verifications()
		f()
		if n, m := compared.Load()-before, token.Verifications()-process; n != m {
			t.Errorf("the verifier counted %d comparisons, the process %d", n, m)
		}
		return compared.Load() - before
	}
	cases := []struct {
		name string
		do   func() bool
		ok   bool
		cost int64
	}{
		{"right token", func() bool { return v.Verify(hash, tok) }, true, 1},
		{"wrong token", func() bool { return v.Verify(hash, other) }, false, 1},
		{"tombstone", func() bool { return v.Verify("", tok) }, false, 1},
		{"malformed token", func() bool { return v.Verify(hash, "csat_short") }, false, 0},
		{"unknown satellite", func() bool { v.Refuse(tok); return false }, false, 1},
		{"unknown satellite, malformed token", func() bool { v.Refuse("nope"); return false }, false, 0},
	}
	for _, c := range cases {
		var ok bool
		if n := cost(func() { ok = c.do() }); n != c.cost || ok != c.ok {
			t.Errorf("%s: ok %v with %d bcrypts, want %v with %d", c.name, ok, n, c.ok, c.cost)
		}
	}
}
