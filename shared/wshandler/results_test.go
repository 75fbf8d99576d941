package wshandler_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/testenv"
)

func TestEnvironments(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-env", withEnvironments(t, "cfg-1", "sys-1", "prod", "stage"))
	id := h.authenticate("sat-env", tok)
	// environments and systemMetadata reach the satellite unchanged.
	got, _ := json.Marshal(framesOf(t, h, id, "authenticated")[0]["assignments"])
	if !strings.Contains(string(got), `"environments":[{"fields":{"host":"prod.example.test"},"id":"prod","name":"PROD"}`) ||
		!strings.Contains(string(got), `"systemMetadata":{"owner":"team-a","tier":1}`) {
		t.Errorf("assignments = %s", got)
	}
	result := func(env any) {
		t.Helper()
		fields := map[string]any{"configId": "cfg-1", "systemId": "sys-1"}
		if env != nil {
			fields["environmentId"] = env
		}
		h.send(testenv.Message(t, "result", id, fields))
	}
	result("prod")
	result("stage")
	result(nil)
	result("dev") // not listed: dropped like an unassigned result
	reg := h.env.Registry()
	all, err := reg.LatestResults(ctx, "cfg-1", "sys-1", nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("stored %d results, want 3 (prod, stage, env-less)", len(all))
	}
	prod := "prod"
	only, err := reg.LatestResults(ctx, "cfg-1", "sys-1", &prod, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(only) != 1 || only[0].EnvironmentID == nil || *only[0].EnvironmentID != "prod" {
		t.Errorf("prod's results = %+v", only)
	}
	dropped := h.logLines("frame dropped")
	if len(dropped) != 1 || !strings.Contains(dropped[0]["reason"].(string), "does not list environment dev") {
		t.Errorf("dropped = %v", dropped)
	}
}
