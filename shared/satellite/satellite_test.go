package satellite_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestStatusAt(t *testing.T) {
	beat := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		now       time.Time
		heartbeat time.Time
		threshold time.Duration
		want      satellite.Status
	}{
		{"just beat", beat, beat, satellite.DefaultOfflineThreshold, satellite.StatusOnline},
		{"at the threshold", beat.Add(45 * time.Second), beat, satellite.DefaultOfflineThreshold, satellite.StatusOnline},
		{"one ms past", beat.Add(45*time.Second + time.Millisecond), beat, satellite.DefaultOfflineThreshold, satellite.StatusOffline},
		{"never beat", beat, time.Time{}, satellite.DefaultOfflineThreshold, satellite.StatusOffline},
		{"override keeps it online", beat.Add(5 * time.Minute), beat, 10 * time.Minute, satellite.StatusOnline},
		{"clock behind heartbeat", beat.Add(-time.Second), beat, satellite.DefaultOfflineThreshold, satellite.StatusOnline},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := satellite.StatusAt(tc.now, tc.heartbeat, tc.threshold); got != tc.want {
				t.Errorf("StatusAt = %s, want %s", got, tc.want)
			}
		})
	}
	s := satellite.Satellite{LastHeartbeatAt: beat, LastConnectionEvent: satellite.EdgeConnected}
	if got := s.StatusAt(beat.Add(46 * time.Second)); got != satellite.StatusOffline {
		t.Errorf("default threshold: %s", got)
	}
	s.OfflineThreshold = 2 * time.Minute
	if got := s.StatusAt(beat.Add(46 * time.Second)); got != satellite.StatusOnline {
		t.Errorf("per-satellite threshold ignored: %s", got)
	}
	// Marked heartbeat_lost by the sweep: offline until it heartbeats again,
	// whatever its threshold says now.
	s.LastConnectionEvent = satellite.EdgeHeartbeatLost
	if got := s.StatusAt(beat.Add(46 * time.Second)); got != satellite.StatusOffline {
		t.Errorf("heartbeat_lost satellite reads %s", got)
	}
}

