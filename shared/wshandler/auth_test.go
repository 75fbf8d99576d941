package wshandler_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestAuthenticateBindsConnectionAndRepliesWithAssignments(t *testing.T) {
	h := newHarness(t)
	a1 := assignment(t, "cfg-1", "sys-1")
	a2 := assignment(t, "cfg-2", "sys-2")
	tok := h.satellite("sat-auth", a1, a2)
	id := h.open()
	h.clock.Advance(3 * time.Second)
	h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-auth", "token": tok}))

	frames := h.mgmt.Frames(t, id)
	if len(frames) != 1 {
		t.Fatalf("frames = %v, want one authenticated", frames)
	}
	reply := frames[0]
	if reply["type"] != "authenticated" || reply["satelliteId"] != "sat-auth" {
		t.Errorf("reply = %v", reply)
	}
	var got []map[string]any
	b, _ := json.Marshal(reply["assignments"])
	_ = json.Unmarshal(b, &got)
	if len(got) != 2 || got[0]["configId"] != "cfg-1" || got[1]["systemName"] != "System sys-2" {
		t.Errorf("assignments = %v, want both with every field", got)
	}
	if v, ok := reply["scriptPackagesLockfileHash"]; !ok || v != nil {
		t.Errorf("scriptPackagesLockfileHash = %v (present %v), want null when nothing is published", v, ok)
	}

	sat := h.stored("sat-auth")
	if sat.ConnectionID != id || sat.LastConnectionEvent != satellite.EdgeConnected || !sat.LastHeartbeatAt.Equal(h.clock.Now()) {
		t.Errorf("satellite = connectionId %q, edge %q, lastHeartbeatAt %v; want %q, connected, %v",
			sat.ConnectionID, sat.LastConnectionEvent, sat.LastHeartbeatAt, id, h.clock.Now())
	}
	conn, err := h.env.Registry().Connection(ctx, id, h.clock.Now())
	if err != nil || conn.SatelliteID != "sat-auth" {
		t.Errorf("connection record = %+v, %v; want bound to sat-auth", conn, err)
	}
	events := h.lifecycle()
	if len(events) != 1 || events[0].DetailType != "satellite.connected" {
		t.Fatalf("events = %+v, want one satellite.connected", events)
	}
	if p := events[0].Detail; p.SatelliteID != "sat-auth" || p.Name != "Edge sat-auth" || p.Region != "eu-west-1" || p.Status != satellite.StatusOnline || p.LastSeenAt == nil {
		t.Errorf("event payload = %+v", p)
	}
	if got := h.tokens.n.Load(); got != 1 {
		t.Errorf("%d token verifications, want 1", got)
	}
	if strings.Contains(h.logs.String(), tok) {
		t.Errorf("the token reached the logs")
	}
}

func TestAuthenticatedCarriesLockfileHashPerProtocol(t *testing.T) {
	cases := []struct {
		name        string
		options     []harnessOption
		publish     string
		wantPresent bool
		want        any
	}{
		{name: "no store configured: omitted", options: []harnessOption{withoutPackages}},
		{name: "nothing published: null", wantPresent: true, want: nil},
		{name: "published: the hash", publish: "lock-abc123", wantPresent: true, want: "lock-abc123"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.options...)
			tok := h.satellite("sat-lock")
			if tc.publish != "" {
				if err := h.env.Registry().SetDesiredLockfileHash(ctx, tc.publish); err != nil {
					t.Fatal(err)
				}
			}
			id := h.authenticate("sat-lock", tok)
			got, present := h.mgmt.Frames(t, id)[0]["scriptPackagesLockfileHash"]
			if present != tc.wantPresent || got != tc.want {
				t.Errorf("scriptPackagesLockfileHash = %v (present %v), want %v (present %v)", got, present, tc.want, tc.wantPresent)
			}
		})
	}
}

// wellFormedWrongToken has a token's shape (csat_ and 43 base64url
// characters) but matches nothing.
var wellFormedWrongToken = "csat_" + strings.Repeat("A", 43)

