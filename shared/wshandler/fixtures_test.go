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
