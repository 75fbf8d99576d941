package wshandler_test

import (
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/endpoint"
	"github.com/checkstack/satellite-backend/shared/wshandler"
)

// What the CloudFront front of the satellite endpoint changes for the
// functions: the source of a connection, and a socket that must carry bytes
// from the backend now and then.

func withKeepalive(every time.Duration) harnessOption {
	return func(c *app.Config, _ *app.Options) { c.KeepaliveEvery = every }
}

// heartbeatsFor sends an agent's heartbeats (one per
// endpoint.AgentHeartbeatInterval, the first phase after the connection
// opened) for span of connection age and returns the ages at which a
// keepalive came back.
func heartbeatsFor(h *harness, id string, phase, span time.Duration) []time.Duration {
	h.t.Helper()
	var ages []time.Duration
	for age := phase; age <= span; age += endpoint.AgentHeartbeatInterval {
		before := len(h.mgmt.Frames(h.t, id))
		ev := testenv.Message(h.t, "heartbeat", id, nil)
		ev.RequestContext.RequestTimeEpoch = ev.RequestContext.ConnectedAt + age.Milliseconds()
		h.send(ev)
		frames := h.mgmt.Frames(h.t, id)
		for _, f := range frames[before:] {
			if f["type"] != "keepalive" {
				h.t.Fatalf("heartbeat answered with %v", f)
			}
			ages = append(ages, age)
		}
	}
	return ages
}

func TestKeepaliveAnswersOneHeartbeatPerPeriod(t *testing.T) {
	const every = 4 * time.Minute
	for _, phase := range []time.Duration{0, time.Millisecond, 7 * time.Second, 14999 * time.Millisecond} {
		h := newHarness(t, withKeepalive(every))
		id := h.authenticate("sat-ka", h.satellite("sat-ka"))
		ages := heartbeatsFor(h, id, phase, 30*time.Minute)
		// One per period after the first, which began with authenticated.
		if len(ages) != 7 {
			t.Fatalf("phase %s: keepalives at ages %v, want one in each of the 7 periods after the first", phase, ages)
		}
		prev := time.Duration(0)
		for _, age := range ages {
			if gap := age - prev; gap > every+endpoint.AgentHeartbeatInterval {
				t.Errorf("phase %s: %s without a byte to the satellite (ages %v)", phase, gap, ages)
			}
			prev = age
		}
	}
}

func TestNoKeepaliveWhenDisabled(t *testing.T) {
	h := newHarness(t, withKeepalive(0))
	id := h.authenticate("sat-nka", h.satellite("sat-nka"))
	if ages := heartbeatsFor(h, id, time.Second, 20*time.Minute); len(ages) != 0 {
		t.Errorf("keepalives at %v with KEEPALIVE_SECONDS=0", ages)
	}
}

func TestKeepaliveToAGoneConnectionIsNotAnError(t *testing.T) {
	h := newHarness(t, withKeepalive(time.Minute))
	id := h.authenticate("sat-kg", h.satellite("sat-kg"))
	h.mgmt.Drop(id)
	ev := testenv.Message(t, "heartbeat", id, nil)
	ev.RequestContext.RequestTimeEpoch = ev.RequestContext.ConnectedAt + time.Minute.Milliseconds()
	h.send(ev) // fails the test on a Lambda error
}

// TestConnectLogsTheSatellitesAddress checks the address logged for a
// connection: the viewer's, read from the headers CloudFront adds, whatever
// their case; the edge's address is logged beside it.
func TestConnectLogsTheSatellitesAddress(t *testing.T) {
	for name, tc := range map[string]struct {
		headers map[string]string
		source  string
	}{
		"viewer address":      {map[string]string{"CloudFront-Viewer-Address": "198.51.100.10:46532", "X-Amz-Cf-Id": "cf-1"}, "198.51.100.10"},
		"lowercase names":     {map[string]string{"cloudfront-viewer-address": "198.51.100.11:443", "x-amz-cf-id": "cf-2"}, "198.51.100.11"},
		"Go's canonical case": {map[string]string{"Cloudfront-Viewer-Address": "198.51.100.12:1", "X-Amz-Cf-Id": "cf-3"}, "198.51.100.12"},
		"IPv6 with brackets":  {map[string]string{"CloudFront-Viewer-Address": "[2001:db8::7]:46532", "X-Amz-Cf-Id": "cf-4"}, "2001:db8::7"},
		"IPv6 without":        {map[string]string{"CloudFront-Viewer-Address": "2001:db8::8:46532", "X-Amz-Cf-Id": "cf-5"}, "2001:db8::8"},
		"forwarded for, the client's claim first": {
			map[string]string{"X-Forwarded-For": "10.9.9.9, 198.51.100.13, 192.0.2.50", "X-Amz-Cf-Id": "cf-6"}, "198.51.100.13"},
		"garbage viewer address": {map[string]string{"CloudFront-Viewer-Address": "not-an-address", "X-Forwarded-For": "198.51.100.14", "X-Amz-Cf-Id": "cf-7"}, "198.51.100.14"},
		// Not through CloudFront: headers are the client's word only.
		"direct, forged header": {map[string]string{"CloudFront-Viewer-Address": "198.51.100.15:1", "X-Forwarded-For": "10.0.0.1, 192.0.2.50"}, "192.0.2.50"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			ev := testenv.Event(t, "connect", testenv.NewConnectionID())
			ev.Headers, ev.MultiValueHeaders = tc.headers, nil
			ev.RequestContext.Identity.SourceIP = "192.0.2.50" // the edge, or the direct peer
			h.mgmt.Open(ev.RequestContext.ConnectionID)
			if resp, err := h.connect.WebSocket.Connect(ctx, ev); err != nil || resp.StatusCode != 200 {
				t.Fatalf("$connect: %d %v", resp.StatusCode, err)
			}
			lines := h.logLines("connection opened")
			if len(lines) != 1 {
				t.Fatalf("%d connection opened lines", len(lines))
			}
			if got := lines[0]["sourceIp"]; got != tc.source {
				t.Errorf("sourceIp %v, want %s", got, tc.source)
			}
			if got := lines[0]["peerIp"]; got != "192.0.2.50" {
				t.Errorf("peerIp %v, want the edge's 192.0.2.50", got)
			}
			if cf := tc.headers["X-Amz-Cf-Id"] + tc.headers["x-amz-cf-id"]; cf != "" && lines[0]["edgeRequestId"] != cf {
				t.Errorf("edgeRequestId %v, want %s", lines[0]["edgeRequestId"], cf)
			}
		})
	}
}

// TestTheManagementAPIIsExecuteAPIBehindTheFront checks pushes do not
// follow the domain a connection came in on: the distribution's domain
// serves no @connections.
func TestTheManagementAPIIsExecuteAPIBehindTheFront(t *testing.T) {
	ev := testenv.Event(t, "connect", "abc=")
	ev.RequestContext.DomainName = "d111111abcdef8.cloudfront.net"
	want := "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod"
	if got := wshandler.ManagementURL(ev.RequestContext, "eu-west-1"); got != want {
		t.Errorf("management URL %s, want %s", got, want)
	}
}
