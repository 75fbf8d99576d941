package localstack_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/eventbus"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

// The local stack has no EventBridge rules engine: lifecycle events go to
// its event log. These tests apply the template's notification rules to
// the logged events as EventBridge would apply them to the events the
// functions put on the bus: the rule's EventPattern, then its target's
// InputTransformer.

// notificationRule is one of the template's connectivity notification
// rules.
type notificationRule struct {
	id       string
	pattern  map[string]any
	paths    map[string]string
	template string
}

// notificationRules reads the rules of the template whose target is the
// connectivity topic.
func notificationRules(t *testing.T) []notificationRule {
	t.Helper()
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []notificationRule
	for _, id := range tpl.ResourcesOfType("AWS::Events::Rule") {
		p := tpl.Resources[id].Properties
		targets, _ := p["Targets"].([]any)
		if len(targets) != 1 {
			continue
		}
		target, _ := targets[0].(map[string]any)
		if topic, _ := samtemplate.Ref(target["Arn"]); topic != "ConnectivityTopic" {
			continue
		}
		r := notificationRule{id: id, paths: map[string]string{}}
		// Through JSON, as EventBridge receives the pattern.
		b, _ := json.Marshal(p["EventPattern"])
		if err := json.Unmarshal(b, &r.pattern); err != nil {
			t.Fatal(err)
		}
		in, _ := target["InputTransformer"].(map[string]any)
		for k, v := range in["InputPathsMap"].(map[string]any) {
			r.paths[k] = v.(string)
		}
		r.template, _ = in["InputTemplate"].(string)
		rules = append(rules, r)
	}
	if len(rules) != 2 {
		t.Fatalf("the template has %d rules notifying the connectivity topic, want 2", len(rules))
	}
	return rules
}

// matches applies an EventBridge event pattern to an event, for the syntax
// the template's patterns use: a field's array of exact values (strings,
// booleans, numbers), matched by any one, and objects for nested fields. A
// field the pattern names must be in the event. Content filters (prefix,
// anything-but, ...) fail the test: the matcher would need them first.
func matches(t *testing.T, pattern, event map[string]any) bool {
	t.Helper()
	for field, want := range pattern {
		got, present := event[field]
		switch want := want.(type) {
		case map[string]any:
			nested, ok := got.(map[string]any)
			if !ok || !matches(t, want, nested) {
				return false
			}
		case []any:
			if !present || got == nil {
				return false
			}
			values, isList := got.([]any)
			if !isList {
				values = []any{got}
			}
			found := false
			for _, w := range want {
				if _, filter := w.(map[string]any); filter {
					t.Fatalf("pattern field %s uses the content filter %v, which this matcher does not implement", field, w)
				}
				for _, v := range values {
					if v == w {
						found = true
					}
				}
			}
			if !found {
				return false
			}
		default:
			t.Fatalf("pattern field %s is %v, neither an array nor an object", field, want)
		}
	}
	return true
}

// render applies an input transformer: each path ($.a.b) read from the
// event, each <name> in the template replaced, and the result read as the
// JSON string it is.
func render(t *testing.T, r notificationRule, event map[string]any) string {
	t.Helper()
	out := r.template
	for name, path := range r.paths {
		var v any = event
		for _, key := range strings.Split(strings.TrimPrefix(path, "$."), ".") {
			m, _ := v.(map[string]any)
			v = m[key]
		}
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		out = strings.ReplaceAll(out, "<"+name+">", s)
	}
	var msg string
	if err := json.Unmarshal([]byte(out), &msg); err != nil {
		t.Fatalf("%s renders %q, not a JSON string: %v", r.id, out, err)
	}
	return msg
}