// TestAuthenticateFailuresDoTheSameWork checks every refusal of a
// well-formed token costs exactly one bcrypt, real or decoy, so timing does
// not reveal which satellite ids exist; a token that is not shaped like one
// costs none.
func TestAuthenticateFailuresDoTheSameWork(t *testing.T) {
	cases := []struct {
		name, clientID, token string
		bcrypts               int64
	}{
		{"wrong token", "sat-real", wellFormedWrongToken, 1},
		{"unknown client id", "sat-nobody", wellFormedWrongToken, 1},
		{"malformed client id", "../../etc/passwd", wellFormedWrongToken, 1},
		{"empty client id", "", wellFormedWrongToken, 1},
		{"empty token", "sat-real", "", 0},
		{"token of the wrong shape", "sat-real", "csat_wrong", 0},
		{"token with a character outside base64url", "sat-real", "csat_" + strings.Repeat("A", 42) + "+", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.satellite("sat-real")
			id := h.open()
			h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": tc.clientID, "token": tc.token}))
			assertRefused(t, h, id, protocol.ReasonInvalidCredentials)
			if got := h.tokens.n.Load(); got != tc.bcrypts {
				t.Errorf("%d bcrypt verifications, want %d", got, tc.bcrypts)
			}
			if sat := h.stored("sat-real"); sat.ConnectionID != "" || sat.LastConnectionEvent != "" {
				t.Errorf("failed authentication changed the satellite: %+v", sat)
			}
			if ev := h.lifecycle(); len(ev) != 0 {
				t.Errorf("failed authentication emitted %v", ev)
			}
		})
	}
}

// TestARefusalCostsTheSameEverywhere checks the back-off does not undo the
// decoy: a refused well-formed token costs exactly one bcrypt whether the
// client id is unknown, known, or known and backed off (where even the
// right token is refused, checked against the decoy, never the stored
// hash). A token not shaped like one costs none, wherever it is sent.
func TestARefusalCostsTheSameEverywhere(t *testing.T) {
	const free = satellite.FreeAuthFailures
	cases := []struct {
		name     string
		clientID string
		backoff  bool   // the satellite has FreeAuthFailures failures just now
		token    string // "right" is the satellite's own token
		bcrypts  int64
		// failures is what the satellite has counted afterwards: a wrong
		// token counts, an attempt inside the back-off does not.
		failures int
	}{
		{"unknown id", "sat-nobody", false, wellFormedWrongToken, 1, 0},
		{"known id, wrong token", "sat-real", false, wellFormedWrongToken, 1, 1},
		{"known id in back-off, wrong token", "sat-real", true, wellFormedWrongToken, 1, free},
		{"known id in back-off, right token", "sat-real", true, "right", 1, free},
		{"unknown id, malformed token", "sat-nobody", false, "csat_short", 0, 0},
		{"known id, malformed token", "sat-real", false, "csat_short", 0, 0},
		{"known id in back-off, malformed token", "sat-real", true, "csat_short", 0, free},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			right := h.satellite("sat-real")
			if tc.backoff {
				for range free {
					if err := h.env.Registry().RecordAuthFailure(ctx, "sat-real", h.clock.Now()); err != nil {
						t.Fatal(err)
					}
				}
			}
			tok := tc.token
			if tok == "right" {
				tok = right
			}
			id := h.open()
			h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": tc.clientID, "token": tok}))
			assertRefused(t, h, id, protocol.ReasonInvalidCredentials)
			if got := h.tokens.n.Load(); got != tc.bcrypts {
				t.Errorf("%d bcrypt comparisons, want %d", got, tc.bcrypts)
			}
			if sat := h.stored("sat-real"); sat.AuthFailures != tc.failures || sat.ConnectionID != "" {
				t.Errorf("satellite: %d failures, connection %q; want %d and none", sat.AuthFailures, sat.ConnectionID, tc.failures)
			}
		})
	}
}

func TestSecondAuthenticateIsIgnored(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-twice")
	other := h.satellite("sat-other")
	id := h.authenticate("sat-twice", tok)
	h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-other", "token": other}))
	h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-twice", "token": "csat_wrong"}))

	if got := len(h.mgmt.Frames(t, id)); got != 1 {
		t.Errorf("%d frames, want only the first authenticated", got)
	}
	if h.mgmt.Closed(id) {
		t.Errorf("second authenticate closed the connection")
	}
	if conn, _ := h.env.Registry().Connection(ctx, id, h.clock.Now()); conn.SatelliteID != "sat-twice" {
		t.Errorf("connection rebound to %q", conn.SatelliteID)
	}
	if sat := h.stored("sat-other"); sat.ConnectionID != "" {
		t.Errorf("sat-other took connection %s", sat.ConnectionID)
	}
	if got := h.tokens.n.Load(); got != 1 {
		t.Errorf("%d verifications, want 1: a second authenticate must not run bcrypt", got)
	}
	if got := len(h.logLines("frame dropped")); got != 2 {
		t.Errorf("%d warnings for ignored authenticates, want 2", got)
	}
}

