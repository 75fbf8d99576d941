package wshandler_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/wshandler"
)

func TestConnectRecordsConnectionPastMaximumDuration(t *testing.T) {
	h := newHarness(t)
	id := h.open()

	c, err := h.env.Registry().Connection(ctx, id, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.ConnectedAt, h.clock.Now(); !got.Equal(want) {
		t.Errorf("connectedAt = %v, want %v", got, want)
	}
	if ttl := c.ExpiresAt.Sub(c.ConnectedAt); ttl <= 2*time.Hour {
		t.Errorf("expiresAt is %v after connectedAt, want more than the 2 h maximum", ttl)
	}
	if c.Authenticated() {
		t.Errorf("new connection is authenticated as %q", c.SatelliteID)
	}
	if got := h.calls["connect"].Operations("DynamoDB"); len(got) != 1 || got[0] != "PutItem" {
		t.Errorf("$connect made DynamoDB requests %v, want one PutItem", got)
	}
}

func TestConnectionWithoutRecordIsUnauthenticated(t *testing.T) {
	t.Run("never recorded", func(t *testing.T) {
		h := newHarness(t)
		id := testenv.NewConnectionID()
		h.mgmt.Open(id)
		h.send(testenv.Message(t, "heartbeat", id, nil))
		assertRefused(t, h, id, protocol.ReasonMustAuthenticate)
	})
	t.Run("authenticated record expired", func(t *testing.T) {
		h := newHarness(t)
		tok := h.satellite("sat-exp")
		id := h.authenticate("sat-exp", tok)
		h.clock.Advance(satellite.ConnectionRecordTTL + time.Second)
		h.send(testenv.Message(t, "heartbeat", id, nil))
		assertRefused(t, h, id, protocol.ReasonMustAuthenticate)
	})
}

// assertRefused checks that the last frame is auth_failed with reason and the
// connection was closed.
func assertRefused(t *testing.T, h *harness, id, reason string) {
	t.Helper()
	frames := h.mgmt.Frames(t, id)
	if len(frames) == 0 {
		t.Fatalf("no frame sent to %s, want auth_failed", id)
	}
	last := frames[len(frames)-1]
	if last["type"] != "auth_failed" || last["reason"] != reason {
		t.Errorf("last frame = %v, want auth_failed %q", last, reason)
	}
	if !h.mgmt.Closed(id) {
		t.Errorf("connection %s was not closed", id)
	}
}

func TestFramesBeforeAuthenticateAreRefused(t *testing.T) {
	for _, name := range []string{"heartbeat", "result", "strategy-error", "sync-state", "manifest-request", "blob-request", "run-secrets"} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			id := h.open()
			h.send(testenv.Message(t, name, id, nil))
			assertRefused(t, h, id, protocol.ReasonMustAuthenticate)
			if got := len(h.mgmt.Frames(t, id)); got != 1 {
				t.Errorf("%d frames sent, want only auth_failed", got)
			}
		})
	}
}

