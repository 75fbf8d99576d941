package main

import (
	"math"
	"slices"
)

// storedItem is an item as storage.json has it: the bytes DynamoDB counts
// for each attribute (its name and value).
type storedItem map[string]int

// size is the item's size, as capacity units count it.
func (it storedItem) size() int {
	n := 0
	for _, b := range it {
		n += b
	}
	return n
}

// has tells whether the item holds every attribute.
func (it storedItem) has(attrs []string) bool {
	for _, a := range attrs {
		if _, ok := it[a]; !ok {
			return false
		}
	}
	return true
}

// sum is the size of the attributes the item holds among attrs (each
// once).
func (it storedItem) sum(attrs []string) int {
	n, seen := 0, map[string]bool{}
	for _, a := range attrs {
		if !seen[a] {
			n += it[a]
			seen[a] = true
		}
	}
	return n
}

// billedBytes is what an item stores in a table and its indexes: the item
// and 100 bytes of overhead, and in each index whose keys it holds (an
// index is sparse), an entry of the projected attributes and 100 bytes:
// ALL projects the item, KEYS_ONLY the index's and the table's keys,
// INCLUDE those and the listed attributes.
func billedBytes(it storedItem, tb table) (base, indexes float64) {
	base = float64(it.size() + dynamoItemOverhead)
	for _, ix := range tb.indexes {
		if !it.has(ix.keys) {
			continue
		}
		keys := append(slices.Clone(ix.keys), tb.keys...)
		entry := 0
		switch ix.projection {
		case "ALL":
			entry = it.size()
		case "INCLUDE":
			entry = it.sum(append(keys, ix.include...))
		default: // KEYS_ONLY
			entry = it.sum(keys)
		}
		indexes += float64(entry + dynamoItemOverhead)
	}
	return base, indexes
}

// meanBilledBytes is billedBytes averaged over items (0, 0 for none).
func meanBilledBytes(items []storedItem, tb table) (base, indexes float64) {
	if len(items) == 0 {
		return 0, 0
	}
	for _, it := range items {
		b, i := billedBytes(it, tb)
		base, indexes = base+b, indexes+i
	}
	return base / float64(len(items)), indexes / float64(len(items))
}

// totalBilledBytes is billedBytes summed over items.
func totalBilledBytes(items []storedItem, tb table) (base, indexes float64) {
	b, i := meanBilledBytes(items, tb)
	return b * float64(len(items)), i * float64(len(items))
}

const gib = 1 << 30

// partitions is how many partitions a table takes at least: one per 10 GB
// stored and per 1,000 WCU and 3,000 RCU a second of its load.
func partitions(storedGiB, wcuPerSecond, rcuPerSecond float64) float64 {
	return math.Max(1, math.Max(math.Ceil(storedGiB/dynamoPartitionGiB),
		math.Max(math.Ceil(wcuPerSecond/dynamoPartitionWCU), math.Ceil(rcuPerSecond/dynamoPartitionRCU))))
}
