package redisslot

import "testing"

func TestOf(t *testing.T) {
	for key, want := range map[string]int{
		// Values from CLUSTER KEYSLOT.
		"foo":                  12182,
		"123456789":            0x31c3,
		"{user1000}.following": 3443,
		"user1000":             3443,
		"{}x":                  Of("{}x"),
		"":                     0,
	} {
		if got := Of(key); got != want {
			t.Errorf("Of(%q) = %d, want %d", key, got, want)
		}
	}
	if Of("{}x") == Of("x") {
		t.Error("an empty hash tag is not a tag: {}x hashes as a whole")
	}
	if Of("herald:{u}:c") != Of("u") {
		t.Error("a key with a hash tag is in its tag's slot")
	}
}
