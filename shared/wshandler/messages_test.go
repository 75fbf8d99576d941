package wshandler_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/endpoint"
	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// markEdge sets a satellite's lastConnectionEvent directly, as the sweep (or
// a $disconnect that raced a live connection) would.
func (h *harness) markEdge(id string, edge satellite.Edge) {
	h.t.Helper()
	_, err := h.env.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(h.env.Tables.Satellites),
		Key:                       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "SAT#" + id}, "sk": &types.AttributeValueMemberS{Value: "SATELLITE"}},
		UpdateExpression:          aws.String("SET lastConnectionEvent = :e REMOVE liveShard, staleAt"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":e": &types.AttributeValueMemberS{Value: string(edge)}},
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func TestHeartbeatRecordsLivenessAndVersion(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-hb")
	id := h.authenticate("sat-hb", tok)
	h.clock.Advance(15 * time.Second)
	h.send(testenv.Message(t, "heartbeat", id, map[string]any{"version": "2.1.0"}))

	sat := h.stored("sat-hb")
	if !sat.LastHeartbeatAt.Equal(h.clock.Now()) || sat.Version != "2.1.0" {
		t.Errorf("lastHeartbeatAt %v version %q, want %v and 2.1.0", sat.LastHeartbeatAt, sat.Version, h.clock.Now())
	}
	if got := sat.StatusAt(h.clock.Now().Add(44 * time.Second)); got != satellite.StatusOnline {
		t.Errorf("status 44 s after heartbeat = %s, want online", got)
	}
	if got := sat.StatusAt(h.clock.Now().Add(46 * time.Second)); got != satellite.StatusOffline {
		t.Errorf("status 46 s after heartbeat = %s, want offline", got)
	}
	if got := h.eventTypes("sat-hb"); len(got) != 1 {
		t.Errorf("events %v, want only the authentication's connected", got)
	}
	if len(h.mgmt.Posts(id)) != 1 {
		t.Errorf("heartbeat got a reply")
	}
}

func TestResultForAssignedCheckIsStored(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-res", assignment(t, "cfg-1", "sys-1"))
	id := h.authenticate("sat-res", tok)
	for i, executed := range []string{"2026-11-27T08:00:01.000Z", "2026-11-27T08:00:31.500Z"} {
		h.send(testenv.Message(t, "result", id, map[string]any{
			"configId": "cfg-1", "systemId": "sys-1", "status": []string{"healthy", "degraded"}[i],
			"latencyMs": 40 + i, "executedAt": executed,
		}))
	}
	results, err := h.env.Registry().LatestResults(ctx, "cfg-1", "sys-1", nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("%d results stored, want 2", len(results))
	}
	newest := results[0]
	if newest.Status != satellite.CheckDegraded || *newest.LatencyMs != 41 || newest.SatelliteID != "sat-res" || newest.Source != "Edge sat-res (eu-west-1)" {
		t.Errorf("newest result = %+v", newest)
	}
	if !newest.ExecutedAt.Equal(time.Date(2026, 11, 27, 8, 0, 31, 500e6, time.UTC)) {
		t.Errorf("executedAt = %v", newest.ExecutedAt)
	}
	var detail map[string]any
	if err := json.Unmarshal(newest.Detail, &detail); err != nil || detail["message"] != "HTTP 200" {
		t.Errorf("result detail = %s (%v), want the result object as sent", newest.Detail, err)
	}
	if want := h.clock.Now().Add(30 * 24 * time.Hour); !newest.ExpiresAt.Equal(want.Truncate(time.Second)) {
		t.Errorf("expiresAt = %v, want retention of 30 days (%v)", newest.ExpiresAt, want)
	}
}

func TestResultForUnassignedCheckIsDropped(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-un", assignment(t, "cfg-1", "sys-1"))
	h.satellite("sat-else", assignment(t, "cfg-9", "sys-9"))
	id := h.authenticate("sat-un", tok)
	h.send(testenv.Message(t, "result", id, map[string]any{"configId": "cfg-9", "systemId": "sys-9"}))
	h.send(testenv.Message(t, "result", id, map[string]any{"configId": "cfg-1", "systemId": "sys-9"}))

	for _, pair := range [][2]string{{"cfg-9", "sys-9"}, {"cfg-1", "sys-9"}} {
		if r, _ := h.env.Registry().LatestResults(ctx, pair[0], pair[1], nil, 10); len(r) != 0 {
			t.Errorf("unassigned result stored for %v", pair)
		}
	}
	warnings := h.logLines("frame dropped")
	if len(warnings) != 2 {
		t.Fatalf("%d warnings, want 2", len(warnings))
	}
	if reason := warnings[0]["reason"].(string); !strings.Contains(reason, "cfg-9") || !strings.Contains(reason, "sys-9") {
		t.Errorf("warning %q does not name both ids", reason)
	}
	if h.mgmt.Closed(id) {
		t.Errorf("connection closed after an unassigned result")
	}
}

