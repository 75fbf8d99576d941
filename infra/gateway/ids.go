package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
)

// idEncoding is padded base64 with the URL-safe alphabet, so ids are safe in
// a URL path and look like API Gateway's own ("L0SM9cOFvHcCIhw=").
var idEncoding = base64.URLEncoding

// newID returns 11 random bytes as 16 characters ending in '=', the shape of
// API Gateway's connectionId, requestId and messageId.
func newID() string {
	b := make([]byte, 11)
	_, _ = rand.Read(b)
	return idEncoding.EncodeToString(b)
}

// newAPIID returns a 10 character lower-case id like an API's.
func newAPIID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String()
}
