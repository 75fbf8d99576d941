package simulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

// reconcile brings the local packages to the lockfile hash: manifest, every
// missing blob (verified), then reports its sync state.
func (s *Satellite) reconcile(ctx context.Context, hashValue any) {
	hash, ok := hashValue.(string)
	if !ok {
		return // no store, or nothing published
	}
	s.mu.Lock()
	if s.state.LockfileHash != nil && *s.state.LockfileHash == hash && s.state.SyncStatus == satellite.SyncReady {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.syncState(ctx, &hash, satellite.SyncSyncing, "")
	manifest, err := s.request(ctx, "manifest:"+hash, map[string]any{"type": protocol.TypeManifestRequest, "lockfileHash": hash})
	if err != nil {
		s.syncState(ctx, &hash, satellite.SyncError, err.Error())
		return
	}
	var entries []satellite.ManifestEntry
	b, _ := json.Marshal(manifest["entries"])
	_ = json.Unmarshal(b, &entries)
	if url, _ := manifest["manifestUrl"].(string); url != "" {
		var doc scriptpkg.Manifest
		body, err := s.fetch(url)
		if err == nil {
			err = json.Unmarshal(body, &doc)
		}
		if err != nil {
			s.syncState(ctx, &hash, satellite.SyncError, "manifest by URL: "+err.Error())
			return
		}
		entries = doc.Entries
	}
	fetched := 0
	for _, e := range entries {
		s.mu.Lock()
		_, have := s.state.Packages[e.Integrity]
		s.mu.Unlock()
		if have {
			continue
		}
		data, err := s.blob(ctx, e.Integrity)
		if err != nil {
			s.syncState(ctx, &hash, satellite.SyncError, fmt.Sprintf("%s@%s: %v", e.Name, e.Version, err))
			return
		}
		s.mu.Lock()
		s.state.Packages[e.Integrity] = data
		s.mu.Unlock()
		fetched++
	}
	s.mu.Lock()
	s.state.LockfileHash = &hash
	s.mu.Unlock()
	s.logf("script packages ready: lockfile %s, %d package(s), %d fetched", hash, len(entries), fetched)
	s.syncState(ctx, &hash, satellite.SyncReady, "")
}

func (s *Satellite) blob(ctx context.Context, integrity string) ([]byte, error) {
	reply, err := s.request(ctx, "blob:"+integrity, map[string]any{"type": protocol.TypeBlobRequest, "integrity": integrity})
	if err != nil {
		return nil, err
	}
	var data []byte
	switch {
	case reply["data"] != nil:
		data, err = base64.StdEncoding.DecodeString(fmt.Sprint(reply["data"]))
		if err != nil {
			return nil, fmt.Errorf("blob data is not base64")
		}
	case reply["url"] != nil:
		data, err = s.fetch(fmt.Sprint(reply["url"]))
		if err != nil {
			return nil, err
		}
		if size, ok := reply["size"].(float64); ok && int(size) != len(data) {
			return nil, fmt.Errorf("blob by URL has %d bytes, expected %d", len(data), int(size))
		}
		s.logf("fetched %d byte blob by URL", len(data))
	default:
		return nil, fmt.Errorf("blob %s does not exist", integrity)
	}
	if !scriptpkg.VerifyIntegrity(integrity, data) {
		return nil, fmt.Errorf("integrity mismatch")
	}
	return data, nil
}

func (s *Satellite) fetch(url string) ([]byte, error) {
	resp, err := s.cfg.HTTPClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", strings.SplitN(url, "?", 2)[0], resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func (s *Satellite) syncState(ctx context.Context, hash *string, status satellite.SyncStatus, message string) {
	s.mu.Lock()
	s.state.SyncStatus = status
	s.mu.Unlock()
	frame := map[string]any{"type": protocol.TypeScriptPackageSyncState, "lockfileHash": hash, "status": status}
	if message != "" {
		frame["errorMessage"] = message
		s.logf("script packages: %s", message)
	}
	_ = s.send(ctx, frame)
}