func TestStrategyErrorIsLogged(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-strat")
	id := h.authenticate("sat-strat", tok)
	h.send(testenv.Message(t, "strategy-error", id, map[string]any{"strategyId": "ssh", "message": "not installed"}))
	lines := h.logLines("satellite cannot run strategy")
	if len(lines) != 1 {
		t.Fatalf("%d strategy warnings, want 1", len(lines))
	}
	l := lines[0]
	if l["level"] != "WARN" || l["satelliteId"] != "sat-strat" || l["strategyId"] != "ssh" || l["message"] != "not installed" {
		t.Errorf("log line = %v", l)
	}
}

func TestSyncStateIsStored(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-sync")
	id := h.authenticate("sat-sync", tok)
	ev := testenv.Message(t, "sync-state", id, map[string]any{"lockfileHash": "lock-1", "status": "error", "errorMessage": "digest mismatch"})
	h.send(ev)
	got := h.stored("sat-sync").SyncState
	received := time.UnixMilli(ev.RequestContext.RequestTimeEpoch).UTC()
	if got == nil || *got.LockfileHash != "lock-1" || got.Status != satellite.SyncError || got.ErrorMessage != "digest mismatch" || !got.ReportedAt.Equal(received) {
		t.Fatalf("sync state = %+v", got)
	}
	h.send(testenv.Message(t, "sync-state", id, map[string]any{"lockfileHash": nil, "status": "pending", "errorMessage": testenv.Absent}))
	got = h.stored("sat-sync").SyncState
	if got.LockfileHash != nil || got.Status != satellite.SyncPending || got.ErrorMessage != "" {
		t.Errorf("sync state after null lockfile = %+v", got)
	}
}

// Frames of one connection can be handled out of order (API Gateway invokes
// concurrently); sync states are ordered by when API Gateway received them.
func TestSyncStatesHandledOutOfOrderKeepTheLatest(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-order")
	id := h.authenticate("sat-order", tok)
	syncing := testenv.Message(t, "sync-state", id, map[string]any{"lockfileHash": "lock-2", "status": "syncing"})
	ready := testenv.Message(t, "sync-state", id, map[string]any{"lockfileHash": "lock-2", "status": "ready"})
	ready.RequestContext.RequestTimeEpoch = syncing.RequestContext.RequestTimeEpoch + 5
	h.send(ready)
	h.send(syncing) // received first, handled last
	if got := h.stored("sat-order").SyncState; got.Status != satellite.SyncReady {
		t.Errorf("stored %s, want the later-received ready", got.Status)
	}
}

// TestResultsOlderThanTheRetentionAreDropped checks a result dated before
// the result retention is dropped with its reason logged: the store keeps
// nothing that old.
func TestResultsOlderThanTheRetentionAreDropped(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-when", assignment(t, "cfg-1", "sys-1"))
	id := h.authenticate("sat-when", tok)
	now := h.clock.Now()
	send := func(at time.Time) {
		h.send(testenv.Message(t, "result", id, map[string]any{"configId": "cfg-1", "systemId": "sys-1", "executedAt": at.Format(time.RFC3339Nano)}))
	}
	send(now.Add(-30*24*time.Hour - time.Second))
	if results, _ := h.env.Registry().LatestResults(ctx, "cfg-1", "sys-1", nil, 10); len(results) != 0 {
		t.Fatalf("%d results older than the retention stored", len(results))
	}
	dropped := h.logLines("frame dropped")
	if len(dropped) != 1 || !strings.Contains(dropped[0]["reason"].(string), "executedAt") || !strings.Contains(dropped[0]["reason"].(string), "retention") ||
		dropped[0]["satelliteId"] != "sat-when" {
		t.Errorf("dropped = %v, want one warning naming executedAt and the retention", dropped)
	}
	send(now.Add(-30*24*time.Hour + time.Second))
	if results, _ := h.env.Registry().LatestResults(ctx, "cfg-1", "sys-1", nil, 10); len(results) != 1 || h.mgmt.Closed(id) {
		t.Errorf("%d results at the retention's edge stored (closed %v), want 1", len(results), h.mgmt.Closed(id))
	}
}

// withMetrics sends the functions' metric lines to w.
func withMetrics(w io.Writer) harnessOption {
	return func(_ *app.Config, o *app.Options) { o.MetricsOutput = w }
}

// counted sums the values of one metric in EMF lines.
func counted(t *testing.T, lines, name string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(lines, "\n") {
		decoded, _ := metrics.Decode([]byte(line))
		for _, m := range decoded {
			if m.Name == name {
				for _, v := range m.Values {
					sum += v
				}
			}
		}
	}
	return sum
}

