// Package token issues satellite tokens and verifies them against their
// bcrypt hashes.
package token

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Prefix starts every satellite token.
const Prefix = "csat_"

// Cost is the bcrypt cost of stored token hashes.
const Cost = 10

// decoyHash is a bcrypt hash (cost Cost) of a random value nobody knows.
// Refuse verifies against it, so that refusing an unknown satellite costs
// what a wrong token for a real one does and response times do not reveal
// which satellite ids exist.
var decoyHash = []byte("$2a$10$8.78FSpjeveALB8OHrkLEuF/3789fIvCk4gh90NtYKNGpGcWH/e5K")

// New returns a fresh plaintext token: Prefix followed by 32 random bytes in
// unpadded base64url.
func New() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", satellite.Wrap(err, satellite.EINTERNAL, "generate token")
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Hash returns the bcrypt hash to store for a plaintext token.
func Hash(plaintext string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(plaintext), Cost)
	if err != nil {
		return "", satellite.Wrap(err, satellite.EINVALID, "hash token")
	}
	return string(h), nil
}

// encodedLength is the length of a token's random part: 32 bytes in
// unpadded base64url.
var encodedLength = base64.RawURLEncoding.EncodedLen(32)

// WellFormed reports whether plaintext looks like a token New makes: Prefix
// and 43 base64url characters. Anything else is wrong without a bcrypt.
func WellFormed(plaintext string) bool {
	rest, ok := strings.CutPrefix(plaintext, Prefix)
	if !ok || len(rest) != encodedLength {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Bcrypt verifies tokens with bcrypt.
type Bcrypt struct {
	// Compared, when set, counts this verifier's bcrypt comparisons, real
	// or decoy, at the comparison itself: tests count what each refusal
	// costs without timing it.
	Compared *atomic.Int64
}

var _ satellite.TokenVerifier = Bcrypt{}

// verifications counts bcrypt comparisons in this process.
var verifications atomic.Int64

// Verifications returns how many tokens this process has checked with
// bcrypt (benchmarks measure what refusing costs with it).
func Verifications() int64 { return verifications.Load() }

// WellFormed reports whether plaintext is shaped like a token (see the
// package function).
func (Bcrypt) WellFormed(plaintext string) bool { return WellFormed(plaintext) }

// Verify reports whether plaintext matches hash. A malformed token is
// refused without a bcrypt; every well-formed one costs one, also against
// an empty hash (a deleted satellite's tombstone), which nothing matches.
func (b Bcrypt) Verify(hash, plaintext string) bool {
	if !WellFormed(plaintext) {
		return false
	}
	if hash == "" {
		b.Refuse(plaintext)
		return false
	}
	return b.compare([]byte(hash), plaintext)
}

// Refuse spends on plaintext what Verify would, against a hash no token
// matches.
func (b Bcrypt) Refuse(plaintext string) {
	if !WellFormed(plaintext) {
		return
	}
	_ = b.compare(decoyHash, plaintext)
}

// compare is the one place a token meets bcrypt.
func (b Bcrypt) compare(hash []byte, plaintext string) bool {
	verifications.Add(1)
	if b.Compared != nil {
		b.Compared.Add(1)
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(plaintext)) == nil
}
