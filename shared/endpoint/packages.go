package endpoint

import (
	"context"
	"encoding/base64"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Script packages: manifest and blob requests, answered inline or by
// presigned URL.

func (s *Service) manifest(ctx context.Context, c Conn, _ satellite.Connection, m *protocol.ManifestRequest) error {
	var entries []satellite.ManifestEntry
	if s.Packages != nil {
		var err error
		entries, err = s.Packages.Manifest(ctx, m.LockfileHash)
		switch {
		case err == nil || satellite.Is(err, satellite.ENOTFOUND, satellite.EINVALID):
			// Unknown or malformed: the protocol's answer is empty entries.
		default:
			return err
		}
	}
	reply := protocol.NewScriptPackageManifest(m.LockfileHash, entries)
	err := s.reply(ctx, c, reply)
	if satellite.ErrorCode(err) != satellite.ETOOLARGE {
		return err
	}
	url, err := s.Packages.ManifestURL(ctx, m.LockfileHash, s.BlobURLTTL)
	if err != nil {
		return err
	}
	reply.Entries, reply.ManifestURL = []satellite.ManifestEntry{}, url
	return s.reply(ctx, c, reply)
}

// blob answers a blob request: inline when the blob fits one frame, else
// by presigned URL. Its size decides which, and is learnt without reading
// the blob (a HEAD, or this instance's cache).
func (s *Service) blob(ctx context.Context, c Conn, _ satellite.Connection, m *protocol.BlobRequest) error {
	missing := protocol.ScriptPackageBlob{Type: protocol.TypeScriptPackageBlob, Integrity: m.Integrity}
	if s.Packages == nil {
		return s.reply(ctx, c, missing)
	}
	size, err := s.Packages.BlobSize(ctx, m.Integrity)
	switch {
	case err == nil:
	case satellite.Is(err, satellite.ENOTFOUND, satellite.EINVALID):
		return s.reply(ctx, c, missing)
	default:
		return err
	}
	if !protocol.InlineBlobFits(m.Integrity, size) {
		url, err := s.Packages.BlobURL(ctx, m.Integrity, s.BlobURLTTL)
		if err != nil {
			return err
		}
		return s.reply(ctx, c, protocol.ScriptPackageBlob{Type: protocol.TypeScriptPackageBlob, Integrity: m.Integrity, URL: url, Size: size})
	}
	data, err := s.Packages.ReadBlob(ctx, m.Integrity, size)
	switch {
	case err == nil:
	case satellite.Is(err, satellite.ENOTFOUND):
		return s.reply(ctx, c, missing)
	default:
		return err
	}
	encoded := base64.StdEncoding.EncodeToString(data)
	return s.reply(ctx, c, protocol.ScriptPackageBlob{Type: protocol.TypeScriptPackageBlob, Integrity: m.Integrity, Data: &encoded})
}
