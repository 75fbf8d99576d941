package admin_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/admin"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// page lists one page of route and returns its answer.
func (h *harness) page(route string, limit int, token string) map[string]any {
	h.t.Helper()
	q := map[string]string{"limit": fmt.Sprint(limit)}
	if token != "" {
		q["nextToken"] = token
	}
	code, out := h.call("GET", route, nil, q, nil)
	if code != http.StatusOK {
		h.t.Fatalf("GET %s %v: %d %v", route, q, code, out)
	}
	return out
}

// pageAll follows nextToken through every page of route and returns the
// satellite ids in the order listed and the pages' sizes. check is called
// with each page right after it was listed.
func (h *harness) pageAll(route string, limit int, check func(page map[string]any)) (ids []string, sizes []int) {
	h.t.Helper()
	token := ""
	for range 100 {
		out := h.page(route, limit, token)
		sats := out["satellites"].([]any)
		for _, s := range sats {
			ids = append(ids, s.(map[string]any)["satelliteId"].(string))
		}
		sizes = append(sizes, len(sats))
		if check != nil {
			check(out)
		}
		next, ok := out["nextToken"].(string)
		if !ok {
			return ids, sizes
		}
		if next == token || next == "" {
			h.t.Fatalf("GET %s: nextToken %q does not move on", route, next)
		}
		token = next
	}
	h.t.Fatalf("GET %s does not end", route)
	return nil, nil
}

// putLegacySatellite writes a satellite as the code before the fleet index
// stored it (no fleet index key), from before profile items: its tags and
// sync state on the satellite item.
func (h *harness) putLegacySatellite(id string) {
	h.t.Helper()
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	_, err := h.env.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(h.env.Tables.Satellites), Item: map[string]types.AttributeValue{
		"pk": s("SAT#" + id), "sk": s("SATELLITE"), "satelliteId": s(id), "name": s("Legacy"), "region": s("eu-west-1"), "tokenHash": s("h"),
		"createdAt": &types.AttributeValueMemberN{Value: "1700000000000"}, "pendingEdges": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}},
		"tags": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"site": s("old")}},
		"syncState": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"status": s("error"), "lockfileHash": &types.AttributeValueMemberNULL{Value: true}, "errorMessage": s("disk full"),
			"reportedAt": &types.AttributeValueMemberN{Value: "1700000000000"},
		}},
	}})
	if err != nil {
		h.t.Fatal(err)
	}
}

