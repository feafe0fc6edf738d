package push

import (
	"strings"
	"testing"
)

func TestTopic(t *testing.T) {
	if got := Topic("c1_ab-Z"); got != "c1_ab-Z" {
		t.Errorf("plain tag changed: %q", got)
	}
	for _, tag := range []string{"conversation:c1", strings.Repeat("a", 33), "ünï"} {
		got := Topic(tag)
		if len(got) != 32 || strings.ContainsAny(got, "+/=:") || got != Topic(tag) {
			t.Errorf("Topic(%q) = %q", tag, got)
		}
	}
	if Topic("a:b") == Topic("a:c") {
		t.Error("different tags share a topic")
	}
}
