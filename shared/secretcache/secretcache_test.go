package secretcache_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/awssecrets"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/secretcache"
)

const prefix = "checkstack/run/"

var ctx = context.Background()

// fixture is a cache over the Secrets Manager adapter, against a server
// that decodes what the SDK sends and records each request.
type fixture struct {
	server *testenv.SecretsManager
	clock  *testenv.Clock
	cache  *secretcache.Source
}

func newFixture(t *testing.T, maxEntries int, secrets map[string]string) *fixture {
	t.Helper()
	server := testenv.NewSecretsManager(t, secrets)
	clock := testenv.NewClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	src := awssecrets.New(secretsmanager.NewFromConfig(localaws.AWSConfig(), func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(server.URL) }), prefix)
	return &fixture{server: server, clock: clock, cache: secretcache.New(src, 30*time.Second, maxEntries, clock.Now)}
}

// resolve resolves names and returns the values and the secret ids each
// request it made named.
func (f *fixture) resolve(t *testing.T, names ...string) (map[string]string, [][]string, error) {
	t.Helper()
	before := len(f.server.Requests())
	values, err := f.cache.Resolve(ctx, names)
	var asked [][]string
	for _, r := range f.server.Requests()[before:] {
		var ids []string
		list, _ := r.Body["SecretIdList"].([]any)
		for _, id := range list {
			s, _ := id.(string)
			ids = append(ids, s)
		}
		asked = append(asked, ids)
	}
	return values, asked, err
}

func TestValuesAreKeptForTheTimeToLive(t *testing.T) {
	f := newFixture(t, secretcache.DefaultMaxEntries, map[string]string{prefix + "A": "a1", prefix + "B": "b1", prefix + "C": "c1"})
	values, asked, err := f.resolve(t, "A", "B", "C")
	if err != nil || len(values) != 3 || values["B"] != "b1" {
		t.Fatalf("values = %v, %v", values, err)
	}
	if len(asked) != 1 {
		t.Errorf("3 names cost %d requests, want one batch", len(asked))
	}
	f.clock.Advance(29 * time.Second)
	if values, asked, err := f.resolve(t, "C", "A"); err != nil || len(asked) != 0 || values["A"] != "a1" || len(values) != 2 {
		t.Errorf("within the time to live: %v, %v, %d requests; want kept values and no request", values, err, len(asked))
	}

	// A rotated secret reaches satellites once the time to live is over.
	f.server.Put(prefix+"A", "a2")
	if values, _, _ := f.resolve(t, "A"); values["A"] != "a1" {
		t.Errorf("A = %q just after rotation, want the kept a1", values["A"])
	}
	f.clock.Advance(time.Second)
	values, asked, err = f.resolve(t, "A", "B")
	if err != nil || values["A"] != "a2" || values["B"] != "b1" {
		t.Errorf("after the time to live: %v, %v; want the rotated a2", values, err)
	}
	if !reflect.DeepEqual(asked, [][]string{{prefix + "A", prefix + "B"}}) {
		t.Errorf("after the time to live asked %v, want one batch of both", asked)
	}
}

func TestOnlyMissingNamesAreAsked(t *testing.T) {
	f := newFixture(t, secretcache.DefaultMaxEntries, map[string]string{prefix + "A": "a", prefix + "D": "d"})
	if _, _, err := f.resolve(t, "A"); err != nil {
		t.Fatal(err)
	}
	values, asked, err := f.resolve(t, "A", "D", "D")
	if err != nil || values["A"] != "a" || values["D"] != "d" || len(values) != 2 {
		t.Fatalf("values = %v, %v", values, err)
	}
	if !reflect.DeepEqual(asked, [][]string{{prefix + "D"}}) {
		t.Errorf("asked %v, want only D, once", asked)
	}
}

func TestUnresolvedSecretsAreNotKept(t *testing.T) {
	f := newFixture(t, secretcache.DefaultMaxEntries, map[string]string{prefix + "A": "a"})
	for range 2 {
		_, asked, err := f.resolve(t, "A", "LATE")
		if satellite.ErrorCode(err) != satellite.ENOTFOUND || satellite.ErrorMessage(err) != "Secret LATE could not be resolved" {
			t.Errorf("missing secret: %v, want ENOTFOUND naming it", err)
		}
		if len(asked) != 1 {
			t.Errorf("missing secret asked %v, want one request each time", asked)
		}
	}
	// Created, it applies on the next request.
	f.server.Put(prefix+"LATE", "late")
	if values, _, err := f.resolve(t, "LATE"); err != nil || values["LATE"] != "late" {
		t.Errorf("after creating it: %v, %v", values, err)
	}
	// A failed read keeps nothing either.
	f.server.Put(prefix+"A", "THROTTLE")
	f.clock.Advance(time.Minute)
	if _, _, err := f.resolve(t, "A"); satellite.ErrorCode(err) != satellite.EINTERNAL {
		t.Errorf("throttled: %v, want EINTERNAL", err)
	}
	f.server.Put(prefix+"A", "a2")
	if values, asked, err := f.resolve(t, "A"); err != nil || values["A"] != "a2" || len(asked) != 1 {
		t.Errorf("after throttling: %v, %v, %d requests", values, err, len(asked))
	}
}

func TestEntryBoundHolds(t *testing.T) {
	secrets := map[string]string{}
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprintf("S%d", i))
		secrets[prefix+names[i]] = "v"
	}
	f := newFixture(t, 4, secrets)
	if values, _, err := f.resolve(t, names...); err != nil || len(values) != 10 {
		t.Fatalf("values = %v, %v", values, err)
	}
	if got := f.cache.Len(); got != 4 {
		t.Errorf("cache holds %d values, want its bound 4", got)
	}
	// The most recently resolved are kept.
	if _, asked, _ := f.resolve(t, "S9"); len(asked) != 0 {
		t.Errorf("S9 asked again: %v", asked)
	}
	if _, asked, _ := f.resolve(t, "S0"); len(asked) != 1 {
		t.Errorf("evicted S0 not asked again: %v", asked)
	}
}

// TestConcurrentResolves runs under -race in CI.
func TestConcurrentResolves(t *testing.T) {
	secrets := map[string]string{}
	for i := range 8 {
		secrets[fmt.Sprintf("%sS%d", prefix, i)] = fmt.Sprintf("value-%d", i)
	}
	f := newFixture(t, 6, secrets)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				a, b := fmt.Sprintf("S%d", (g+i)%8), fmt.Sprintf("S%d", (g+2*i)%8)
				values, err := f.cache.Resolve(ctx, []string{a, b})
				if err != nil || values[a] != "value-"+a[1:] || values[b] != "value-"+b[1:] {
					t.Errorf("Resolve(%s, %s) = %v, %v", a, b, values, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if f.cache.Len() > 6 {
		t.Errorf("cache holds %d values, over its bound 6", f.cache.Len())
	}
}
