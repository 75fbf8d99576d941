package wshandler_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// TestEventFixturesRoundTrip checks every WebSocket events/ fixture decodes
// into the event type the handlers take without losing a field, has the
// route API Gateway gives it, and (for messages) carries a valid frame.
func TestEventFixturesRoundTrip(t *testing.T) {
	var files []string
	for _, pattern := range []string{"connect.json", "disconnect.json", "message-*.json"} {
		matches, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "events", pattern))
		if err != nil || len(matches) == 0 {
			t.Fatalf("no fixtures %s: %v", pattern, err)
		}
		files = append(files, matches...)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var original map[string]any
			if err := json.Unmarshal(raw, &original); err != nil {
				t.Fatal(err)
			}
			var ev events.APIGatewayWebsocketProxyRequest
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			again, _ := json.Marshal(ev)
			var round map[string]any
			_ = json.Unmarshal(again, &round)
			assertSubset(t, "", original, round)

			rc := ev.RequestContext
			want := map[string][2]string{"connect": {"$connect", "CONNECT"}, "disconnect": {"$disconnect", "DISCONNECT"}}[name]
			if strings.HasPrefix(name, "message-") {
				want = [2]string{"$default", "MESSAGE"}
				if _, err := protocol.Parse([]byte(ev.Body)); err != nil {
					t.Errorf("body is not a valid frame: %v", err)
				}
			}
			if rc.RouteKey != want[0] || rc.EventType != want[1] || rc.ConnectionID == "" || rc.APIID == "" || rc.Stage == "" || rc.RequestID == "" {
				t.Errorf("request context = %+v", rc)
			}
		})
	}
}

func assertSubset(t *testing.T, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: lost object", path)
			return
		}
		for k, v := range w {
			assertSubset(t, path+"."+k, v, g[k])
		}
	default:
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: %v became %v", path, want, got)
		}
	}
}

// strategyWithSecrets is an assignment whose strategy config and collectors
// hold secret references among plain values.
func strategyWithSecrets(t *testing.T, configID string, secret string) satellite.Assignment {
	t.Helper()
	raw := map[string]any{
		"configId": configID, "systemId": "sys-" + configID, "strategyId": "http", "intervalSeconds": 30,
		"config": map[string]any{
			"url":     "https://example.test",
			"auth":    map[string]any{"user": "bob", "password": "${{ secrets." + secret + " }}"},
			"headers": []any{map[string]any{"name": "X-Token", "value": "${{secrets.API_TOKEN}}"}, map[string]any{"name": "Accept", "value": "text/plain"}},
		},
		"collectors": []any{
			map[string]any{"id": "col-db", "collectorId": "sql", "config": map[string]any{"dsn": "postgres://db", "password": "${{ secrets.DB-PASSWORD }}"}},
			map[string]any{"id": "col-plain", "collectorId": "ping", "config": map[string]any{"host": "example.test"}},
		},
	}
	b, _ := json.Marshal(raw)
	a, err := satellite.ParseAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// withEnvironments is an assignment listing environments.
func withEnvironments(t *testing.T, configID, systemID string, envs ...string) satellite.Assignment {
	t.Helper()
	list := []any{}
	for _, e := range envs {
		list = append(list, map[string]any{"id": e, "name": strings.ToUpper(e), "fields": map[string]any{"host": e + ".example.test"}})
	}
	raw := map[string]any{
		"configId": configID, "systemId": systemID, "strategyId": "http", "intervalSeconds": 30,
		"config": map[string]any{"url": "https://example.test"}, "environments": list,
		"systemMetadata": map[string]any{"owner": "team-a", "tier": 1},
	}
	b, _ := json.Marshal(raw)
	a, err := satellite.ParseAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
