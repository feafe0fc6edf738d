package redisstore

import (
	"math/bits"
	"strconv"

	"github.com/heraldhq/herald/pkg/redisslot"
)

// A hot key (the webhook queue, the pending pushes) is spread over
// partitions, each under its own hash tag, so that on a Redis Cluster
// their writes land on different primaries instead of all on one slot.
//
// Partition 0's tag is the plain name, so one partition is exactly the
// single key set of earlier versions. Partition i's tag is chosen so its
// slot lies 1/256th of the slot space apart from the others: at offset
// bitrev8(i)·64 from partition 0's slot (the van der Corput order), so
// the first N tags split the slot space evenly for N a power of two and
// nearly so for any other N, and a partition's tag never depends on how
// many partitions there are: raising or lowering the count keeps the
// keys of the partitions both counts share.

// MaxPartitions bounds the partitions of one key set.
const MaxPartitions = 256

// partitionTags returns the hash tags of the first n partitions of name.
func partitionTags(name string, n int) []string {
	n = min(max(n, 1), MaxPartitions)
	tags := make([]string, n)
	tags[0] = name
	base := redisslot.Of("{" + name + "}")
	const width = redisslot.Count / MaxPartitions
	for i := 1; i < n; i++ {
		lo := (base + int(bits.Reverse8(uint8(i)))*width) % redisslot.Count
		prefix := name + ":" + strconv.Itoa(i) + ":"
		for j := 0; ; j++ {
			tag := prefix + strconv.Itoa(j)
			if s := redisslot.Of(tag); (s-lo+redisslot.Count)%redisslot.Count < width {
				tags[i] = tag
				break
			}
		}
	}
	return tags
}

// partitionOf maps key to one of n partitions (FNV-1a), the same on
// every node.
func partitionOf(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}
