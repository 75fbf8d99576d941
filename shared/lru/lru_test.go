package lru_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/checkstack/satellite-backend/shared/lru"
)

// keys returns which of candidates the cache holds, in order.
func keys(c *lru.Cache[string, int], candidates ...string) []string {
	var held []string
	for _, k := range candidates {
		if _, ok := c.Get(k); ok {
			held = append(held, k)
		}
	}
	return held
}

func TestEvictsLeastRecentlyUsedEntry(t *testing.T) {
	c := lru.New[string, int](3, 1<<20)
	c.Add("a", 1, 1)
	c.Add("b", 2, 1)
	c.Add("c", 3, 1)
	// Reading a makes b the least recently used.
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %d, %v", v, ok)
	}
	c.Add("d", 4, 1)
	if got, want := keys(c, "a", "b", "c", "d"), []string{"a", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("held %v, want %v (b least recently used)", got, want)
	}
	if got := c.Len(); got != 3 {
		t.Errorf("Len = %d, want 3", got)
	}
}

func TestCostBoundEvictsUntilItHolds(t *testing.T) {
	c := lru.New[string, int](100, 10)
	c.Add("a", 1, 4)
	c.Add("b", 2, 4)
	c.Add("c", 3, 4) // 12 > 10: a goes
	if got, want := keys(c, "a", "b", "c"), []string{"b", "c"}; !slices.Equal(got, want) {
		t.Errorf("held %v, want %v", got, want)
	}
	if got := c.Cost(); got != 8 {
		t.Errorf("Cost = %d, want 8", got)
	}
	// One entry as large as the bound evicts everything else.
	if !c.Add("big", 9, 10) {
		t.Fatal("an entry of exactly the bound was refused")
	}
	if got, want := keys(c, "b", "c", "big"), []string{"big"}; !slices.Equal(got, want) {
		t.Errorf("held %v, want %v", got, want)
	}
	if got := c.Cost(); got != 10 {
		t.Errorf("Cost = %d, want 10", got)
	}
}

func TestOversizedEntryIsRefusedAndKeepsTheRest(t *testing.T) {
	c := lru.New[string, int](10, 10)
	c.Add("a", 1, 5)
	if c.Add("huge", 2, 11) {
		t.Error("an entry over the cost bound was stored")
	}
	if c.Add("negative", 3, -1) {
		t.Error("an entry of negative cost was stored")
	}
	if got, want := keys(c, "a", "huge", "negative"), []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("held %v, want %v", got, want)
	}
	// Replacing a key by an oversized value leaves the key empty, not stale.
	if c.Add("a", 9, 11) {
		t.Error("oversized replacement stored")
	}
	if _, ok := c.Get("a"); ok {
		t.Error("a still holds its old value after a refused replacement")
	}
	if got := c.Cost(); got != 0 {
		t.Errorf("Cost = %d, want 0", got)
	}
}

func TestReplaceAndRemoveKeepTheCostRight(t *testing.T) {
	c := lru.New[string, int](10, 100)
	c.Add("a", 1, 30)
	c.Add("a", 2, 50)
	if v, _ := c.Get("a"); v != 2 || c.Cost() != 50 || c.Len() != 1 {
		t.Errorf("after replace: value %d, cost %d, len %d; want 2, 50, 1", v, c.Cost(), c.Len())
	}
	c.Remove("a")
	c.Remove("never-added")
	if _, ok := c.Get("a"); ok || c.Cost() != 0 || c.Len() != 0 {
		t.Errorf("after remove: cost %d, len %d", c.Cost(), c.Len())
	}
}

func TestZeroBoundsStoreNothing(t *testing.T) {
	for name, c := range map[string]*lru.Cache[string, int]{
		"no entries": lru.New[string, int](0, 100), "no cost": lru.New[string, int](10, 0),
		"zero value": new(lru.Cache[string, int]), "nil": nil,
	} {
		if c.Add("a", 1, 0) {
			t.Errorf("%s: Add reported storing", name)
		}
		if _, ok := c.Get("a"); ok || c.Len() != 0 || c.Cost() != 0 {
			t.Errorf("%s: holds an entry", name)
		}
		c.Remove("a")
	}
	// A zero-cost entry counts against the entry bound only.
	c := lru.New[string, int](1, 10)
	if !c.Add("a", 1, 0) || !c.Add("b", 2, 0) {
		t.Fatal("a zero-cost entry was refused")
	}
	if got, want := keys(c, "a", "b"), []string{"b"}; !slices.Equal(got, want) {
		t.Errorf("held %v, want %v", got, want)
	}
}

// TestConcurrentUseKeepsBothBounds hammers one cache from many goroutines
// (run under -race) and checks the bounds and the values afterwards.
func TestConcurrentUseKeepsBothBounds(t *testing.T) {
	const maxEntries, maxCost = 50, 400
	c := lru.New[string, int](maxEntries, maxCost)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Sprintf("k%d", (g*7919+i)%200)
				if v, ok := c.Get(k); ok && fmt.Sprintf("k%d", v) != k {
					t.Errorf("Get(%s) = %d: another key's value", k, v)
				}
				var n int
				_, _ = fmt.Sscanf(k, "k%d", &n)
				c.Add(k, n, int64(1+n%16))
				if i%97 == 0 {
					c.Remove(k)
				}
			}
		}()
	}
	wg.Wait()
	if n, cost := c.Len(), c.Cost(); n > maxEntries || cost > maxCost || n == 0 {
		t.Errorf("after concurrent use: %d entries costing %d; bounds %d and %d", n, cost, maxEntries, maxCost)
	}
	// The recorded cost is the sum of what is held.
	var sum int64
	for i := range 200 {
		if v, ok := c.Get(fmt.Sprintf("k%d", i)); ok {
			sum += int64(1 + v%16)
		}
	}
	if sum != c.Cost() {
		t.Errorf("held entries cost %d, cache says %d", sum, c.Cost())
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := lru.New[string, []byte](1024, 64<<20)
	for i := range 1024 {
		c.Add(fmt.Sprint(i), make([]byte, 64), 64)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c.Get(fmt.Sprint(i % 1024))
	}
}
