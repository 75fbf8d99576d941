package main

import "testing"

func TestStorageCountsItemAndIndexOverheadByProjection(t *testing.T) {
	item := storedItem{"pk": 10, "sk": 20, "gsiPk": 30, "gsiSk": 15, "a": 100, "b": 200}
	for _, tc := range []struct {
		name        string
		ix          index
		wantIndexed float64
	}{
		{"ALL projects the item", index{"All", []string{"gsiPk", "gsiSk"}, "ALL", nil}, 375 + 100},
		{"KEYS_ONLY the index's and the table's keys", index{"Keys", []string{"gsiPk", "gsiSk"}, "KEYS_ONLY", nil}, 30 + 15 + 10 + 20 + 100},
		{"INCLUDE those and its attributes", index{"Incl", []string{"gsiPk", "gsiSk"}, "INCLUDE", []string{"b", "missing"}}, 30 + 15 + 10 + 20 + 200 + 100},
		{"a sparse index holds no entry for an item without its keys", index{"Sparse", []string{"other"}, "ALL", nil}, 0},
	} {
		tb := table{id: "T", keys: []string{"pk", "sk"}, indexes: []index{tc.ix}}
		base, indexed := billedBytes(item, tb)
		if base != 375+100 || indexed != tc.wantIndexed {
			t.Errorf("%s: base %g, indexed %g; want 475, %g", tc.name, base, indexed, tc.wantIndexed)
		}
	}
	// A key the index shares with the table counts once.
	tb := table{keys: []string{"pk", "sk"}, indexes: []index{{"Shared", []string{"gsiPk", "sk"}, "KEYS_ONLY", nil}}}
	if _, indexed := billedBytes(item, tb); indexed != 30+20+10+100 {
		t.Errorf("shared key: indexed %g, want 160", indexed)
	}
	items := []storedItem{item, {"pk": 10, "sk": 10}}
	if base, _ := totalBilledBytes(items, table{}); base != 475+120 {
		t.Errorf("total base %g, want 595", base)
	}
}

func TestPartitionsBySizeAndThroughput(t *testing.T) {
	for _, tc := range []struct{ gib, wcu, rcu, want float64 }{
		{0, 0, 0, 1},
		{88.1, 133, 0, 9},
		{8811, 13333, 0, 882},
		{5, 4500, 0, 5},
		{5, 0, 9001, 4},
	} {
		if got := partitions(tc.gib, tc.wcu, tc.rcu); got != tc.want {
			t.Errorf("partitions(%g GiB, %g WCU, %g RCU) = %g, want %g", tc.gib, tc.wcu, tc.rcu, got, tc.want)
		}
	}
}
