// Package token issues satellite tokens and verifies them against their
// bcrypt hashes.
package token

import (
	"crypto/rand"
	"encoding/base64"

	"golang.org/x/crypto/bcrypt"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Prefix starts every satellite token.
const Prefix = "csat_"

// Cost is the bcrypt cost of stored token hashes.
const Cost = 10

// DecoyHash is a bcrypt hash (cost Cost) of a random value nobody knows. An
// authentication attempt for an unknown or malformed client id is verified
// against it, so that it costs the same as a wrong token for a real satellite
// and response times do not reveal which satellite ids exist.
const DecoyHash = "$2a$10$8.78FSpjeveALB8OHrkLEuF/3789fIvCk4gh90NtYKNGpGcWH/e5K"

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

// Bcrypt verifies tokens with bcrypt.
type Bcrypt struct{}

var _ satellite.TokenVerifier = Bcrypt{}

// Verify reports whether token matches hash.
func (Bcrypt) Verify(hash, plaintext string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(plaintext)) == nil
}
