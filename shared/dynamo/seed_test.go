package dynamo_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestSeedWritesWhatTheRealPathWrites seeds one satellite with
// SeedConnected and another through CreateSatellite, OpenConnection,
// BindConnection and ConfirmEdge, and compares every item: benchmarks that
// seed a fleet measure the data the functions really leave.
func TestSeedWritesWhatTheRealPathWrites(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	reg := env.Registry()
	at := time.Date(2026, 11, 27, 8, 0, 17, 0, time.UTC)
	mk := func(id string) satellite.Satellite {
		return satellite.Satellite{ID: id, Name: "Satellite", Region: "eu-central-1", TokenHash: "h", CreatedAt: at,
			Tags: map[string]string{"site": "fra"}, OfflineThreshold: 90 * time.Second}
	}
	real := mk("sat-real")
	if err := reg.CreateSatellite(ctx, real); err != nil {
		t.Fatal(err)
	}
	if err := reg.OpenConnection(ctx, satellite.Connection{ID: "conn-sat-real", ConnectedAt: at, ExpiresAt: at.Add(satellite.ConnectionRecordTTL)}); err != nil {
		t.Fatal(err)
	}
	edge, err := reg.BindConnection(ctx, "conn-sat-real", real, "h", nil, at)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.ConfirmEdge(ctx, real.ID, edge.ID); err != nil {
		t.Fatal(err)
	}
	if err := reg.SeedConnected(ctx, []satellite.Satellite{mk("sat-seed")}, at); err != nil {
		t.Fatal(err)
	}
	read := func(table string, key map[string]types.AttributeValue) map[string]types.AttributeValue {
		out, err := env.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil || out.Item == nil {
			t.Fatalf("read %v: %v", key, err)
		}
		return out.Item
	}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	// Ids differ; shards derive from ids: compare with the seeded id's own.
	for _, c := range []struct {
		table string
		key   func(id string) map[string]types.AttributeValue
		ids   []string // attributes holding the id (or derived from it)
	}{
		{env.Tables.Satellites, func(id string) map[string]types.AttributeValue {
			return map[string]types.AttributeValue{"pk": s("SAT#" + id), "sk": s("SATELLITE")}
		}, []string{"pk", "satelliteId", "connectionId", "liveShard"}},
		{env.Tables.Satellites, func(id string) map[string]types.AttributeValue {
			return map[string]types.AttributeValue{"pk": s("SAT#" + id), "sk": s("PROFILE")}
		}, []string{"pk"}},
		{env.Tables.Connections, func(id string) map[string]types.AttributeValue {
			return map[string]types.AttributeValue{"connectionId": s("conn-" + id)}
		}, []string{"connectionId", "satelliteId", "expiryShard"}},
	} {
		want, got := read(c.table, c.key("sat-real")), read(c.table, c.key("sat-seed"))
		for _, name := range c.ids {
			if (want[name] == nil) != (got[name] == nil) {
				t.Errorf("%v: %s present %v, seeded %v", c.key("sat-seed"), name, want[name] != nil, got[name] != nil)
			}
			delete(want, name)
			delete(got, name)
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%v: seeded\n%v\nwant\n%v", c.key("sat-seed"), got, want)
		}
	}
}
