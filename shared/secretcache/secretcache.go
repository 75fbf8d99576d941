// Package secretcache keeps, in a warm function instance, the secret values
// it has resolved for a short time, so that the satellites of a fleet
// asking for the same secrets (every run of every check asks again) cost
// Secrets Manager one read per instance and period instead of one per
// request.
//
// A kept value is served until its time to live has passed, so a rotated
// secret reaches satellites within that time: keep the previous value
// valid at least that long (Secrets Manager's rotation keeps it as
// AWSPREVIOUS). A secret that cannot be resolved is never kept: it is read
// again on the next request, so a secret created to fix it applies at once.
// Values are held in memory only and never logged.
package secretcache

import (
	"context"
	"time"

	"github.com/checkstack/satellite-backend/shared/lru"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Defaults: a short time to live, and room for the secrets of a large
// fleet's configs (a secret holds at most 64 KB; most hold far less).
const (
	DefaultTTL        = 30 * time.Second
	DefaultMaxEntries = 1024
	// MaxBytes bounds the memory the kept values hold.
	MaxBytes = 4 << 20
)

// entryOverhead approximates what one entry costs beyond its name and
// value: the LRU's node, the map slot, the string headers and the expiry.
const entryOverhead = 128

// Source implements satellite.SecretSource over another source, keeping
// each value it resolves for ttl.
type Source struct {
	source satellite.SecretSource
	ttl    time.Duration
	now    func() time.Time
	cache  *lru.Cache[string, kept]
}

var _ satellite.SecretSource = (*Source)(nil)

type kept struct {
	value string
	until time.Time
}

// New returns source with values kept for ttl, at most maxEntries of them
// and MaxBytes in all; now is the clock (time.Now when nil).
func New(source satellite.SecretSource, ttl time.Duration, maxEntries int, now func() time.Time) *Source {
	if now == nil {
		now = time.Now
	}
	return &Source{source: source, ttl: ttl, now: now, cache: lru.New[string, kept](maxEntries, MaxBytes)}
}

// Resolve implements satellite.SecretSource: the names not kept, or kept
// longer than the time to live, are resolved in one call to the source.
func (s *Source) Resolve(ctx context.Context, names []string) (map[string]string, error) {
	now := s.now()
	values := make(map[string]string, len(names))
	var missing []string
	asked := make(map[string]bool, len(names))
	for _, name := range names {
		if asked[name] {
			continue
		}
		asked[name] = true
		if k, ok := s.cache.Get(name); ok {
			if now.Before(k.until) {
				values[name] = k.value
				continue
			}
			s.cache.Remove(name)
		}
		missing = append(missing, name)
	}
	if len(missing) == 0 {
		return values, nil
	}
	fetched, err := s.source.Resolve(ctx, missing)
	if err != nil {
		return nil, err
	}
	// The time to live counts from before the read: a value is never
	// served longer than ttl after Secrets Manager was asked for it.
	until := now.Add(s.ttl)
	for _, name := range missing {
		v, ok := fetched[name]
		if !ok {
			return nil, satellite.Errorf(satellite.EINTERNAL, "Secret %s could not be resolved: the source did not answer for it", name)
		}
		values[name] = v
		s.cache.Add(name, kept{value: v, until: until}, int64(len(name)+len(v))+entryOverhead)
	}
	return values, nil
}

// Len is the number of values kept (some may have expired).
func (s *Source) Len() int { return s.cache.Len() }
