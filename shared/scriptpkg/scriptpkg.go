// Package scriptpkg is how script packages are addressed, with no I/O: the
// Subresource Integrity value of a blob, the lockfile hash of a package set
// and the stored manifest document. The backend, the simulator and satctl
// all compute them the same way from here.
package scriptpkg

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"sort"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Integrity returns the sha512 Subresource Integrity value of data.
func Integrity(data []byte) string {
	sum := sha512.Sum512(data)
	return "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
}

var (
	integrityPattern = regexp.MustCompile(`^(sha256|sha384|sha512)-([A-Za-z0-9+/]+={0,2})$`)
	digestSizes      = map[string]int{"sha256": 32, "sha384": 48, "sha512": 64}
)

// ParseIntegrity splits a sha256, sha384 or sha512 Subresource Integrity
// value into its algorithm and decoded digest. EINVALID when it is not one.
func ParseIntegrity(integrity string) (alg string, digest []byte, err error) {
	m := integrityPattern.FindStringSubmatch(integrity)
	if m == nil {
		return "", nil, satellite.Errorf(satellite.EINVALID, "integrity is not a sha256, sha384 or sha512 SRI value")
	}
	digest, err = base64.StdEncoding.DecodeString(m[2])
	if err != nil || len(digest) != digestSizes[m[1]] {
		return "", nil, satellite.Errorf(satellite.EINVALID, "integrity digest does not decode to a %s digest", m[1])
	}
	return m[1], digest, nil
}

// VerifyIntegrity reports whether data has the given sha256, sha384 or
// sha512 Subresource Integrity value.
func VerifyIntegrity(integrity string, data []byte) bool {
	alg, digest, err := ParseIntegrity(integrity)
	if err != nil {
		return false
	}
	var sum []byte
	switch alg {
	case "sha256":
		s := sha256.Sum256(data)
		sum = s[:]
	case "sha384":
		s := sha512.Sum384(data)
		sum = s[:]
	default:
		s := sha512.Sum512(data)
		sum = s[:]
	}
	return string(sum) == string(digest)
}

// LockfileHash is deterministic over a manifest's entries: the hex sha256 of
// their canonical JSON, sorted by name then version, so the same package set
// always has the same hash whatever order it was given in.
func LockfileHash(entries []satellite.ManifestEntry) string {
	sorted := append([]satellite.ManifestEntry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Name != sorted[j].Name {
			return sorted[i].Name < sorted[j].Name
		}
		return sorted[i].Version < sorted[j].Version
	})
	b, _ := json.Marshal(sorted)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Manifest is the stored manifest document of a lockfile, as served by URL
// to satellites whose manifest is too large for one message.
type Manifest struct {
	LockfileHash string                    `json:"lockfileHash"`
	Entries      []satellite.ManifestEntry `json:"entries"`
}
