package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

// Demo is the seeded demo satellite.
type Demo struct {
	SatelliteID  string
	Token        string // plaintext, new on every start
	LockfileHash string
}

// DemoSatelliteID names the demo satellite.
const DemoSatelliteID = "sat-demo"

// demoAssignment is one HTTP check whose collector declares a run secret.
const demoAssignment = `{
  "configId": "cfg-demo-http", "systemId": "sys-demo-web", "strategyId": "http",
  "config": {"url": "https://example.com/", "method": "GET", "timeoutMs": 5000},
  "collectors": [{"id": "col-demo-api", "collectorId": "http-request",
    "config": {"path": "/status", "secretEnv": {"API_TOKEN": "${{ secrets.DEMO_API_TOKEN }}"}}}],
  "intervalSeconds": 30, "configName": "Demo homepage", "systemName": "Demo web"
}`

const demoScript = `// demo-probe: a tiny script package published by the local stack.
export function check(response) {
  return response.status >= 200 && response.status < 400;
}
`

// seed creates (or refreshes) the demo satellite with a new token, its
// assignment, a published script package and the secrets file.
func (s *Stack) seed(ctx context.Context) (*Demo, error) {
	tok, err := token.New()
	if err != nil {
		return nil, err
	}
	hash, err := token.Hash(tok)
	if err != nil {
		return nil, err
	}
	err = s.Registry.CreateSatellite(ctx, satellite.Satellite{
		ID: DemoSatelliteID, Name: "Demo satellite", Region: "local", TokenHash: hash,
		CreatedAt: time.Now(), Tags: map[string]string{"env": "dev"},
	})
	if satellite.ErrorCode(err) == satellite.ECONFLICT {
		// Kept from an earlier run (--persist): only its token is new.
		err = s.Registry.SetTokenHash(ctx, DemoSatelliteID, hash)
	}
	if err != nil {
		return nil, err
	}
	a, err := satellite.ParseAssignment([]byte(demoAssignment))
	if err != nil {
		return nil, err
	}
	if err := s.Registry.ReplaceAssignments(ctx, DemoSatelliteID, []satellite.Assignment{a}); err != nil {
		return nil, err
	}
	integrity, err := s.Publisher.PutBlob(ctx, []byte(demoScript))
	if err != nil {
		return nil, err
	}
	lockfile, err := s.Publisher.PutManifest(ctx, []satellite.ManifestEntry{{Name: "demo-probe", Version: "1.0.0", Integrity: integrity}})
	if err != nil {
		return nil, err
	}
	if err := s.Registry.SetDesiredLockfileHash(ctx, lockfile); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.SecretsFile); errors.Is(err, os.ErrNotExist) {
		if err := s.WriteSecrets(map[string]string{"DEMO_API_TOKEN": "demo-api-token-value"}); err != nil {
			return nil, err
		}
	}
	return &Demo{SatelliteID: DemoSatelliteID, Token: tok, LockfileHash: lockfile}, nil
}

// SecretNames lists the names in the secrets file (never the values).
func (s *Stack) SecretNames() []string {
	b, err := os.ReadFile(s.SecretsFile)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	return names
}