// TestListingsPageThroughTheFleet pages GET /satellites and GET
// /script-packages two and three satellites at a time over satellites
// created now and satellites stored before the fleet index, which the
// sweep's backfill adds: every satellite once, in id order, each page one
// index query and one batch read.
func TestListingsPageThroughTheFleet(t *testing.T) {
	h := newHarness(t)
	reg := h.env.Registry()
	var want []string
	for _, id := range []string{"sat-c", "sat-a", "sat-e", "sat-b", "sat-d"} {
		if err := reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Sat " + id, Region: "eu-central-1", TokenHash: "h", CreatedAt: h.now}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	h.putLegacySatellite("sat-0-legacy")
	h.putLegacySatellite("sat-z-legacy")
	slices.Sort(want)

	if ids, _ := h.pageAll("/satellites", 2, nil); !slices.Equal(ids, want) {
		t.Fatalf("before the backfill: %v, want %v", ids, want)
	}
	r, err := h.a.Sweep.Sweep(ctx)
	if err != nil || r.Indexed != 2 {
		t.Fatalf("sweep: %+v %v, want the 2 legacy satellites indexed", r, err)
	}
	want = append(want, "sat-0-legacy", "sat-z-legacy")
	slices.Sort(want)

	check := func(out map[string]any) {
		if n, items := h.calls.Count("DynamoDB"), h.calls.ItemsRead(); n != 2 || items > 3*2+1 {
			t.Errorf("a page of 2 took %d DynamoDB requests reading %d items, want 2 requests (index query, batch read) and at most 7 items", n, items)
		}
		h.calls.Reset()
	}
	h.calls.Reset()
	ids, sizes := h.pageAll("/satellites", 2, check)
	if !slices.Equal(ids, want) || !slices.Equal(sizes, []int{2, 2, 2, 1}) {
		t.Fatalf("paged %v in pages of %v; want every satellite once, in id order, %v", ids, sizes, want)
	}
	legacy := h.page("/satellites", 1, "")["satellites"].([]any)[0].(map[string]any)
	if legacy["satelliteId"] != "sat-0-legacy" || legacy["tags"].(map[string]any)["site"] != "old" || legacy["syncState"].(map[string]any)["errorMessage"] != "disk full" {
		t.Errorf("legacy satellite listed as %v", legacy)
	}

	// The published set rides on every page of GET /script-packages.
	code, out := h.call("POST", "/script-packages", nil, nil, map[string]any{"packages": []any{map[string]any{"name": "a", "version": "1", "data": "YQ=="}}})
	if code != http.StatusAccepted {
		t.Fatalf("publish: %d %v", code, out)
	}
	hash := out["lockfileHash"].(string)
	if err := reg.SaveSyncState(ctx, "sat-c", satellite.SyncState{Status: satellite.SyncReady, LockfileHash: &hash, ReportedAt: h.now}); err != nil {
		t.Fatal(err)
	}
	upToDate := 0
	ids, sizes = h.pageAll("/script-packages", 3, func(page map[string]any) {
		if page["lockfileHash"] != hash || len(page["entries"].([]any)) != 1 {
			t.Errorf("page without the published set: %v", page)
		}
		for _, s := range page["satellites"].([]any) {
			if s.(map[string]any)["upToDate"] == true {
				upToDate++
			}
		}
	})
	if !slices.Equal(ids, want) || !slices.Equal(sizes, []int{3, 3, 1}) || upToDate != 1 {
		t.Fatalf("script-packages paged %v in pages of %v with %d up to date; want %v in 3, 3, 1 with 1", ids, sizes, upToDate, want)
	}

	// Without limit: DefaultPageLimit, here one page and no nextToken.
	_, all := h.call("GET", "/satellites", nil, nil, nil)
	if _, more := all["nextToken"]; more || len(all["satellites"].([]any)) != len(want) {
		t.Errorf("default page: %d satellites, nextToken present %v", len(all["satellites"].([]any)), more)
	}
}

// TestMalformedPageTokensAndLimitsAreRefused sends tokens the API never
// issued and limits out of range to both listings: 400 (token) or 422
// (limit) with a message saying what to do, and nothing read.
func TestMalformedPageTokensAndLimitsAreRefused(t *testing.T) {
	h := newHarness(t)
	h.create("One")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	valid := h.page("/satellites", 1, "")
	if _, ok := valid["nextToken"]; ok {
		t.Fatalf("one satellite, limit 1: nextToken %v on the last page", valid["nextToken"])
	}
	for _, route := range []string{"/satellites", "/script-packages"} {
		for name, tok := range map[string]string{
			"empty":            "",
			"not base64url":    "a+b/c==",
			"padded":           base64.URLEncoding.EncodeToString([]byte(`{"after":"sat-1"}`)),
			"not JSON":         b64("sat-1"),
			"other fields":     b64(`{"after":"sat-1","pk":"SAT#x"}`),
			"trailing data":    b64(`{"after":"sat-1"}{}`),
			"not an id":        b64(`{"after":"sat 1/../x"}`),
			"no position":      b64(`{}`),
			"number":           b64(`{"after":17}`),
			"too long":         b64(`{"after":"` + strings.Repeat("a", 600) + `"}`),
			"a DynamoDB key":   b64(`{"fleetPart":{"S":"fleet"},"pk":{"S":"SAT#x"},"sk":{"S":"SATELLITE"}}`),
			"control in token": "abc\x00",
		} {
			h.calls.Reset()
			code, out := h.call("GET", route, nil, map[string]string{"nextToken": tok}, nil)
			if code != http.StatusBadRequest || !strings.Contains(errorMessage(out), "nextToken is not a token this API issued") {
				t.Errorf("GET %s with a token %s: %d %v; want 400 saying the token is not one the API issued", route, name, code, out)
			}
			if n := h.calls.Count("DynamoDB"); n != 0 {
				t.Errorf("GET %s with a token %s made %d DynamoDB requests before refusing it", route, name, n)
			}
		}
		for _, limit := range []string{"0", "-1", "1001", "ten", "1e3", ""} {
			code, out := h.call("GET", route, nil, map[string]string{"limit": limit}, nil)
			if code != http.StatusUnprocessableEntity || !strings.Contains(errorMessage(out), "limit must be an integer from 1 to 1000") {
				t.Errorf("GET %s?limit=%s: %d %v; want 422 naming the range", route, limit, code, out)
			}
		}
	}
}

// TestListingPagesStayUnderTheirByteBound lists satellites holding the
// largest views the API accepts: a page of limit 1000 ends once its body
// would pass admin.MaxPageBytes, so the Lambda response (the body inside a
// JSON string) stays far below Lambda's 6 MB, and the next page resumes
// after its last satellite.
func TestListingPagesStayUnderTheirByteBound(t *testing.T) {
	h := newHarness(t)
	// Every character one JSON escapes into six bytes.
	heavy := func(n int) string { return strings.Repeat("<", n) }
	tags := map[string]any{}
	for i := range 50 {
		tags[fmt.Sprintf("%02d%s", i, heavy(126))] = heavy(256)
	}
	code, out := h.call("POST", "/satellites", nil, nil, map[string]any{"name": heavy(128), "region": "eu-central-1", "tags": tags})
	if code != http.StatusCreated {
		t.Fatalf("the largest satellite the API accepts: %d %v", code, out)
	}
	first := out["satellite"].(map[string]any)["satelliteId"].(string)
	reg := h.env.Registry()
	stored, _, err := reg.Satellite(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	const fleet = 12
	ids := []string{first}
	for i := 1; i < fleet; i++ {
		sat := stored
		sat.ID = fmt.Sprintf("%s-%02d", first, i)
		if err := reg.CreateSatellite(ctx, sat); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sat.ID)
	}
	caps := make([]string, 32)
	for i := range caps {
		caps[i] = fmt.Sprintf("%02d%s", i, strings.Repeat("c", 62))
	}
	longError, lockfile := heavy(2048), strings.Repeat("f", 200)
	for _, id := range ids {
		conn := h.connect(id, "")
		if _, err := reg.RecordHeartbeat(ctx, id, conn, heavy(64), caps, 0, h.now); err != nil {
			t.Fatal(err)
		}
		if err := reg.SaveSyncState(ctx, id, satellite.SyncState{Status: satellite.SyncError, LockfileHash: &lockfile, ErrorMessage: longError, ReportedAt: h.now}); err != nil {
			t.Fatal(err)
		}
	}
	one, _ := json.Marshal(h.page("/satellites", 1, "")["satellites"].([]any)[0])
	t.Logf("largest satellite view: %d bytes of JSON", len(one))
	if len(one) > admin.MaxPageBytes/4 {
		t.Errorf("the largest view takes %d bytes, more than a quarter of a page", len(one))
	}

	// A typical satellite, for comparison (listed first: "0" sorts before
	// every uuid).
	typical := satellite.Satellite{ID: "0-typical", Name: "Berlin edge 1", Region: "eu-central-1", TokenHash: "h", CreatedAt: h.now,
		Tags: map[string]string{"site": "ber-1", "team": "sre"}}
	if err := reg.CreateSatellite(ctx, typical); err != nil {
		t.Fatal(err)
	}
	conn := h.connect(typical.ID, "")
	if _, err := reg.RecordHeartbeat(ctx, typical.ID, conn, "1.4.2", []string{"scripts", "scrape", "telemetry"}, 0, h.now); err != nil {
		t.Fatal(err)
	}
	if err := reg.SaveSyncState(ctx, typical.ID, satellite.SyncState{Status: satellite.SyncReady, LockfileHash: &lockfile, ReportedAt: h.now}); err != nil {
		t.Fatal(err)
	}
	small, _ := json.Marshal(h.page("/satellites", 1, "")["satellites"].([]any)[0])
	t.Logf("typical satellite view: %d bytes of JSON: %s", len(small), small)
	if _, err := reg.DeleteSatellite(ctx, typical.ID, h.now); err != nil {
		t.Fatal(err)
	}

	var listed []string
	token := ""
	for pages := 0; ; pages++ {
		q := map[string]string{"limit": "1000"}
		if token != "" {
			q["nextToken"] = token
		}
		req := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "GET /satellites", RawPath: "/satellites", QueryStringParameters: q}
		resp, err := h.a.Admin.Handle(ctx, req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("page %d: %d %v", pages, resp.StatusCode, err)
		}
		// What Lambda returns to API Gateway: the response event, the body
		// a JSON string inside it.
		invocation, _ := json.Marshal(resp)
		var page admin.SatellitesPage
		if err := json.Unmarshal([]byte(resp.Body), &page); err != nil {
			t.Fatal(err)
		}
		t.Logf("page %d: %d satellites, body %d bytes, Lambda response %d bytes", pages, len(page.Satellites), len(resp.Body), len(invocation))
		if len(resp.Body) > admin.MaxPageBytes || len(invocation) > 2*admin.MaxPageBytes+1024 {
			t.Errorf("page %d: body %d bytes, response %d; want at most %d and %d", pages, len(resp.Body), len(invocation), admin.MaxPageBytes, 2*admin.MaxPageBytes+1024)
		}
		for _, v := range page.Satellites {
			listed = append(listed, v.SatelliteID)
		}
		if page.NextToken == "" {
			if pages == 0 {
				t.Errorf("%d satellites of %d bytes in one page", fleet, len(one))
			}
			break
		}
		token = page.NextToken
	}
	slices.Sort(ids)
	if !slices.Equal(listed, ids) {
		t.Errorf("listed %v, want %v", listed, ids)
	}
}