func TestInvalidFramesAreDroppedAndConnectionStays(t *testing.T) {
	const secretToken = "csat_THIS-TOKEN-MUST-NEVER-BE-LOGGED"
	type invalidCase struct {
		name, body, wantReason string
		// authenticate frames are refused with auth_failed before the
		// connection authenticated (TestMalformedAuthenticateIsRefused).
		authenticate bool
	}
	cases := []invalidCase{
		{"not JSON", `{"type":"heartbeat",`, "not a JSON object", false},
		{"JSON array", `[1,2]`, "not a JSON object", false},
		{"empty", ``, "not a JSON object", false},
		{"no type", `{"version":"1"}`, `field "type" is required`, false},
		{"unknown type", `{"type":"reboot"}`, `field "type" is not a known message type`, false},
		{"type case differs", `{"type":"Heartbeat","version":"1","uptimeSeconds":1}`, "not a known message type", false},
		{"missing field", `{"type":"heartbeat","version":"1.4.0"}`, `field "uptimeSeconds" is required`, false},
		{"mistyped field", `{"type":"heartbeat","version":1,"uptimeSeconds":1}`, `field "version" must be a string`, false},
		{"mistyped token", `{"type":"authenticate","clientId":"sat-1","token":["` + secretToken + `"]}`, `field "token" must be a string`, true},
		{"mistyped clientId with token", `{"type":"authenticate","clientId":7,"token":"` + secretToken + `"}`, `field "clientId" must be a string`, true},
		{"latency out of range", `{"type":"result","configId":"c","systemId":"s","status":"healthy","latencyMs":1e308,"executedAt":"2026-11-27T08:00:00Z"}`, `field "latencyMs" must be between 0 and 86400000`, false},
		{"over-long version", `{"type":"heartbeat","version":"` + strings.Repeat("v", 65) + `","uptimeSeconds":1}`, `field "version" is longer than 64 bytes`, false},
		{"bad result status", `{"type":"result","configId":"c","systemId":"s","status":"fine","executedAt":"2026-11-27T08:00:00Z"}`, `field "status" must be healthy`, false},
		{"bad executedAt", `{"type":"result","configId":"c","systemId":"s","status":"healthy","executedAt":"yesterday"}`, `field "executedAt" must be an ISO 8601`, false},
		{"oversized", `{"type":"heartbeat","version":"` + strings.Repeat("x", protocol.MaxMessageBytes) + `","uptimeSeconds":1}`, "over the 131072 byte limit", false},
	}
	for _, authenticated := range []bool{false, true} {
		state := map[bool]string{false: "before authenticate", true: "after authenticate"}[authenticated]
		t.Run(state, func(t *testing.T) {
			h := newHarness(t)
			tok := h.satellite("sat-frames")
			var id string
			if authenticated {
				id = h.authenticate("sat-frames", tok)
			} else {
				id = h.open()
			}
			before := len(h.mgmt.Posts(id))
			cases := slices.DeleteFunc(slices.Clone(cases), func(tc invalidCase) bool { return tc.authenticate && !authenticated })
			for _, tc := range cases {
				h.send(testenv.Raw(t, id, tc.body))
			}
			if got := len(h.mgmt.Posts(id)); got != before {
				t.Errorf("invalid frames got %d replies, want none", got-before)
			}
			if h.mgmt.Closed(id) {
				t.Errorf("connection closed after invalid frames")
			}
			dropped := h.logLines("frame dropped")
			if len(dropped) != len(cases) {
				t.Fatalf("%d 'frame dropped' warnings, want %d", len(dropped), len(cases))
			}
			for i, tc := range cases {
				if reason, _ := dropped[i]["reason"].(string); !strings.Contains(reason, tc.wantReason) {
					t.Errorf("%s: reason %q, want it to contain %q", tc.name, reason, tc.wantReason)
				}
				if dropped[i]["level"] != "WARN" || dropped[i]["connectionId"] != id {
					t.Errorf("%s: log line %v, want a WARN with connectionId", tc.name, dropped[i])
				}
			}
			if strings.Contains(h.logs.String(), secretToken) {
				t.Errorf("a token reached the logs")
			}
			// The connection still works.
			h.send(testenv.Message(t, "heartbeat", id, nil))
			if !authenticated {
				assertRefused(t, h, id, protocol.ReasonMustAuthenticate)
			} else if h.mgmt.Closed(id) {
				t.Errorf("valid heartbeat after invalid frames closed the connection")
			}
		})
	}
}

func TestBase64EncodedFramesAreDecoded(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-b64")
	id := h.open()
	ev := testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-b64", "token": tok})
	ev.Body, ev.IsBase64Encoded = encodeBase64(ev.Body), true
	h.send(ev)
	if frames := h.mgmt.Frames(t, id); len(frames) != 1 || frames[0]["type"] != "authenticated" {
		t.Fatalf("frames = %v, want authenticated", frames)
	}
}

func TestManagementEndpointIsDerivedFromTheEvent(t *testing.T) {
	ev := testenv.Event(t, "message-heartbeat", "abc=")
	for region, want := range map[string]string{
		"eu-west-1": "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod",
		// China regions are another partition, with its own DNS suffix.
		"cn-north-1": "https://a1b2c3d4e5.execute-api.cn-north-1.amazonaws.com.cn/prod",
	} {
		if got := wshandler.ManagementURL(ev.RequestContext, region); got != want {
			t.Errorf("endpoint in %s = %q, want %q", region, got, want)
		}
	}
}

// TestMalformedAuthenticateIsRefused checks an authenticate whose token is
// not a string (or whose ids break their bounds) is answered as a wrong
// token is, with auth_failed and a close, and never costs a bcrypt.
func TestMalformedAuthenticateIsRefused(t *testing.T) {
	for name, body := range map[string]string{
		"token a number":    `{"type":"authenticate","clientId":"sat-m","token":42}`,
		"token an object":   `{"type":"authenticate","clientId":"sat-m","token":{"value":"x"}}`,
		"token missing":     `{"type":"authenticate","clientId":"sat-m"}`,
		"clientId too long": `{"type":"authenticate","clientId":"` + strings.Repeat("s", 257) + `","token":"csat_x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.satellite("sat-m")
			id := h.open()
			h.send(testenv.Raw(t, id, body))
			assertRefused(t, h, id, protocol.ReasonInvalidCredentials)
			if n := h.tokens.n.Load(); n != 0 {
				t.Errorf("%d bcrypt verifications for a malformed frame, want 0", n)
			}
		})
	}
}