// resultsView answers GET /results of a check through the admin function.
func (h *harness) resultsView(configID, systemID string) []map[string]any {
	h.t.Helper()
	adm := h.build("admin")
	req := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "GET /results", RawPath: "/results",
		QueryStringParameters: map[string]string{"configId": configID, "systemId": systemID, "limit": "100"},
	}
	req.RequestContext.HTTP.Method, req.RequestContext.HTTP.Path = "GET", "/results"
	resp, err := adm.Admin.Handle(ctx, req)
	if err != nil || resp.StatusCode != 200 {
		h.t.Fatalf("GET /results: %d %s %v", resp.StatusCode, resp.Body, err)
	}
	var out struct{ Results []map[string]any }
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		h.t.Fatal(err)
	}
	return out.Results
}

// TestResultsDatedAheadAreStoredButNeverPinTheLatest checks a satellite
// whose clock runs fast loses no result, as upstream: a result dated more
// than MaxClockSkew ahead is stored, ordered by when it was received (so it
// never reads as the check's latest for as long as its clock is ahead),
// marked with how far ahead it was, counted and logged. Up to MaxClockSkew
// ahead a result is ordered by its executedAt, as before.
func TestResultsDatedAheadAreStoredButNeverPinTheLatest(t *testing.T) {
	var metricLines testenv.SafeBuffer
	h := newHarness(t, withMetrics(&metricLines))
	tok := h.satellite("sat-fast", assignment(t, "cfg-1", "sys-1"))
	id := h.authenticate("sat-fast", tok)
	send := func(at time.Time) {
		t.Helper()
		h.send(testenv.Message(t, "result", id, map[string]any{"configId": "cfg-1", "systemId": "sys-1", "executedAt": at.Format(time.RFC3339Nano)}))
	}
	t0 := h.clock.Now()
	farAhead := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	send(t0.Add(-10 * time.Second)) // on time
	send(t0.Add(time.Hour))         // an hour ahead, received at t0
	h.clock.Advance(time.Second)
	send(farAhead) // received at t0+1s
	h.clock.Advance(time.Second)
	onTime := h.clock.Now().Add(-500 * time.Millisecond) // t0+1.5s
	send(onTime)

	type row struct {
		executed, received time.Time
		skewMs             float64 // 0: not marked
	}
	want := []row{ // newest first
		{onTime, t0.Add(2 * time.Second), 0},
		{farAhead, t0.Add(time.Second), float64(farAhead.Sub(t0.Add(time.Second)).Milliseconds())},
		{t0.Add(time.Hour), t0, float64(time.Hour.Milliseconds())},
		{t0.Add(-10 * time.Second), t0, 0},
	}
	check := func(when string, want []row) {
		t.Helper()
		results, err := h.env.Registry().LatestResults(ctx, "cfg-1", "sys-1", nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		view := h.resultsView("cfg-1", "sys-1")
		if len(results) != len(want) || len(view) != len(want) {
			t.Fatalf("%s: %d results stored (%d shown), want %d", when, len(results), len(view), len(want))
		}
		for i, w := range want {
			r, v := results[i], view[i]
			skew, marked := v["clockSkewMs"].(float64)
			if !r.ExecutedAt.Equal(w.executed) || !r.ReceivedAt.Equal(w.received) || skew != w.skewMs || marked != (w.skewMs != 0) {
				t.Errorf("%s: result %d executed %v received %v clockSkewMs %v (%v); want %v, %v, %v",
					when, i, r.ExecutedAt, r.ReceivedAt, v["clockSkewMs"], marked, w.executed, w.received, w.skewMs)
			}
			if v["executedAt"] != w.executed.Format(time.RFC3339Nano) {
				t.Errorf("%s: result %d shows executedAt %v, want it as sent (%s)", when, i, v["executedAt"], w.executed.Format(time.RFC3339Nano))
			}
		}
	}
	check("dated ahead", want)
	if got := counted(t, metricLines.String(), "ResultsClockSkewed"); got != 2 {
		t.Errorf("ResultsClockSkewed counted %v, want 2", got)
	}
	if got := counted(t, metricLines.String(), "ResultsStored"); got != 4 {
		t.Errorf("ResultsStored counted %v, want 4", got)
	}
	logged := h.logLines("result dated ahead of the backend's clock; ordered by its receipt")
	if len(logged) != 2 || logged[0]["satelliteId"] != "sat-fast" || logged[0]["clockSkewMs"] != float64(time.Hour.Milliseconds()) {
		t.Errorf("logged %v, want a warning per result naming the satellite and the skew", logged)
	}
	if dropped := h.logLines("frame dropped"); len(dropped) != 0 {
		t.Errorf("dropped %v", dropped)
	}

	// The rule against pinning stays: up to MaxClockSkew ahead a result is
	// ordered by its executedAt (it may read as the latest for at most that
	// long); a second further and it is ordered by its receipt.
	edge := h.clock.Now().Add(endpoint.MaxClockSkew)
	send(edge)
	past := h.clock.Now().Add(endpoint.MaxClockSkew + time.Second)
	send(past)
	check("at the edge", append([]row{
		{edge, t0.Add(2 * time.Second), 0},
		{past, t0.Add(2 * time.Second), float64((endpoint.MaxClockSkew + time.Second).Milliseconds())},
	}, want...))
}
