package scriptpkg_test

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"testing"

	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

func TestVerifyIntegrity(t *testing.T) {
	data := []byte("export const x = 1;\n")
	s256, s384, s512 := sha256.Sum256(data), sha512.Sum384(data), sha512.Sum512(data)
	for _, good := range []string{
		"sha256-" + base64.StdEncoding.EncodeToString(s256[:]),
		"sha384-" + base64.StdEncoding.EncodeToString(s384[:]),
		"sha512-" + base64.StdEncoding.EncodeToString(s512[:]),
		scriptpkg.Integrity(data),
	} {
		if !scriptpkg.VerifyIntegrity(good, data) {
			t.Errorf("%s rejected", good)
		}
		if scriptpkg.VerifyIntegrity(good, append(data, '!')) {
			t.Errorf("%s accepted different data", good)
		}
	}
	for _, bad := range []string{
		"", "sha512", "md5-abc", "sha512-" + base64.StdEncoding.EncodeToString(s256[:]),
		"sha512-../../secret", "sha256-" + base64.StdEncoding.EncodeToString(s256[:]) + " ",
	} {
		if scriptpkg.VerifyIntegrity(bad, data) {
			t.Errorf("%q accepted", bad)
		}
		if _, _, err := scriptpkg.ParseIntegrity(bad); satellite.ErrorCode(err) != satellite.EINVALID {
			t.Errorf("ParseIntegrity(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestLockfileHashIsDeterministic(t *testing.T) {
	a := []satellite.ManifestEntry{{Name: "b", Version: "1", Integrity: "sha512-x"}, {Name: "a", Version: "2", Integrity: "sha512-y"}}
	b := []satellite.ManifestEntry{a[1], a[0]}
	if scriptpkg.LockfileHash(a) != scriptpkg.LockfileHash(b) {
		t.Error("order changes the hash")
	}
	c := []satellite.ManifestEntry{a[0], {Name: "a", Version: "3", Integrity: "sha512-y"}}
	if scriptpkg.LockfileHash(a) == scriptpkg.LockfileHash(c) {
		t.Error("a different version has the same hash")
	}
	if !satellite.ValidLockfileHash(scriptpkg.LockfileHash(a)) {
		t.Error("a lockfile hash does not have the lockfile hash format")
	}
}
