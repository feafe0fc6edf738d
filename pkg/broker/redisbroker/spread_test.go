package redisbroker

import (
	"strconv"
	"testing"

	"github.com/heraldhq/herald/pkg/redisslot"
)

// TestFanoutRecipientsSpreadOverThreePrimaries checks the premise of a
// fan-out's cost on a Cluster: the recipients' channels (and the keys
// beside them) land on every primary about equally, so no one primary
// does most of a fan-out's work. The slot ranges are those `redis-cli
// --cluster create` gives three primaries; the user ids are the load
// tool's and a service's typical ones.
func TestFanoutRecipientsSpreadOverThreePrimaries(t *testing.T) {
	ranges := [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}
	primaryOf := func(slot int) int {
		for i, r := range ranges {
			if r[0] <= slot && slot <= r[1] {
				return i
			}
		}
		t.Fatalf("slot %d outside every range", slot)
		return -1
	}
	keys := keyspace{prefix: DefaultPrefix}
	const users = 10000
	for _, name := range []func(i int) string{
		func(i int) string { return "lg" + strconv.Itoa(i) },
		func(i int) string { return "user-" + strconv.Itoa(100000+i) },
	} {
		counts := make([]int, len(ranges))
		for i := range users {
			u := name(i)
			slot := redisslot.Of(keys.channel(u))
			if slot != redisslot.Of(keys.stream(u)) || slot != redisslot.Of(keys.meta(u)) {
				t.Fatalf("%s: channel and keys in different slots", u)
			}
			counts[primaryOf(slot)]++
		}
		mean := float64(users) / float64(len(ranges))
		for i, n := range counts {
			if dev := (float64(n) - mean) / mean; dev > 0.15 || dev < -0.15 {
				t.Errorf("%s…: primary %d holds %d of %d recipients (%+.1f %% from the mean)", name(0), i, n, users, 100*dev)
			}
		}
		t.Logf("%s…: recipients per primary %v", name(0), counts)
	}
}