// TestConnectivityNotificationsFromTheEventLog runs a satellite through
// the local stack, at its core URL: it loses its heartbeats and gets them
// back on the same connection, loses them again and comes back on a new
// one after its socket closed, reconnects routinely, and then flaps on
// 1009 as the stock agent does with an oversized telemetry batch. Applied
// to the event log, the template's rules send exactly one warning per loss
// and one info per recovery, each naming the satellite and its region, and
// nothing for the rest.
func TestConnectivityNotificationsFromTheEventLog(t *testing.T) {
	rules := notificationRules(t)
	env := testenv.New(t)
	clock := testenv.NewClock(time.Now())
	var logs testenv.SafeBuffer
	s, err := localstack.Start(ctx, localstack.Options{
		DynamoDBEndpoint: env.DynamoDBEndpoint, TableNames: env.TableNames, S3Endpoint: env.S3Endpoint, Bucket: env.Bucket, TelemetryBucket: env.TelemetryBucket,
		ScheduleEvery: 2 * time.Second, Now: clock.Now, Log: &logs, FunctionLog: &logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("stack logs:\n%s", logs.String())
		}
	})
	const id = "sat-notify"
	tok, _ := token.New()
	hash, _ := token.Hash(tok)
	if err := s.Registry.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Lab satellite", Region: "eu-test-1", TokenHash: hash, CreatedAt: time.Now(), OfflineThreshold: time.Second}); err != nil {
		t.Fatal(err)
	}
	count := func(detailType string) int { return countOf(events(t, s, id), detailType) }
	connect := func() *client {
		t.Helper()
		n := count("satellite.connected")
		c := dial(t, satelliteURL(t, s))
		c.send(map[string]any{"type": "authenticate", "clientId": id, "token": tok})
		c.expect("authenticated")
		testenv.Eventually(t, "the connected edge", func() bool { return count("satellite.connected") == n+1 })
		return c
	}
	closed := func(c *client, code websocket.StatusCode) {
		t.Helper()
		n := count("satellite.disconnected")
		_ = c.conn.Close(code, "")
		testenv.Eventually(t, "the disconnected edge", func() bool { return count("satellite.disconnected") == n+1 })
	}
	lose := func() {
		t.Helper()
		n := count("satellite.heartbeat_lost")
		clock.Advance(time.Second + dynamo.MaxLiveStep + time.Second)
		testenv.Eventually(t, "heartbeat_lost from the scheduled sweep", func() bool { return count("satellite.heartbeat_lost") == n+1 })
	}

	c := connect()
	lose()
	n := count("satellite.connected")
	c.send(map[string]any{"type": "heartbeat", "version": "1.0.0", "uptimeSeconds": 1}) // back on the same connection
	testenv.Eventually(t, "the restored edge", func() bool { return count("satellite.connected") == n+1 })
	lose()
	closed(c, websocket.StatusGoingAway)
	clock.Advance(time.Minute)
	c = connect() // back on a new connection
	clock.Advance(time.Minute)
	closed(c, websocket.StatusNormalClosure)
	clock.Advance(time.Minute)
	c = connect() // a routine reconnect
	batch := `{"type":"telemetry_batch","batchId":"0","kind":"logstream","payload":["` + strings.Repeat("x", 200<<10) + `"]}`
	for range 3 { // the stock agent's oversized batch, again and again
		n := count("satellite.disconnected")
		// (The gateway may close the socket before the write ends.)
		_ = c.conn.Write(ctx, websocket.MessageText, []byte(batch))
		testenv.Eventually(t, "the 1009 close's edge", func() bool { return count("satellite.disconnected") == n+1 })
		clock.Advance(time.Second)
		c = connect()
	}

	var got []string
	flapping := 0
	for _, line := range rawEvents(t, s, id) {
		detail := line["detail"].(map[string]any)
		if detail["flapping"] == true {
			flapping++
		}
		// The event as EventBridge delivers it to a rule.
		event := map[string]any{"source": eventbus.Source, "detail-type": line["detailType"], "time": line["time"], "detail": detail}
		for _, r := range rules {
			if matches(t, r.pattern, event) {
				got = append(got, render(t, r, event))
			}
		}
	}
	if flapping != 3 {
		t.Fatalf("%d flapping connected edges, want 3: the scenario did not flap", flapping)
	}
	t.Logf("notifications:\n%s", strings.Join(got, "\n"))
	want := []string{"WARNING", "INFO", "WARNING", "INFO"}
	if len(got) != len(want) {
		t.Fatalf("notifications:\n%s\nwant %v", strings.Join(got, "\n"), want)
	}
	for i, msg := range got {
		if !strings.HasPrefix(msg, want[i]+": satellite Lab satellite (eu-test-1) ") || !strings.Contains(msg, "Satellite "+id+", edge ") {
			t.Errorf("notification %d: %q; want a %s naming Lab satellite (eu-test-1) and its id", i, msg, want[i])
		}
	}
}
