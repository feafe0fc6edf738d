package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRefusesNonLoopbackTargets(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1:8080", "http://192.168.1.10", "http://8.8.8.8"} {
		_, err := Idle(context.Background(), Options{BaseURL: u, Sessions: 1})
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestParseStamp(t *testing.T) {
	frame := []byte(`{"type":"notification","notification":{"data":{"lgt":1700000000123456789}}}`)
	if got := parseStamp(frame); got != 1700000000123456789 {
		t.Fatalf("stamp %d", got)
	}
	if parseStamp([]byte(`{}`)) != 0 {
		t.Fatal("stamp from nothing")
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := summarize(d)
	if l.P50 != 50 || l.P99 != 99 || l.Max != 100 {
		t.Fatalf("%+v", l)
	}
}

func TestRefusesNonLoopbackSendTarget(t *testing.T) {
	_, err := Unicast(context.Background(), UnicastOptions{Options: Options{BaseURL: "http://127.0.0.1:1", SendURL: "http://10.0.0.1:8080", Sessions: 1}, Messages: 1})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("send target 10.0.0.1: %v", err)
	}
}
