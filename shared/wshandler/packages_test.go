package wshandler_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/s3packages"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

func integrity(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
}

// publishBlob stores a blob where the backend looks for it.
func (h *harness) publishBlob(b []byte) string {
	h.t.Helper()
	in := integrity(b)
	key, err := s3packages.BlobKey(in)
	if err != nil {
		h.t.Fatal(err)
	}
	h.env.PutObject(h.t, key, b)
	return in
}

// publishManifest stores the manifest of entries under its lockfile hash,
// as the admin API does, and returns the hash.
func (h *harness) publishManifest(entries []satellite.ManifestEntry) string {
	h.t.Helper()
	hash := scriptpkg.LockfileHash(entries)
	h.storeManifest(hash, scriptpkg.Manifest{LockfileHash: hash, Entries: entries})
	return hash
}

// storeManifest stores doc under lockfileHash as it is, as anyone with
// write access to the bucket could.
func (h *harness) storeManifest(lockfileHash string, doc scriptpkg.Manifest) {
	h.t.Helper()
	key, err := s3packages.ManifestKey(lockfileHash)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := json.Marshal(doc)
	h.env.PutObject(h.t, key, b)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func lastFrame(t *testing.T, h *harness, id string) map[string]any {
	t.Helper()
	frames := h.mgmt.Frames(t, id)
	if len(frames) == 0 {
		t.Fatal("no frame sent")
	}
	return frames[len(frames)-1]
}

func TestScriptPackageManifest(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-pkg")
	id := h.authenticate("sat-pkg", tok)
	entries := []satellite.ManifestEntry{{Name: "probe-utils", Version: "1.2.0", Integrity: integrity([]byte("a"))}}
	lock := h.publishManifest(entries)

	h.send(testenv.Message(t, "manifest-request", id, map[string]any{"lockfileHash": lock}))
	got := lastFrame(t, h, id)
	b, _ := json.Marshal(got["entries"])
	var gotEntries []satellite.ManifestEntry
	_ = json.Unmarshal(b, &gotEntries)
	if got["type"] != "script_package_manifest" || got["lockfileHash"] != lock || len(gotEntries) != 1 || gotEntries[0] != entries[0] {
		t.Errorf("manifest reply = %v", got)
	}

	h.send(testenv.Message(t, "manifest-request", id, map[string]any{"lockfileHash": "lock-unknown"}))
	got = lastFrame(t, h, id)
	if e, ok := got["entries"].([]any); !ok || len(e) != 0 || got["lockfileHash"] != "lock-unknown" {
		t.Errorf("manifest for an unknown hash = %v, want empty entries", got)
	}
	// Entries stored under a hash they do not hash to are not served: the
	// answer is the unknown hash's, and the backend logs the corruption.
	h.storeManifest("lock-forged", scriptpkg.Manifest{LockfileHash: "lock-forged", Entries: entries})
	h.send(testenv.Message(t, "manifest-request", id, map[string]any{"lockfileHash": "lock-forged"}))
	got = lastFrame(t, h, id)
	if e, ok := got["entries"].([]any); !ok || len(e) != 0 || got["lockfileHash"] != "lock-forged" || got["manifestUrl"] != nil {
		t.Errorf("manifest stored under another hash = %v, want empty entries", got)
	}
	// A hash that is not a lockfile hash is an invalid frame, answered as
	// an unknown one is (TestMalformedRequestsAreAnswered).
	for _, hash := range []string{"../../etc", ""} {
		h.send(testenv.Message(t, "manifest-request", id, map[string]any{"lockfileHash": hash}))
		if got := lastFrame(t, h, id); got["lockfileHash"] != hash || len(got["entries"].([]any)) != 0 {
			t.Errorf("manifest for the malformed hash %q = %v, want empty entries", hash, got)
		}
	}
	if h.mgmt.Closed(id) {
		t.Errorf("a malformed hash closed the connection")
	}
}

func TestLargeManifestIsServedByURL(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-bigman")
	id := h.authenticate("sat-bigman", tok)
	var entries []satellite.ManifestEntry
	for i := 0; len(entries)*150 < protocol.MaxMessageBytes+10000; i++ {
		entries = append(entries, satellite.ManifestEntry{Name: fmt.Sprintf("package-%04d", i), Version: "1.0.0", Integrity: integrity([]byte{byte(i), byte(i >> 8)})})
	}
	lock := h.publishManifest(entries)
	h.send(testenv.Message(t, "manifest-request", id, map[string]any{"lockfileHash": lock}))
	got := lastFrame(t, h, id)
	url, _ := got["manifestUrl"].(string)
	if url == "" || len(got["entries"].([]any)) != 0 {
		t.Fatalf("reply = %.200v, want empty entries and a manifestUrl", got)
	}
	var doc scriptpkg.Manifest
	if err := json.Unmarshal(fetch(t, url), &doc); err != nil || len(doc.Entries) != len(entries) {
		t.Errorf("manifest at URL: %d entries, %v; want %d", len(doc.Entries), err, len(entries))
	}
	assertNoPostOverLimit(t, h, id)
}

func fetch(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET presigned URL: %s: %s", resp.Status, b)
	}
	return b
}

func assertNoPostOverLimit(t *testing.T, h *harness, id string) {
	t.Helper()
	for _, p := range h.mgmt.Posts(id) {
		if len(p) > protocol.MaxMessageBytes {
			t.Errorf("posted a %d byte frame, over the %d limit", len(p), protocol.MaxMessageBytes)
		}
	}
}

