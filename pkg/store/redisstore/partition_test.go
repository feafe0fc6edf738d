package redisstore

import (
	"slices"
	"testing"

	"github.com/heraldhq/herald/pkg/redisslot"
)

// TestPartitionTagsSpreadOverSlots: the first N partition tags split the
// slot space into nearly equal arcs, whatever N, and a tag does not depend
// on N.
func TestPartitionTagsSpreadOverSlots(t *testing.T) {
	all := partitionTags("webhooks", MaxPartitions)
	if all[0] != "webhooks" {
		t.Fatalf("partition 0 tag %q, want the plain name (one partition = the old keys)", all[0])
	}
	for _, n := range []int{2, 3, 4, 8, 16, 100, 256} {
		tags := partitionTags("webhooks", n)
		if !slices.Equal(tags, all[:n]) {
			t.Fatalf("the tags of %d partitions differ from the first %d of %d", n, n, MaxPartitions)
		}
		slots := make([]int, n)
		for i, tag := range tags {
			slots[i] = redisslot.Of("{" + tag + "}:q")
		}
		slices.Sort(slots)
		// The largest arc between neighbours: at most twice the even
		// share (van der Corput), plus one 1/256th for where in its
		// range each tag fell.
		widest := slots[0] + redisslot.Count - slots[n-1]
		for i := 1; i < n; i++ {
			widest = max(widest, slots[i]-slots[i-1])
		}
		if limit := 2*redisslot.Count/n + redisslot.Count/MaxPartitions; widest > limit {
			t.Errorf("%d partitions: widest gap %d slots, want at most %d", n, widest, limit)
		}
	}
}

func TestPartitionOfIsStableAndSpread(t *testing.T) {
	counts := make([]int, 8)
	for i := range 8000 {
		counts[partitionOf("talkjs:"+string(rune('a'+i%26))+string(rune(i)), 8)]++
	}
	for p, c := range counts {
		if c < 700 || c > 1300 {
			t.Errorf("partition %d got %d of 8000 keys", p, c)
		}
	}
	if partitionOf("k", 8) != partitionOf("k", 8) || partitionOf("k", 1) != 0 {
		t.Fatal("partitionOf is not a function of key and count")
	}
}
