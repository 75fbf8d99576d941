package dynamo_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// TestAnEnvironmentsResultsAreFoundPastOtherEnvironments: an environment's
// results are the check's partition filtered, page after page: the one
// staging result sits under 30 newer production ones (a page reads four
// times the wanted count), and the production listing stops at its limit.
func TestAnEnvironmentsResultsAreFoundPastOtherEnvironments(t *testing.T) {
	ctx := context.Background()
	reg := testenv.New(t).Registry()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	id := "sat-envs"
	if err := reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: "Edge", TokenHash: "$2a$10$hash", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	envs := []satellite.Environment{{ID: "prod", Name: "Production"}, {ID: "stage", Name: "Staging"}}
	if err := reg.ReplaceAssignments(ctx, id, []satellite.Assignment{{ConfigID: "cfg", SystemID: "sys", StrategyID: "http", IntervalSeconds: 30, Environments: envs}}); err != nil {
		t.Fatal(err)
	}
	record := func(i int, env string) {
		t.Helper()
		at := now.Add(time.Duration(i) * time.Second)
		if err := reg.RecordResult(ctx, satellite.Result{ID: fmt.Sprintf("r%02d", i), ConfigID: "cfg", SystemID: "sys", SatelliteID: id,
			Status: satellite.CheckHealthy, EnvironmentID: &env, ExecutedAt: at, ReceivedAt: at, ExpiresAt: at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	record(0, "stage")
	for i := 1; i <= 30; i++ {
		record(i, "prod")
	}
	stage := "stage"
	got, err := reg.LatestResults(ctx, "cfg", "sys", &stage, 5)
	if err != nil || len(got) != 1 || got[0].ID != "r00" || *got[0].EnvironmentID != "stage" {
		t.Errorf("staging results %+v, %v; want r00 alone", got, err)
	}
	prod := "prod"
	got, err = reg.LatestResults(ctx, "cfg", "sys", &prod, 3)
	if err != nil || len(got) != 3 || got[0].ID != "r30" || got[2].ID != "r28" {
		t.Errorf("production results %+v, %v; want r30, r29, r28", got, err)
	}
	other := "none"
	if got, err := reg.LatestResults(ctx, "cfg", "sys", &other, 5); err != nil || len(got) != 0 {
		t.Errorf("results of an environment with none: %+v, %v", got, err)
	}
}
