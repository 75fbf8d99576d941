package admin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestResultsByEnvironment(t *testing.T) {
	h := newHarness(t)
	id, _ := h.create("Environments")
	a := assignment("cfg-1", "sys-1")
	a["environments"] = []any{map[string]any{"id": "prod", "name": "Production"}, map[string]any{"id": "stage", "name": "Staging"}}
	if code, out := h.call("PUT", "/satellites/{satelliteId}/assignments", map[string]string{"satelliteId": id}, nil, map[string]any{"assignments": []any{a}}); code != 200 {
		t.Fatalf("assign: %d %v", code, out)
	}
	for i, env := range []string{"prod", "stage", "prod", ""} {
		r := satellite.Result{
			ID: string(rune('a' + i)), ConfigID: "cfg-1", SystemID: "sys-1", SatelliteID: id, Status: satellite.CheckHealthy,
			ExecutedAt: h.now.Add(time.Duration(i) * time.Minute), ReceivedAt: h.now, ExpiresAt: h.now.Add(time.Hour),
		}
		if env != "" {
			r.EnvironmentID = &env
		}
		if err := h.a.Registry.RecordResult(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	envs := func(query map[string]string) []any {
		t.Helper()
		code, out := h.call("GET", "/results", nil, query, nil)
		if code != 200 {
			t.Fatalf("results %v: %d %v", query, code, out)
		}
		var got []any
		for _, r := range out["results"].([]any) {
			got = append(got, r.(map[string]any)["environmentId"])
		}
		return got
	}
	if got := envs(map[string]string{"configId": "cfg-1", "systemId": "sys-1"}); len(got) != 4 || got[0] != nil || got[1] != "prod" {
		t.Errorf("every environment, newest first: %v", got)
	}
	if got := envs(map[string]string{"configId": "cfg-1", "systemId": "sys-1", "environmentId": "prod"}); len(got) != 2 || got[0] != "prod" || got[1] != "prod" {
		t.Errorf("prod only: %v", got)
	}
	if code, _ := h.call("GET", "/results", nil, map[string]string{"configId": "cfg-1", "systemId": "sys-1", "environmentId": ""}, nil); code != 422 {
		t.Errorf("empty environmentId: %d", code)
	}
}

// TestResultsOfTheLongestIDsAreStoredAndFound checks ids at the protocol's
// bound, made of characters the key escapes, still fit DynamoDB's key
// limits, and one environment's results are found among the check's.
func TestResultsOfTheLongestIDsAreStoredAndFound(t *testing.T) {
	h := newHarness(t)
	id, _ := h.create("Long ids")
	long := func(c string) string { return strings.Repeat(c, 256) }
	configID, systemID, env := long("#"), long("%"), long("/")
	a := map[string]any{"configId": configID, "systemId": systemID, "strategyId": "http", "config": map[string]any{}, "intervalSeconds": 60,
		"environments": []any{map[string]any{"id": env, "name": "far"}}}
	if code, out := h.call("PUT", "/satellites/{satelliteId}/assignments", map[string]string{"satelliteId": id}, nil, map[string]any{"assignments": []any{a}}); code != 200 {
		t.Fatalf("assign: %d %v", code, out)
	}
	r := satellite.Result{ID: "r", ConfigID: configID, SystemID: systemID, SatelliteID: id, Status: satellite.CheckHealthy, EnvironmentID: &env,
		ExecutedAt: h.now, ReceivedAt: h.now, ExpiresAt: h.now.Add(time.Hour)}
	if err := h.a.Registry.RecordResult(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := h.a.Registry.LatestResults(ctx, configID, systemID, &env, 1)
	if err != nil || len(got) != 1 {
		t.Errorf("found %d, %v", len(got), err)
	}
}
