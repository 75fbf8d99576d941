package awssecrets_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/awssecrets"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

const prefix = "checkstack/run/"

func newSource(t *testing.T, secrets map[string]string) (*awssecrets.Source, *testenv.SecretsManager) {
	t.Helper()
	server := testenv.NewSecretsManager(t, secrets)
	cfg := localaws.AWSConfig()
	cfg.Retryer = func() aws.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 2) }
	client := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(server.URL) })
	return awssecrets.New(client, prefix), server
}

// ids returns the secret ids a recorded BatchGetSecretValue request named.
func ids(r testenv.JSONRequest) []string {
	var out []string
	list, _ := r.Body["SecretIdList"].([]any)
	for _, id := range list {
		s, _ := id.(string)
		out = append(out, s)
	}
	return out
}

func TestResolveReadsPrefixedSecretsInOneRequest(t *testing.T) {
	src, server := newSource(t, map[string]string{
		prefix + "API_TOKEN": "token-value",
		prefix + "DB-PASS":   "db-value",
		"API_TOKEN":          "unprefixed-must-not-be-read",
	})
	got, err := src.Resolve(context.Background(), []string{"API_TOKEN", "DB-PASS", "API_TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	if got["API_TOKEN"] != "token-value" || got["DB-PASS"] != "db-value" || len(got) != 2 {
		t.Errorf("values = %v", got)
	}
	reqs := server.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	if r := reqs[0]; r.Target != "secretsmanager.BatchGetSecretValue" || !r.Signed ||
		!slices.Equal(ids(r), []string{prefix + "API_TOKEN", prefix + "DB-PASS"}) {
		t.Errorf("request = %+v, want one signed BatchGetSecretValue of both prefixed names, each once", r)
	}
}

func TestResolveSplitsIntoBatchesOfTwenty(t *testing.T) {
	secrets := map[string]string{}
	var names []string
	for i := range 45 {
		name := fmt.Sprintf("S%02d", i)
		secrets[prefix+name] = "value-" + name
		names = append(names, name)
	}
	src, server := newSource(t, secrets)
	got, err := src.Resolve(context.Background(), names)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if got[n] != "value-"+n {
			t.Errorf("%s = %q", n, got[n])
		}
	}
	var sizes []int
	for _, r := range server.Requests() {
		sizes = append(sizes, len(ids(r)))
	}
	if !slices.Equal(sizes, []int{20, 20, 5}) {
		t.Errorf("batches of %v, want 20, 20, 5", sizes)
	}
}

// Secrets Manager may answer part of a batch with a NextToken for the rest.
func TestResolveFollowsNextToken(t *testing.T) {
	src, server := newSource(t, map[string]string{prefix + "A": "a", prefix + "B": "b", prefix + "C": "c", prefix + "D": "d", prefix + "E": "e"})
	server.Paginate(2)
	got, err := src.Resolve(context.Background(), []string{"A", "B", "C", "D", "E"})
	if err != nil || len(got) != 5 || got["E"] != "e" {
		t.Fatalf("values = %v, %v", got, err)
	}
	reqs := server.Requests()
	var tokens []any
	for _, r := range reqs {
		tokens = append(tokens, r.Body["NextToken"])
		if len(ids(r)) != 5 {
			t.Errorf("page request names %v, want the same 5 ids", ids(r))
		}
	}
	if !reflect.DeepEqual(tokens, []any{nil, "2", "4"}) {
		t.Errorf("NextTokens sent %v, want none, then each one answered", tokens)
	}
}

func TestResolveFailures(t *testing.T) {
	src, server := newSource(t, map[string]string{
		prefix + "SLOW": "THROTTLE", prefix + "OK": "ok-value", prefix + "BIN": "BINARY",
	})
	_, err := src.Resolve(context.Background(), []string{"OK", "MISSING", "ALSO_MISSING"})
	if satellite.ErrorCode(err) != satellite.ENOTFOUND || satellite.ErrorMessage(err) != "Secret MISSING could not be resolved" {
		t.Errorf("missing secret: %v, want ENOTFOUND naming the first missing name", err)
	}
	_, err = src.Resolve(context.Background(), []string{"OK", "BIN"})
	if satellite.ErrorCode(err) != satellite.ENOTFOUND || satellite.ErrorMessage(err) != "Secret BIN has no string value" {
		t.Errorf("binary secret: %v", err)
	}
	before := len(server.Requests())
	_, err = src.Resolve(context.Background(), []string{"OK", "SLOW"})
	if satellite.ErrorCode(err) != satellite.EINTERNAL || !strings.Contains(satellite.ErrorMessage(err), "SLOW") {
		t.Errorf("throttled secret: %v", err)
	}
	if got := len(server.Requests()) - before; got != 2 {
		t.Errorf("throttled request tried %d times, want the retryer's 2 attempts", got)
	}
	if strings.Contains(err.Error(), "ok-value") {
		t.Errorf("an error carries a secret value")
	}

	// A request whose deadline has passed sends nothing.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	before = len(server.Requests())
	if _, err := src.Resolve(done, []string{"OK"}); satellite.ErrorCode(err) != satellite.EINTERNAL {
		t.Errorf("resolve after the deadline: %v, want EINTERNAL", err)
	}
	if got := len(server.Requests()) - before; got != 0 {
		t.Errorf("resolve after the deadline made %d requests", got)
	}
}
