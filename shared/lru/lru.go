// Package lru is a least-recently-used cache bounded both by its number of
// entries and by the total cost (bytes) its entries declare: the memory a
// warm function instance may spend on what it has already read. It is safe
// for concurrent use.
package lru

import "sync"

// Cache holds at most MaxEntries entries whose costs add up to at most
// MaxCost; adding past either bound evicts the least recently used entries
// first. The zero value holds nothing.
type Cache[K comparable, V any] struct {
	maxEntries int
	maxCost    int64

	mu    sync.Mutex
	items map[K]*entry[K, V]
	// root is the sentinel of a ring of entries, most recently used first.
	root entry[K, V]
	cost int64
}

type entry[K comparable, V any] struct {
	key        K
	value      V
	cost       int64
	prev, next *entry[K, V]
}

// New returns a cache of at most maxEntries entries and maxCost total cost.
// A cache with either bound at zero or below stores nothing.
func New[K comparable, V any](maxEntries int, maxCost int64) *Cache[K, V] {
	c := &Cache[K, V]{maxEntries: maxEntries, maxCost: maxCost, items: map[K]*entry[K, V]{}}
	c.root.next, c.root.prev = &c.root, &c.root
	return c
}

// Get returns the value stored under key and marks it most recently used.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	if c == nil || c.items == nil {
		var zero V
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.unlink(e)
	c.pushFront(e)
	return e.value, true
}

// Add stores value under key with its cost (at least the bytes it holds),
// replacing what key held, as the most recently used entry, and evicts the
// least recently used entries until both bounds hold. It reports false, and
// stores nothing, when cost alone is over the cost bound or negative, or
// the cache stores nothing; key then holds nothing.
func (c *Cache[K, V]) Add(key K, value V, cost int64) bool {
	if c == nil || c.items == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.items[key]; ok {
		c.drop(old)
	}
	if cost < 0 || cost > c.maxCost || c.maxEntries <= 0 || c.maxCost <= 0 {
		return false
	}
	e := &entry[K, V]{key: key, value: value, cost: cost}
	c.items[key] = e
	c.pushFront(e)
	c.cost += cost
	for len(c.items) > c.maxEntries || c.cost > c.maxCost {
		c.drop(c.root.prev)
	}
	return true
}

// Remove drops key's entry, if any.
func (c *Cache[K, V]) Remove(key K) {
	if c == nil || c.items == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.drop(e)
	}
}

// Len returns the number of entries.
func (c *Cache[K, V]) Len() int {
	if c == nil || c.items == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// Cost returns the total cost of the entries.
func (c *Cache[K, V]) Cost() int64 {
	if c == nil || c.items == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cost
}

func (c *Cache[K, V]) drop(e *entry[K, V]) {
	c.unlink(e)
	delete(c.items, e.key)
	c.cost -= e.cost
}

func (c *Cache[K, V]) unlink(e *entry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *Cache[K, V]) pushFront(e *entry[K, V]) {
	e.prev, e.next = &c.root, c.root.next
	c.root.next.prev = e
	c.root.next = e
}
