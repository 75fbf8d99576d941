package sweep_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

// TestSweepAddsLegacySatellitesToTheFleetIndex stores satellites as the
// code before the fleet index did (no index key): a sweep near its
// deadline leaves them, the next sweep adds them, and from then on a warm
// sweep instance spends no request on the backfill and a cold one one read.
func TestSweepAddsLegacySatellitesToTheFleetIndex(t *testing.T) {
	h := newHarness(t)
	h.connect("sat-new", 0, h.t0)
	legacy := []string{"sat-legacy-1", "sat-legacy-2", "sat-legacy-3"}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	for _, id := range legacy {
		_, err := h.env.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(h.env.Tables.Satellites), Item: map[string]types.AttributeValue{
			"pk": s("SAT#" + id), "sk": s("SATELLITE"), "satelliteId": s(id), "name": s(id), "region": s("r1"), "tokenHash": s("h"),
			"createdAt": &types.AttributeValueMemberN{Value: "1700000000000"}, "pendingEdges": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	listed := func() []string {
		page, err := h.reg.ListSatellites(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, sat := range page.Satellites {
			ids = append(ids, sat.ID)
		}
		return ids
	}
	if got := listed(); !slices.Equal(got, []string{"sat-new"}) {
		t.Fatalf("listed %v before the backfill, want only sat-new", got)
	}

	late, cancel := context.WithDeadline(ctx, time.Now().Add(sweep.DeadlineMargin-time.Millisecond))
	defer cancel()
	h.calls.Reset()
	if r, err := h.a.Sweep.Sweep(late); err != nil || r.Indexed != 0 || slices.Contains(h.calls.Operations("DynamoDB"), "Scan") {
		t.Fatalf("sweep near its deadline: %+v %v, requests %v; want no backfill", r, err, h.calls.Operations("DynamoDB"))
	}
	if r, err := h.a.Sweep.Sweep(ctx); err != nil || r.Indexed != len(legacy) {
		t.Fatalf("sweep: %+v %v, want %d satellites indexed", r, err, len(legacy))
	}
	if got, want := listed(), append(slices.Clone(legacy), "sat-new"); !slices.Equal(got, want) {
		t.Fatalf("listed %v after the backfill, want %v", got, want)
	}

	// Done: the warm instance does not look again, a cold one reads that
	// it is done.
	h.calls.Reset()
	if r, err := h.a.Sweep.Sweep(ctx); err != nil || r.Indexed != 0 {
		t.Fatalf("warm sweep: %+v %v", r, err)
	}
	if ops := h.calls.Operations("DynamoDB"); slices.Contains(ops, "Scan") || slices.Contains(ops, "BatchGetItem") {
		t.Errorf("warm sweep after the backfill made %v", ops)
	}
	log, _ := testenv.LogBuffer()
	cold, calls := h.env.App(t, h.env.Config(h.mgmt.URL), app.Options{Now: h.clock.Now, Lifecycle: h.sink, Log: log})
	if r, err := cold.Sweep.Sweep(ctx); err != nil || r.Indexed != 0 {
		t.Fatalf("cold sweep: %+v %v", r, err)
	}
	batches := 0
	for _, op := range calls.Operations("DynamoDB") {
		if op == "Scan" {
			t.Errorf("cold sweep after the backfill scanned")
		}
		if op == "BatchGetItem" {
			batches++
		}
	}
	if batches != 1 {
		t.Errorf("cold sweep after the backfill made %d batch reads, want 1 (that it is done)", batches)
	}
}
