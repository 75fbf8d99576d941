package dynamo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// recorded returns a registry over env's tables whose every request calls
// records.
func recorded(env *testenv.Env) (*dynamo.Registry, *testenv.Calls) {
	calls := &testenv.Calls{}
	db := localaws.DynamoDBClient(env.DynamoDBEndpoint, func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, calls.APIOption)
	})
	return dynamo.NewRegistry(db, env.Tables), calls
}

// listAll pages through the fleet limit satellites at a time and returns
// the pages.
func listAll(t *testing.T, reg *dynamo.Registry, limit int) []satellite.SatellitePage {
	t.Helper()
	var pages []satellite.SatellitePage
	after := ""
	for {
		page, err := reg.ListSatellites(context.Background(), after, limit)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, page)
		if page.Next == "" {
			return pages
		}
		if len(pages) > 1000 {
			t.Fatal("listing does not end")
		}
		after = page.Next
	}
}

func idsOf(pages []satellite.SatellitePage) []string {
	var ids []string
	for _, p := range pages {
		for _, s := range p.Satellites {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// putLegacy writes a satellite as code before the fleet index stored it:
// no fleetPart. withProfile false is a satellite from before profile
// items, with its tags and sync state on the satellite item.
func putLegacy(t *testing.T, env *testenv.Env, id string, withProfile bool) {
	t.Helper()
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	m := func(v map[string]types.AttributeValue) types.AttributeValue {
		return &types.AttributeValueMemberM{Value: v}
	}
	tags := m(map[string]types.AttributeValue{"site": s("legacy-" + id)})
	sat := map[string]types.AttributeValue{
		"pk": s("SAT#" + id), "sk": s("SATELLITE"), "satelliteId": s(id), "name": s("Legacy " + id), "region": s("eu-west-1"),
		"tokenHash": s("h"), "createdAt": &types.AttributeValueMemberN{Value: "1700000000000"}, "pendingEdges": m(map[string]types.AttributeValue{}),
	}
	items := []map[string]types.AttributeValue{sat}
	if withProfile {
		items = append(items, map[string]types.AttributeValue{"pk": s("SAT#" + id), "sk": s("PROFILE"), "tags": tags})
	} else {
		sat["tags"] = tags
		sat["syncState"] = m(map[string]types.AttributeValue{
			"status": s("ready"), "lockfileHash": s("lock-old"), "reportedAt": &types.AttributeValueMemberN{Value: "1700000000000"},
		})
	}
	for _, it := range items {
		if _, err := env.DB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(env.Tables.Satellites), Item: it}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListingCoversEverySatelliteOnceInOrderLegacyIncluded pages through a
// fleet of satellites created now (with assignments, capability configs
// and statuses in their partitions) and satellites stored before the fleet
// index (one from before profile items), a few at a time: before the
// backfill the legacy ones are missing; after it every satellite appears
// exactly once, in id order, with what its items hold, and each page costs
// one index query and one batch read.
func TestListingCoversEverySatelliteOnceInOrderLegacyIncluded(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	reg, calls := recorded(env)
	dynamo.SetBackfillScanLimit(reg, 7)
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

	var want []string
	for _, i := range rand.Perm(9) {
		id := fmt.Sprintf("sat-%02d", i)
		want = append(want, id)
		if err := reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Sat " + id, Region: "eu-central-1", TokenHash: "h", CreatedAt: at,
			Tags: map[string]string{"site": id}}); err != nil {
			t.Fatal(err)
		}
		a, err := satellite.ParseAssignment(json.RawMessage(`{"configId":"cfg","systemId":"sys","strategyId":"http","config":{},"intervalSeconds":60}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.ReplaceAssignments(ctx, id, []satellite.Assignment{a}); err != nil {
			t.Fatal(err)
		}
		if err := reg.SetCapabilityConfig(ctx, id, satellite.CapabilityConfig{Kind: "scrape", Payload: json.RawMessage(`{}`), UpdatedAt: at}); err != nil {
			t.Fatal(err)
		}
		if err := reg.SaveCapabilityStatus(ctx, id, satellite.CapabilityStatus{Kind: "scrape", Payload: json.RawMessage(`{}`), ReportedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	hash := "lock-1"
	if err := reg.SaveSyncState(ctx, "sat-04", satellite.SyncState{Status: satellite.SyncReady, LockfileHash: &hash, ReportedAt: at}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	legacy := []string{"a-legacy-profile", "sat-05-legacy", "z-legacy-old"}
	putLegacy(t, env, legacy[0], true)
	putLegacy(t, env, legacy[1], true)
	putLegacy(t, env, legacy[2], false)

	if got := idsOf(listAll(t, reg, 4)); !slices.Equal(got, want) {
		t.Fatalf("before the backfill: listed %v, want the %d indexed satellites %v", got, len(want), want)
	}

	// The backfill, a few items per step as over a large table.
	steps, indexed := 0, 0
	for done := false; !done; steps++ {
		step, err := reg.IndexLegacySatellites(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		indexed, done = indexed+step.Indexed, step.Done
		if steps > 100 {
			t.Fatal("backfill does not end")
		}
	}
	if indexed != len(legacy) || steps < 3 {
		t.Fatalf("backfill indexed %d satellites in %d steps, want %d in several", indexed, steps, len(legacy))
	}
	calls.Reset()
	if step, err := reg.IndexLegacySatellites(ctx, at); err != nil || !step.Done || step.Indexed != 0 {
		t.Fatalf("step after the end: %+v %v, want done with nothing indexed", step, err)
	}
	if ops := calls.Operations("DynamoDB"); !slices.Equal(ops, []string{"BatchGetItem"}) {
		t.Errorf("a step once done made %v, want one read", ops)
	}
	want = append(want, legacy...)
	slices.Sort(want)

	const limit = 4
	calls.Reset()
	pages := listAll(t, reg, limit)
	if got := idsOf(pages); !slices.Equal(got, want) {
		t.Fatalf("listed\n%v\nwant every satellite once, in id order\n%v", got, want)
	}
	if len(pages) != (len(want)+limit-1)/limit {
		t.Errorf("%d pages of %d for %d satellites", len(pages), limit, len(want))
	}
	for i, p := range pages[:len(pages)-1] {
		if p.Next != p.Satellites[len(p.Satellites)-1].ID {
			t.Errorf("page %d: next %q, want its last satellite", i, p.Next)
		}
	}
	// Per page: the index query (limit+1 keys) and one batch read of the
	// satellite and profile items, never the assignment, capability or
	// status items.
	if n, items := calls.Count("DynamoDB"), calls.ItemsRead(); n != 2*len(pages) || items > len(pages)*(3*limit+1) {
		t.Errorf("%d pages took %d requests reading %d items; want 2 requests and at most %d items a page", len(pages), n, items, 3*limit+1)
	}
	for _, c := range calls.All() {
		if c.Operation != "Query" && c.Operation != "BatchGetItem" {
			t.Errorf("listing made a %s", c.Operation)
		}
	}
	t.Logf("%d satellites in %d pages of %d: %d requests, %d items, %.1f read units", len(want), len(pages), limit, calls.Count("DynamoDB"), calls.ItemsRead(), calls.Capacity().Read)

	byID := map[string]satellite.Satellite{}
	for _, p := range pages {
		for _, s := range p.Satellites {
			byID[s.ID] = s
		}
	}
	if s := byID["z-legacy-old"]; s.Tags["site"] != "legacy-z-legacy-old" || s.SyncState == nil || *s.SyncState.LockfileHash != "lock-old" {
		t.Errorf("satellite from before profile items listed as %+v", s)
	}
	if s := byID["a-legacy-profile"]; s.Tags["site"] != "legacy-a-legacy-profile" || s.Name != "Legacy a-legacy-profile" {
		t.Errorf("legacy satellite with a profile listed as %+v", s)
	}
	if s := byID["sat-04"]; s.Tags["site"] != "sat-04" || s.SyncState == nil || *s.SyncState.LockfileHash != hash {
		t.Errorf("sat-04 listed as %+v", s)
	}

	// A page starting after a satellite deleted meanwhile resumes after it.
	if _, err := reg.DeleteSatellite(ctx, "sat-05-legacy", at); err != nil {
		t.Fatal(err)
	}
	page, err := reg.ListSatellites(ctx, "sat-05-legacy", 2)
	if err != nil || len(page.Satellites) != 2 || page.Satellites[0].ID != "sat-06" {
		t.Errorf("page after a deleted satellite: %+v %v, want sat-06 first", page, err)
	}
}

// TestListingReadsArePerPageNotPerFleet pages through 250 satellites 100
// at a time: each page reads its index entries and then two batches of 50
// satellites (a satellite and a profile item each), whatever the fleet.
func TestListingReadsArePerPageNotPerFleet(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	reg, calls := recorded(env)
	const fleet, limit = 250, 100
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	sats := make([]satellite.Satellite, fleet)
	for i := range sats {
		sats[i] = satellite.Satellite{ID: fmt.Sprintf("sat-%04d", i), Name: strings.Repeat("n", 40), Region: "eu-central-1", TokenHash: "h", CreatedAt: at,
			Tags: map[string]string{"site": "fra", "rack": fmt.Sprint(i)}}
	}
	if err := reg.SeedConnected(ctx, sats, at); err != nil {
		t.Fatal(err)
	}
	after := ""
	for page := 0; ; page++ {
		calls.Reset()
		p, err := reg.ListSatellites(ctx, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		n := len(p.Satellites)
		if n != min(limit, fleet-page*limit) || p.Satellites[0].ID != fmt.Sprintf("sat-%04d", page*limit) {
			t.Fatalf("page %d: %d satellites from %s", page, n, p.Satellites[0].ID)
		}
		wantIndex := min(n+1, fleet-page*limit)
		wantRequests := 1 + (2*n+99)/100
		if got := calls.Count("DynamoDB"); got != wantRequests || calls.ItemsRead() != wantIndex+2*n {
			t.Errorf("page %d of %d satellites: %d requests, %d items read; want %d requests, %d items", page, n, got, calls.ItemsRead(), wantRequests, wantIndex+2*n)
		}
		t.Logf("page %d: %d satellites, %d requests, %d items, %.1f read units (%.1f on the index)", page, n, calls.Count("DynamoDB"), calls.ItemsRead(), calls.Capacity().Read, calls.Capacity().IndexRead)
		if p.Next == "" {
			if page != 2 {
				t.Fatalf("last page is page %d, want 2", page)
			}
			return
		}
		after = p.Next
	}
}

// TestListingStopsBeforeItsDeadline lists with less than
// dynamo.ListDeadlineMargin left: the page ends after its first batch, and
// its Next resumes right after it.
func TestListingStopsBeforeItsDeadline(t *testing.T) {
	env := testenv.New(t)
	reg := env.Registry()
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	sats := make([]satellite.Satellite, 120)
	for i := range sats {
		sats[i] = satellite.Satellite{ID: fmt.Sprintf("sat-%04d", i), Name: "s", Region: "r", TokenHash: "h", CreatedAt: at}
	}
	if err := reg.SeedConnected(context.Background(), sats, at); err != nil {
		t.Fatal(err)
	}
	late, cancel := context.WithDeadline(context.Background(), time.Now().Add(dynamo.ListDeadlineMargin-time.Millisecond))
	defer cancel()
	page, err := reg.ListSatellites(late, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Satellites) != 50 || page.Next != "sat-0049" {
		t.Fatalf("page near the deadline: %d satellites, next %q; want the first 50 and next sat-0049", len(page.Satellites), page.Next)
	}
	rest, err := reg.ListSatellites(context.Background(), page.Next, 100)
	if err != nil || len(rest.Satellites) != 70 || rest.Satellites[0].ID != "sat-0050" || rest.Next != "" {
		t.Fatalf("the rest: %d satellites from %v, next %q, %v", len(rest.Satellites), rest.Satellites[0].ID, rest.Next, err)
	}
}

// TestFleetIndexIsWrittenOnlyWhenASatelliteIsCreated measures the index
// writes DynamoDB reports: creating a satellite writes its entry; a
// heartbeat, a sync-state report, a rename with new tags and a failed
// authentication write none, since none changes the entry's keys.
func TestFleetIndexIsWrittenOnlyWhenASatelliteIsCreated(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	reg, calls := recorded(env)
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	sat := satellite.Satellite{ID: "sat-1", Name: "One", Region: "eu-central-1", TokenHash: "h", CreatedAt: at}
	if err := reg.CreateSatellite(ctx, sat); err != nil {
		t.Fatal(err)
	}
	if w := calls.Capacity().IndexWrite; w <= 0 {
		t.Fatalf("creating a satellite wrote %.1f index units, want its fleet index entry", w)
	}
	if err := reg.OpenConnection(ctx, satellite.Connection{ID: "conn-1", ConnectedAt: at, ExpiresAt: at.Add(satellite.ConnectionRecordTTL)}); err != nil {
		t.Fatal(err)
	}
	edge, err := reg.BindConnection(ctx, "conn-1", sat, "h", nil, at)
	if err != nil {
		t.Fatal(err)
	}
	// Published, as the message function does (an edge in the outbox puts
	// the satellite's name in the Outbox index).
	if err := reg.ConfirmEdge(ctx, "sat-1", edge.ID); err != nil {
		t.Fatal(err)
	}

	calls.Reset()
	// Within the live index's deadline step, so that it does not move.
	if _, err := reg.RecordHeartbeat(ctx, "sat-1", "conn-1", "1.0.0", []string{"scrape"}, 0, at); err != nil {
		t.Fatal(err)
	}
	hash := "lock-1"
	if err := reg.SaveSyncState(ctx, "sat-1", satellite.SyncState{Status: satellite.SyncReady, LockfileHash: &hash, ReportedAt: at}); err != nil {
		t.Fatal(err)
	}
	// Tags only: a rename of a connected satellite writes the live index,
	// which projects its name.
	tags := map[string]string{"site": "fra"}
	if _, err := reg.UpdateSatellite(ctx, "sat-1", satellite.Update{Tags: &tags}); err != nil {
		t.Fatal(err)
	}
	if err := reg.RecordAuthFailure(ctx, "sat-1", at); err != nil {
		t.Fatal(err)
	}
	if c := calls.Capacity(); c.Write == 0 || c.IndexWrite != 0 {
		t.Errorf("heartbeat, sync state, update and auth failure: %.1f write units, %.1f of them on indexes; want none on indexes", c.Write, c.IndexWrite)
		for _, call := range calls.All() {
			t.Logf("%s: %+v", call.Operation, call.Capacity)
		}
	}
	page, err := reg.ListSatellites(ctx, "", 10)
	if err != nil || len(page.Satellites) != 1 || page.Satellites[0].Name != "One" || page.Satellites[0].Tags["site"] != "fra" || page.Satellites[0].Version != "1.0.0" {
		t.Errorf("listed %+v %v", page, err)
	}
}
