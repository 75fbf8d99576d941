package awssecrets_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/awssecrets"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func newSource(t *testing.T, secrets map[string]string) (*awssecrets.Source, *testenv.SecretsManager) {
	t.Helper()
	server := testenv.NewSecretsManager(t, secrets)
	cfg := localaws.AWSConfig()
	cfg.Retryer = func() aws.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 2) }
	return awssecrets.New(awsapi.New(cfg, awsapi.Options{}), server.URL, "checkstack/run/"), server
}

// TestGetSecretValueIsWhatTheSDKSends checks the adapter's request against
// the one the AWS SDK's Secrets Manager client makes for the same secret.
func TestGetSecretValueIsWhatTheSDKSends(t *testing.T) {
	src, server := newSource(t, map[string]string{"checkstack/run/API_TOKEN": "v"})
	sdk := secretsmanager.NewFromConfig(localaws.AWSConfig(), func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(server.URL) })
	out, err := sdk.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("checkstack/run/API_TOKEN")})
	if err != nil || aws.ToString(out.SecretString) != "v" {
		t.Fatalf("SDK: %v %v", out, err)
	}
	if got, err := src.Resolve(context.Background(), []string{"API_TOKEN"}); err != nil || got["API_TOKEN"] != "v" {
		t.Fatalf("adapter: %v %v", got, err)
	}
	reqs := server.Requests()
	if len(reqs) != 2 || reqs[0].Target != reqs[1].Target || !reflect.DeepEqual(reqs[0].Body, reqs[1].Body) || !reqs[1].Signed {
		t.Errorf("SDK and adapter requests differ: %+v", reqs)
	}
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
		t.Errorf("throttled request tried %d times, want the retryer's 2 attempts", got)
	}
	if strings.Contains(err.Error(), "ok-value") {
		t.Errorf("an error carries a secret value")
	}
}