func TestSecretName(t *testing.T) {
	cases := []struct{ ref, want string }{
		{"${{ secrets.API_TOKEN }}", "API_TOKEN"},
		{"${{secrets.API_TOKEN}}", "API_TOKEN"},
		{"  ${{   secrets.db-pass_2   }}  ", "db-pass_2"},
		{"API_TOKEN", "API_TOKEN"},
		{"a", "a"},
	}
	for _, tc := range cases {
		if got, err := satellite.SecretName(tc.ref); err != nil || got != tc.want {
			t.Errorf("SecretName(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "1TOKEN", "_TOKEN", "${{ secrets.1X }}", "${{ env.X }}", "${{ secrets.A B }}", "$(id)", "A.B", "${{ secrets.X }", "secrets.X"} {
		if got, err := satellite.SecretName(bad); satellite.ErrorCode(err) != satellite.EINVALID {
			t.Errorf("SecretName(%q) = %q, %v; want EINVALID", bad, got, err)
		}
	}
}

func TestCollectorSecretEnv(t *testing.T) {
	c := satellite.Collector{ID: "c", Config: map[string]any{"secretEnv": map[string]any{
		"TOKEN": "${{ secrets.API_TOKEN }}", "ALSO_TOKEN": "API_TOKEN", "PASS": "DB_PASS",
	}}}
	env, err := c.SecretEnv()
	if err != nil {
		t.Fatal(err)
	}
	if env["TOKEN"] != "API_TOKEN" || env["ALSO_TOKEN"] != "API_TOKEN" || env["PASS"] != "DB_PASS" {
		t.Errorf("env = %v", env)
	}
	if names := satellite.SecretNames(env); strings.Join(names, ",") != "API_TOKEN,DB_PASS" {
		t.Errorf("SecretNames = %v, want distinct sorted", names)
	}
	for name, cfg := range map[string]map[string]any{
		"absent":     {},
		"null":       {"secretEnv": nil},
		"empty":      {"secretEnv": map[string]any{}},
		"not object": {"secretEnv": "API_TOKEN"},
		"non-string": {"secretEnv": map[string]any{"A": 1}},
		"bad env":    {"secretEnv": map[string]any{"1A": "X"}},
	} {
		if _, err := (satellite.Collector{ID: "c", Config: cfg}).SecretEnv(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseAssignmentKeepsUnknownFields(t *testing.T) {
	raw := `{"configId":"c","systemId":"s","strategyId":"http","config":{"url":"u"},"intervalSeconds":30,"futureField":{"x":1}}`
	a, err := satellite.ParseAssignment([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(a)
	if string(b) != raw {
		t.Errorf("round trip = %s, want %s", b, raw)
	}
}

func TestParseAssignmentNamesTheField(t *testing.T) {
	cases := map[string]string{
		`[]`: "must be a JSON object",
		`{"systemId":"s","strategyId":"h","config":{},"intervalSeconds":1}`:                                                       "configId",
		`{"configId":"c","systemId":"s","strategyId":"h","config":[],"intervalSeconds":1}`:                                        "config is required and must be an object",
		`{"configId":"c","systemId":"s","strategyId":"h","config":{}}`:                                                            "intervalSeconds",
		`{"configId":"c","systemId":"s","strategyId":"h","config":{},"intervalSeconds":"30"}`:                                     `"intervalSeconds" must be a number`,
		`{"configId":"c","systemId":"s","strategyId":"h","config":{},"intervalSeconds":1,"collectors":[{"id":"x"}]}`:              "collectors[0]",
		`{"configId":5,"systemId":"s","strategyId":"h","config":{},"intervalSeconds":1}`:                                          `"configId" must be a string`,
		`{"configId":"c","systemId":"s","strategyId":"h","config":{},"intervalSeconds":1,"systemMetadata":[]}`:                    `"systemMetadata" must be an object`,
		`{"configId":"` + strings.Repeat("c", 257) + `","systemId":"s","strategyId":"h","config":{},"intervalSeconds":1}`:         "configId is longer than 256 bytes",
		`{"configId":"c","systemId":"s","strategyId":"h","config":{},"intervalSeconds":1,"environments":{}}`:                      `"environments" must be an array`,
		`{"configId":"c","systemId":"s","strategyId":"h","config":{},"intervalSeconds":1,"environments":[{"name":"x"}]}`:          "environments[0].id is required",
		`{"configId":"c","systemId":"s","strategyId":"h","config":{},"intervalSeconds":1,"environments":[{"id":"a"},{"id":"a"}]}`: "appears twice",
	}
	for raw, want := range cases {
		_, err := satellite.ParseAssignment([]byte(raw))
		if satellite.ErrorCode(err) != satellite.EINVALID || !strings.Contains(satellite.ErrorMessage(err), want) {
			t.Errorf("ParseAssignment(%s) = %v, want EINVALID naming %q", raw, err, want)
		}
	}
}

func TestAssignmentCollectorPrefersID(t *testing.T) {
	a := satellite.Assignment{Collectors: []satellite.Collector{{ID: "x", CollectorID: "y"}, {ID: "y", CollectorID: "z"}}}
	if c, ok := a.Collector("y"); !ok || c.ID != "y" {
		t.Errorf("Collector(y) = %+v, want the one whose id is y", c)
	}
	if c, ok := a.Collector("z"); !ok || c.ID != "y" {
		t.Errorf("Collector(z) = %+v, want lookup by collectorId", c)
	}
	if _, ok := a.Collector("nope"); ok {
		t.Error("Collector(nope) found something")
	}
}

func TestLifecyclePayload(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	sat := satellite.Satellite{ID: "s", Name: "n", Region: "r"}
	cases := []struct {
		edge   satellite.Edge
		seen   time.Time
		status satellite.Status
		json   string
	}{
		{satellite.EdgeConnected, at, satellite.StatusOnline, `{"satelliteId":"s","name":"n","region":"r","status":"online","lastSeenAt":"2026-11-27T08:00:00Z"}`},
		{satellite.EdgeDisconnected, time.Time{}, satellite.StatusOffline, `{"satelliteId":"s","name":"n","region":"r","status":"offline","lastSeenAt":null}`},
		{satellite.EdgeHeartbeatLost, at, satellite.StatusOffline, `{"satelliteId":"s","name":"n","region":"r","status":"offline","lastSeenAt":"2026-11-27T08:00:00Z"}`},
	}
	for _, tc := range cases {
		e := satellite.NewLifecycleEvent(tc.edge, "c1", sat, tc.seen, at)
		b, _ := json.Marshal(e.Payload())
		want := `{"edgeId":"` + satellite.EdgeID("s", tc.edge, "c1") + `",` + tc.json[1:]
		if string(b) != want || e.Edge.EventType() != "satellite."+string(tc.edge) {
			t.Errorf("%s payload = %s, want %s", tc.edge, b, want)
		}
		if again := satellite.NewLifecycleEvent(tc.edge, "c1", sat, tc.seen, at.Add(time.Hour)); again.ID != e.ID {
			t.Errorf("edge id changed between publications of the same edge")
		}
		if other := satellite.NewLifecycleEvent(tc.edge, "c2", sat, tc.seen, at); other.ID == e.ID {
			t.Errorf("two edges share an id")
		}
	}
}

func TestValidSatelliteID(t *testing.T) {
	for _, ok := range []string{"sat-1", "0b7c1c2e-4f7e-4a55-9c7d-2d5a3b8f9e10", "a", "edge.berlin:1"} {
		if !satellite.ValidSatelliteID(ok) {
			t.Errorf("%q rejected", ok)
		}
	}
	for _, bad := range []string{"", "-x", "a/b", "a#b", strings.Repeat("a", 129), "sat 1"} {
		if satellite.ValidSatelliteID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	err := satellite.Wrap(satellite.Errorf(satellite.ENOTFOUND, "inner"), satellite.EINTERNAL, "outer")
	if satellite.ErrorCode(err) != satellite.EINTERNAL || satellite.ErrorMessage(err) != "outer" {
		t.Errorf("code %s message %s", satellite.ErrorCode(err), satellite.ErrorMessage(err))
	}
	if satellite.Wrap(nil, satellite.EINTERNAL, "x") != nil {
		t.Error("Wrap(nil) is not nil")
	}
	if satellite.ErrorCode(nil) != "" || satellite.ErrorCode(errPlain{}) != satellite.EINTERNAL {
		t.Error("ErrorCode of nil or plain error")
	}
}

type errPlain struct{}

func (errPlain) Error() string { return "plain" }

func TestAuthBackoffDoublesUpToItsCap(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for failures, want := range map[int]time.Duration{
		0: 0, satellite.FreeAuthFailures - 1: 0,
		satellite.FreeAuthFailures: time.Second, satellite.FreeAuthFailures + 1: 2 * time.Second,
		satellite.FreeAuthFailures + 4: 16 * time.Second, satellite.FreeAuthFailures + 5: satellite.MaxAuthBackoff,
		satellite.FreeAuthFailures + 60: satellite.MaxAuthBackoff,
	} {
		got := satellite.Satellite{AuthFailures: failures, AuthFailedAt: at}.AuthBackoffUntil()
		if want == 0 && !got.IsZero() || want != 0 && !got.Equal(at.Add(want)) {
			t.Errorf("%d failures: refused until %v, want %v after the last", failures, got, want)
		}
	}
}

func TestAssignmentEnvironmentsAndMetadataPassThrough(t *testing.T) {
	raw := `{"configId":"c","systemId":"s","strategyId":"http","config":{"url":"u"},"intervalSeconds":30,` +
		`"systemMetadata":{"owner":"team-a","tier":1},"environments":[{"id":"prod","name":"Production","fields":{"host":"p.example"}},{"id":"stage","name":"Staging"}]}`
	a, err := satellite.ParseAssignment([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(a); string(b) != raw {
		t.Errorf("round trip = %s, want %s", b, raw)
	}
	if !a.HasEnvironment("prod") || !a.HasEnvironment("stage") || a.HasEnvironment("dev") {
		t.Errorf("environments = %v", a.EnvironmentIDs())
	}
}

func TestSecretRefsWalksEveryStringByPath(t *testing.T) {
	var config any
	_ = json.Unmarshal([]byte(`{
		"url": "https://example.test",
		"auth": {"user": "bob", "password": "${{ secrets.DB_PASSWORD }}"},
		"headers": [{"name": "X-Token", "value": "${{secrets.API_TOKEN}}"}, {"name": "Accept", "value": "text/plain"}],
		"nested": [[{"k": " ${{ secrets.DEEP }} "}]],
		"notARef": "prefix ${{ secrets.X }}",
		"count": 3
	}`), &config)
	got := satellite.SecretRefs(config)
	want := map[string]string{"auth.password": "DB_PASSWORD", "headers[0].value": "API_TOKEN", "nested[0][0].k": "DEEP"}
	if len(got) != len(want) {
		t.Fatalf("SecretRefs = %v, want %v", got, want)
	}
	for path, name := range want {
		if got[path] != name {
			t.Errorf("SecretRefs[%s] = %q, want %q", path, got[path], name)
		}
	}
}

func TestIsNeverMatchesNil(t *testing.T) {
	if satellite.Is(nil, satellite.EINTERNAL, "") {
		t.Error("Is(nil) matched: a nil error has no code")
	}
	if !satellite.Is(errors.New("plain"), satellite.EINTERNAL) {
		t.Error("a plain error is not EINTERNAL")
	}
	wrapped := fmt.Errorf("read: %w", satellite.Errorf(satellite.ENOTFOUND, "no satellite"))
	if !satellite.Is(wrapped, satellite.ECONFLICT, satellite.ENOTFOUND) || satellite.Is(wrapped, satellite.ECONFLICT) {
		t.Error("Is does not read the code of a wrapped *Error")
	}
}