func TestScriptPackageBlob(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-blob")
	id := h.authenticate("sat-blob", tok)

	// The largest blob that still fits inline, and one byte more.
	fits := 0
	for n := protocol.MaxMessageBytes; n > 0; n-- {
		if protocol.InlineBlobFits(integrity(nil), int64(n)) {
			fits = n
			break
		}
	}
	small := h.publishBlob([]byte("export function check() { return true; }\n"))
	edge := h.publishBlob(randomBytes(t, fits))
	over := randomBytes(t, fits+1)
	overIntegrity := h.publishBlob(over)
	large := randomBytes(t, 3<<20)
	largeIntegrity := h.publishBlob(large)

	t.Run("small blob inline", func(t *testing.T) {
		h.send(testenv.Message(t, "blob-request", id, map[string]any{"integrity": small}))
		got := lastFrame(t, h, id)
		data, _ := base64.StdEncoding.DecodeString(got["data"].(string))
		if got["type"] != "script_package_blob" || got["integrity"] != small || string(data) != "export function check() { return true; }\n" {
			t.Errorf("reply = %v", got)
		}
	})
	t.Run("largest inline blob fits exactly", func(t *testing.T) {
		h.send(testenv.Message(t, "blob-request", id, map[string]any{"integrity": edge}))
		posts := h.mgmt.Posts(id)
		if last := posts[len(posts)-1]; len(last) > protocol.MaxMessageBytes || !bytes.Contains(last, []byte(`"data":"`)) {
			t.Errorf("reply of %d bytes, want inline data within %d", len(last), protocol.MaxMessageBytes)
		}
	})
	for name, blob := range map[string]struct {
		integrity string
		content   []byte
	}{"one byte over inline": {overIntegrity, over}, "3 MiB": {largeIntegrity, large}} {
		t.Run(name+" by URL", func(t *testing.T) {
			h.send(testenv.Message(t, "blob-request", id, map[string]any{"integrity": blob.integrity}))
			got := lastFrame(t, h, id)
			url, _ := got["url"].(string)
			if got["data"] != nil || url == "" || got["size"] != float64(len(blob.content)) {
				t.Fatalf("reply = %.300v, want data null, url and size %d", got, len(blob.content))
			}
			if b := fetch(t, url); !bytes.Equal(b, blob.content) {
				t.Errorf("URL served %d bytes that differ from the blob", len(b))
			}
		})
	}
	t.Run("missing and malformed blobs are null", func(t *testing.T) {
		for _, in := range []string{integrity([]byte("never published")), "sha512-notbase64!!", "md5-abc", ""} {
			h.send(testenv.Message(t, "blob-request", id, map[string]any{"integrity": in}))
			got := lastFrame(t, h, id)
			if v, ok := got["data"]; !ok || v != nil || got["integrity"] != in {
				t.Errorf("blob %q: reply %v, want data null", in, got)
			}
		}
	})
	assertNoPostOverLimit(t, h, id)
}

// Content stored under a blob's address that does not match it (a corrupted
// or forged object) is never sent, and the failure is logged; the blob
// published right afterwards is served, and then kept by the instance.
func TestCorruptBlobIsNeverSent(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-corrupt")
	id := h.authenticate("sat-corrupt", tok)
	content := []byte("export const real = true;\n")
	in := integrity(content)
	key, err := s3packages.BlobKey(in)
	if err != nil {
		t.Fatal(err)
	}
	h.env.PutObject(t, key, []byte("export const forged = true;\n"))
	before := len(h.mgmt.Posts(id))
	resp, err := h.message.WebSocket.Message(ctx, testenv.Message(t, "blob-request", id, map[string]any{"integrity": in}))
	if err == nil || resp.StatusCode != 500 {
		t.Errorf("corrupt blob: status %d, error %v; want a function error", resp.StatusCode, err)
	}
	if got := len(h.mgmt.Posts(id)) - before; got != 0 {
		t.Errorf("corrupt blob answered with %d frames, want none", got)
	}
	if failed := h.logLines("frame failed"); len(failed) != 1 || !strings.Contains(failed[0]["error"].(string), "does not match its integrity") {
		t.Errorf("log = %v, want one failure naming the integrity mismatch", failed)
	}

	h.env.PutObject(t, key, content)
	for range 2 {
		h.calls["message"].Reset()
		h.send(testenv.Message(t, "blob-request", id, map[string]any{"integrity": in}))
		got := lastFrame(t, h, id)
		data, _ := base64.StdEncoding.DecodeString(fmt.Sprint(got["data"]))
		if !bytes.Equal(data, content) {
			t.Errorf("repaired blob = %v", got)
		}
	}
	// The size was kept from the first request; the content once verified.
	if n := h.calls["message"].Count("S3"); n != 0 {
		t.Errorf("second request for the repaired blob made %d S3 requests, want 0", n)
	}
}

func TestScriptPackagesWithoutStore(t *testing.T) {
	h := newHarness(t, withoutPackages)
	tok := h.satellite("sat-nostore")
	id := h.authenticate("sat-nostore", tok)
	h.send(testenv.Message(t, "manifest-request", id, map[string]any{"lockfileHash": "lock-1"}))
	if got := lastFrame(t, h, id); len(got["entries"].([]any)) != 0 {
		t.Errorf("manifest without store = %v", got)
	}
	h.send(testenv.Message(t, "blob-request", id, nil))
	if got := lastFrame(t, h, id); got["data"] != nil {
		t.Errorf("blob without store = %v", got)
	}
	if n := h.calls["message"].Count("S3"); n != 0 {
		t.Errorf("%d S3 requests without a store", n)
	}
}
