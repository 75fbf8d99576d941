package localstack_test

import (
	"github.com/checkstack/satellite-backend/infra/testenv"
	"testing"

	"github.com/checkstack/satellite-backend/infra/localstack"
)

// TestPersistKeepsStateAcrossRestarts is `make dev PERSIST=dir`: tables,
// bucket, secrets and the demo satellite survive a restart, and the demo
// token is new each time (the old one stops working).
func TestPersistKeepsStateAcrossRestarts(t *testing.T) {
	testenv.NeedsServers(t)
	dir := t.TempDir()
	first, err := localstack.Start(ctx, localstack.Options{DataDir: dir, Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	createSatellite(t, first, "sat-kept")
	integrity, err := first.Publisher.PutBlob(ctx, []byte("kept blob"))
	if err != nil {
		t.Fatal(err)
	}
	firstToken := first.Demo.Token
	first.Stop()

	second, err := localstack.Start(ctx, localstack.Options{DataDir: dir, Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	if _, _, err := second.Registry.Satellite(ctx, "sat-kept"); err != nil {
		t.Errorf("satellite lost across restart: %v", err)
	}
	if _, err := second.Packages.ReadBlob(ctx, integrity, 1<<20); err != nil {
		t.Errorf("blob lost across restart: %v", err)
	}
	if second.Demo.Token == firstToken {
		t.Error("demo token did not change")
	}
	demo, _, err := second.Registry.Satellite(ctx, localstack.DemoSatelliteID)
	if err != nil || demo.TokenHash == "" {
		t.Fatalf("demo satellite: %v", err)
	}
	if second.SecretsFile != first.SecretsFile || len(second.SecretNames()) == 0 {
		t.Errorf("secrets file not kept: %s vs %s", second.SecretsFile, first.SecretsFile)
	}
}
