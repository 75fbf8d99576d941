package admin_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestCapabilityConfigsAndTheSatelliteView(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Scraper")
	conn := h.connect(id, tok)
	h.now = h.now.Add(time.Minute) // it authenticated well before the change
	p := map[string]string{"satelliteId": id, "kind": "scrape"}
	body := map[string]any{
		"payload": map[string]any{"targets": []any{map[string]any{"id": "node-exporter", "url": "http://10.0.0.5:9100/metrics"}}},
		"secrets": map[string]any{"node-exporter": map[string]any{"bearerToken": "${{ secrets.NODE_TOKEN }}"}},
	}
	code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", p, nil, body)
	if code != 200 || out["kind"] != "scrape" {
		t.Fatalf("set: %d %v", code, out)
	}
	frames := h.mgmt.Frames(t, conn)
	if len(frames) != 1 || frames[0]["type"] != "capability_config" || frames[0]["kind"] != "scrape" || frames[0]["secrets"] != nil {
		t.Fatalf("pushed %v", frames)
	}
	if err := h.a.Registry.SaveCapabilityStatus(ctx, id, satellite.CapabilityStatus{Kind: "scrape", Payload: json.RawMessage(`{"ok":true}`), ReportedAt: h.now}); err != nil {
		t.Fatal(err)
	}
	sat, _, _ := h.a.Registry.Satellite(ctx, id)
	if _, err := h.a.Registry.BindConnection(ctx, h.connectOnly(), sat, sat.TokenHash, []string{"scrape", "telemetry"}, h.now); err != nil {
		t.Fatal(err)
	}
	code, view := h.call("GET", "/satellites/{satelliteId}", map[string]string{"satelliteId": id}, nil, nil)
	got, _ := json.Marshal(map[string]any{"capabilities": view["capabilities"], "configs": view["capabilityConfigs"], "statuses": view["capabilityStatuses"]})
	want := `{"capabilities":["scrape","telemetry"],` +
		`"configs":[{"kind":"scrape","payload":{"targets":[{"id":"node-exporter","url":"http://10.0.0.5:9100/metrics"}]},"secrets":{"node-exporter":{"bearerToken":"${{ secrets.NODE_TOKEN }}"}},"updatedAt":"2026-11-27T08:01:00Z"}],` +
		`"statuses":[{"kind":"scrape","payload":{"ok":true},"reportedAt":"2026-11-27T08:01:00Z"}]}`
	if code != 200 || string(got) != want {
		t.Errorf("view:\n got %s\nwant %s", got, want)
	}

	for _, tc := range []struct {
		kind string
		body any
		code int
		want string
	}{
		{"scrape", map[string]any{}, 422, "payload is required"},
		{"scrape", map[string]any{"payload": 1, "secrets": map[string]any{"t": map[string]any{"token": "plain-value"}}}, 422, "must be a secret reference"},
		{"scrape", map[string]any{"payload": 1, "secrets": map[string]any{"t": map[string]any{}}}, 422, "must bind 1 to"},
		{"scrape", map[string]any{"payload": 1, "secrets": []any{}}, 422, "secrets must be an object"},
		{"scrape", map[string]any{"payload": 1, "extra": 1}, 422, "unknown field"},
		{"bad kind!", map[string]any{"payload": 1}, 422, "not a capability kind"},
		{"scrape", map[string]any{"payload": strings.Repeat("x", satellite.MaxCapabilityPayloadBytes)}, 413, "over the"},
		{"scrape", map[string]any{"payload": 1, "secrets": map[string]any{"t": map[string]any{"f": "${{ secrets.X" + strings.Repeat("x", satellite.MaxCapabilityPayloadBytes) + " }}"}}}, 413, "secrets is"},
	} {
		code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": tc.kind}, nil, tc.body)
		if code != tc.code || !strings.Contains(out["error"].(map[string]any)["message"].(string), tc.want) {
			t.Errorf("PUT %s %v: %d %v, want %d naming %q", tc.kind, tc.body, code, out, tc.code, tc.want)
		}
	}
	if code, _ := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": "nobody", "kind": "scrape"}, nil, map[string]any{"payload": 1}); code != 404 {
		t.Errorf("unknown satellite: %d", code)
	}
	if code, _ := h.call("DELETE", "/satellites/{satelliteId}/capabilities/{kind}", p, nil, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, _ := h.call("DELETE", "/satellites/{satelliteId}/capabilities/{kind}", p, nil, nil); code != 404 {
		t.Errorf("delete again: %d", code)
	}
}

func TestCapabilityConfigsAreBounded(t *testing.T) {
	h := newHarness(t)
	id, _ := h.create("Many")
	for i := 0; i <= satellite.MaxCapabilityConfigs; i++ {
		code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": "k" + strings.Repeat("x", i)}, nil, map[string]any{"payload": 1})
		switch {
		case i < satellite.MaxCapabilityConfigs && code != 200:
			t.Fatalf("config %d: %d %v", i, code, out)
		case i == satellite.MaxCapabilityConfigs && code != 422:
			t.Errorf("config %d over the bound: %d %v", i, code, out)
		}
	}
	// Replacing an existing kind is always possible.
	if code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": "k"}, nil, map[string]any{"payload": 2}); code != 200 {
		t.Errorf("replace at the bound: %d %v", code, out)
	}
}

// TestCapabilityConfigReachesARecentAuthenticationLast checks a connection
// that authenticated around a config change, and so may have sent the
// config it read before the change after the change's push, gets the new
// config again once such answers are out.
func TestCapabilityConfigReachesARecentAuthenticationLast(t *testing.T) {
	h := newHarness(t)
	id, tok := h.create("Fresh")
	conn := h.connect(id, tok)
	if code, out := h.call("PUT", "/satellites/{satelliteId}/capabilities/{kind}", map[string]string{"satelliteId": id, "kind": "syslog"}, nil,
		map[string]any{"payload": map[string]any{"port": 514}}); code != 200 {
		t.Fatalf("set: %d %v", code, out)
	}
	frames := h.mgmt.Frames(t, conn)
	if len(frames) != 2 || frames[0]["type"] != "capability_config" || frames[1]["type"] != "capability_config" {
		t.Errorf("pushed %v, want the config twice", frames)
	}
}
