package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// demoAssignment is one HTTP check run in two environments, whose strategy
// config references a secret (config secrets) and whose collector declares
// a run secret.
const demoAssignment = `{
  "configId": "cfg-demo-http", "systemId": "sys-demo-web", "strategyId": "http",
  "config": {"url": "https://example.com/", "method": "GET", "timeoutMs": 5000,
    "headers": [{"name": "Authorization", "value": "${{ secrets.DEMO_API_TOKEN }}"}]},
  "collectors": [{"id": "col-demo-api", "collectorId": "http-request",
    "config": {"path": "/status", "secretEnv": {"API_TOKEN": "${{ secrets.DEMO_API_TOKEN }}"}}}],
  "intervalSeconds": 30, "configName": "Demo homepage", "systemName": "Demo web",
  "systemMetadata": {"owner": "demo-team", "tier": "gold"},
  "environments": [
    {"id": "env-prod", "name": "Production", "fields": {"baseUrl": "https://example.com/"}},
    {"id": "env-staging", "name": "Staging", "fields": {"baseUrl": "https://staging.example.com/"}}
  ]
}`

// demoSandboxPolicy is the fleet-wide policy the local stack sets.
const demoSandboxPolicy = `{"egress":{"allow":["example.com:443","staging.example.com:443"]},"filesystem":"read-only","timeoutMs":30000}`

// demoScrapeConfig is the demo satellite's scrape capability: one target,
// whose bearer token is bound to a secret.
var demoScrapeConfig = satellite.CapabilityConfig{
	Kind:    "scrape",
	Payload: json.RawMessage(`{"targets":[{"id":"demo-node-exporter","url":"http://127.0.0.1:9100/metrics","intervalSeconds":30}]}`),
	Secrets: map[string]map[string]string{"demo-node-exporter": {"bearerToken": "${{ secrets.DEMO_SCRAPE_TOKEN }}"}},
}

// demoSecrets are the values the demo's references resolve to.
var demoSecrets = map[string]string{"DEMO_API_TOKEN": "demo-api-token-value", "DEMO_SCRAPE_TOKEN": "demo-scrape-token-value"}

const demoScript = `// demo-probe: a tiny script package published by the local stack.
export function check(response) {
  return response.status >= 200 && response.status < 400;
}
`

// seed creates (or refreshes) the demo satellite with a new token, its
// assignment, a scrape capability config, a published script package, the
// fleet's sandbox policy and the secrets file: with them the banner's
// simulator command exercises every message of the protocol.
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
	if err := s.Registry.SetSandboxPolicy(ctx, json.RawMessage(demoSandboxPolicy), time.Now()); err != nil {
		return nil, err
	}
	scrape := demoScrapeConfig
	scrape.UpdatedAt = time.Now()
	if err := s.Registry.SetCapabilityConfig(ctx, DemoSatelliteID, scrape); err != nil {
		return nil, err
	}
	// Add the demo's secrets a kept secrets file lacks; never overwrite.
	values := map[string]string{}
	if b, err := os.ReadFile(s.SecretsFile); err == nil {
		if err := json.Unmarshal(b, &values); err != nil {
			return nil, fmt.Errorf("secrets file %s: %w", s.SecretsFile, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	missing := false
	for k, v := range demoSecrets {
		if _, ok := values[k]; !ok {
			values[k], missing = v, true
		}
	}
	if missing {
		if err := s.WriteSecrets(values); err != nil {
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
