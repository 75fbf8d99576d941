package awssecrets_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/awssecrets"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func newSource(t *testing.T, secrets map[string]string) (*awssecrets.Source, *testenv.SecretsManager) {
	t.Helper()
	server := testenv.NewSecretsManager(t, secrets)
	client := secretsmanager.NewFromConfig(localaws.AWSConfig(), func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(server.URL)
		o.RetryMaxAttempts = 2
	})
	return awssecrets.New(client, "checkstack/run/"), server
}

func TestResolveReadsPrefixedSecrets(t *testing.T) {
	src, server := newSource(t, map[string]string{
		"checkstack/run/API_TOKEN": "token-value",
		"checkstack/run/DB-PASS":   "db-value",
		"API_TOKEN":                "unprefixed-must-not-be-read",
	})
	got, err := src.Resolve(context.Background(), []string{"API_TOKEN", "DB-PASS"})
	if err != nil {
		t.Fatal(err)
	}
	if got["API_TOKEN"] != "token-value" || got["DB-PASS"] != "db-value" || len(got) != 2 {
		t.Errorf("values = %v", got)
	}
	reqs := server.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, want := range []string{"checkstack/run/API_TOKEN", "checkstack/run/DB-PASS"} {
		r := reqs[i]
		if r.Target != "secretsmanager.GetSecretValue" || r.Body["SecretId"] != want || !r.Signed {
			t.Errorf("request %d = %+v, want a signed GetSecretValue of %s", i, r, want)
		}
	}
}

func TestResolveFailures(t *testing.T) {
	src, server := newSource(t, map[string]string{"checkstack/run/SLOW": "THROTTLE", "checkstack/run/OK": "ok-value"})
	_, err := src.Resolve(context.Background(), []string{"OK", "MISSING"})
	if satellite.ErrorCode(err) != satellite.ENOTFOUND || satellite.ErrorMessage(err) != "Secret MISSING could not be resolved" {
		t.Errorf("missing secret: %v", err)
	}
	before := len(server.Requests())
	_, err = src.Resolve(context.Background(), []string{"SLOW"})
	if satellite.ErrorCode(err) != satellite.EINTERNAL || !strings.Contains(satellite.ErrorMessage(err), "SLOW") {
		t.Errorf("throttled secret: %v", err)
	}
	if got := len(server.Requests()) - before; got != 2 {
		t.Errorf("throttled request tried %d times, want the SDK's retry (2 attempts)", got)
	}
	if strings.Contains(err.Error(), "ok-value") {
		t.Errorf("an error carries a secret value")
	}
}
