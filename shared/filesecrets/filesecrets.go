// Package filesecrets is the adapter of satellite.SecretSource over a local
// JSON file {"NAME": "value", ...}: the local stack's stand-in for Secrets
// Manager. The file is read on every call, so edits apply without a restart.
package filesecrets

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Source implements satellite.SecretSource.
type Source struct{ path string }

var _ satellite.SecretSource = (*Source)(nil)

// New returns a source reading path.
func New(path string) *Source { return &Source{path: path} }

// Path is the file the source reads.
func (s *Source) Path() string { return s.path }

// Resolve implements satellite.SecretSource: every name from one read of
// the file. A missing file holds no secrets.
func (s *Source) Resolve(ctx context.Context, names []string) (map[string]string, error) {
	all := map[string]string{}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, satellite.Wrap(err, satellite.EINTERNAL, "read secrets file")
	default:
		if err := json.Unmarshal(b, &all); err != nil {
			// The decoder's message could quote file content: keep only that
			// it failed.
			return nil, satellite.Errorf(satellite.EINTERNAL, "secrets file %s is not a JSON object of strings", s.path)
		}
	}
	values := make(map[string]string, len(names))
	for _, name := range names {
		v, ok := all[name]
		if !ok {
			return nil, satellite.Errorf(satellite.ENOTFOUND, "Secret %s could not be resolved", name)
		}
		values[name] = v
	}
	return values, nil
}