func TestNewestConnectionIsCurrentAndOlderKeepsWorking(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-two", assignment(t, "cfg-1", "sys-1"))
	older := h.authenticate("sat-two", tok)
	newer := h.authenticate("sat-two", tok)

	if got := h.stored("sat-two").ConnectionID; got != newer {
		t.Errorf("current connection = %s, want the newest %s", got, newer)
	}
	h.send(testenv.Message(t, "result", older, map[string]any{"configId": "cfg-1", "systemId": "sys-1"}))
	h.send(testenv.Message(t, "heartbeat", older, map[string]any{"version": "9.9.9"}))
	results, err := h.env.Registry().LatestResults(ctx, "cfg-1", "sys-1", nil, 10)
	if err != nil || len(results) != 1 {
		t.Fatalf("results = %v, %v; want the older connection's result stored", results, err)
	}
	sat := h.stored("sat-two")
	if sat.ConnectionID != newer || sat.Version != "9.9.9" {
		t.Errorf("after older heartbeat: connectionId %s version %s, want %s and 9.9.9", sat.ConnectionID, sat.Version, newer)
	}
	if h.mgmt.Closed(older) || h.mgmt.Closed(newer) {
		t.Errorf("a connection was closed")
	}
}

// TestOneAuthenticationAttemptPerConnection pipelines 100 wrong tokens on
// one socket, as an attacker would: the first claims the connection's one
// attempt and costs one bcrypt; the rest are dropped unchecked.
func TestOneAuthenticationAttemptPerConnection(t *testing.T) {
	h := newHarness(t)
	h.satellite("sat-target")
	id := h.open()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := "csat_" + fmt.Sprintf("%043d", i)
			_, _ = h.message.WebSocket.Message(ctx, testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-target", "token": token}))
		}()
	}
	wg.Wait()
	if n := h.tokens.n.Load(); n != 1 {
		t.Errorf("%d bcrypt verifications for 100 pipelined attempts, want 1", n)
	}
	if frames := h.mgmt.Frames(t, id); len(frames) != 1 || frames[0]["type"] != "auth_failed" || !h.mgmt.Closed(id) {
		t.Errorf("frames %v (closed %v), want one auth_failed and the close", frames, h.mgmt.Closed(id))
	}
	if dropped := h.logLines("frame dropped"); len(dropped) != 99 {
		t.Errorf("%d attempts dropped, want 99", len(dropped))
	}
}

// TestRepeatedFailuresBackOff checks a satellite id whose token was wrong
// FreeAuthFailures times in a row is refused unchecked for a while, the
// wait doubling with each further failure, and that a success resets it.
func TestRepeatedFailuresBackOff(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-guessed")
	attempt := func(token string) {
		t.Helper()
		id := h.open()
		h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-guessed", "token": token}))
	}
	for range satellite.FreeAuthFailures {
		attempt(wellFormedWrongToken)
	}
	if n := h.tokens.n.Load(); n != satellite.FreeAuthFailures {
		t.Fatalf("%d bcrypt verifications for %d failures", n, satellite.FreeAuthFailures)
	}
	// Inside the back-off even the right token is refused; each refusal
	// costs the one (decoy) bcrypt any refusal costs.
	attempt(wellFormedWrongToken)
	attempt(tok)
	if n := h.tokens.n.Load(); n != satellite.FreeAuthFailures+2 {
		t.Errorf("%d bcrypt verifications for 2 attempts inside the back-off, want 2", n-satellite.FreeAuthFailures)
	}
	if got := h.stored("sat-guessed").AuthFailures; got != satellite.FreeAuthFailures {
		t.Errorf("%d failures counted, want %d: attempts inside the back-off are not counted", got, satellite.FreeAuthFailures)
	}
	if len(h.logLines("authentication backed off after repeated failures")) != 2 {
		t.Errorf("back-off not logged")
	}
	// After a second the next attempt is checked; another failure doubles
	// the wait.
	h.clock.Advance(time.Second)
	attempt(wellFormedWrongToken)
	h.clock.Advance(time.Second)
	id := h.open()
	h.send(testenv.Message(t, "authenticate", id, map[string]any{"clientId": "sat-guessed", "token": tok}))
	if frames := h.mgmt.Frames(t, id); len(frames) != 1 || frames[0]["type"] != "auth_failed" {
		t.Errorf("the right token one second after the sixth failure got %v; want auth_failed (a 2 s wait)", frames)
	}
	h.clock.Advance(time.Second)
	id = h.authenticate("sat-guessed", tok)
	if sat := h.stored("sat-guessed"); sat.AuthFailures != 0 || sat.ConnectionID != id {
		t.Errorf("after a success: %d failures, connection %q; want 0 and %q", sat.AuthFailures, sat.ConnectionID, id)
	}
}
