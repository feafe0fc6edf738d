package loadgen

import (
	"context"
	"errors"
	"os"
	"slices"
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

func TestParseStatCPU(t *testing.T) {
	// utime 250 and stime 50 ticks: 3 s. The command name has a space and
	// a parenthesis, as a process may name itself.
	stat := "4242 (herald (x) serve) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 500 18446744073709551615"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3*time.Second {
		t.Fatalf("parse = %v, %v; want 3s", got, err)
	}
	if _, err := parseStatCPU("4242 (herald) S 1"); err == nil {
		t.Fatal("short stat accepted")
	}
}

func TestCPUMeterCountsThisProcess(t *testing.T) {
	m := startCPU([]int{os.Getpid()}, nil)
	burnCPU(t, 300*time.Millisecond)
	c := m.per(1000)
	// 300 ms of spinning over 1000 operations is about 300 µs each; /proc
	// counts in 10 ms ticks, so only a loose lower bound is safe.
	if c.ToolMicros < 100 || c.ServerMicros < 100 {
		t.Fatalf("per op %+v, want both near 300 µs", c)
	}
	if m.per(0).ByPID != nil || m.per(0).ServerMicros != 0 {
		t.Fatal("CPU per zero operations is not zero")
	}
}

func TestParsePIDs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "4242", want: []int{4242}},
		{in: "1,2,3", want: []int{1, 2, 3}},
		{in: " 7 , 8 ", want: []int{7, 8}},
		{in: "", err: true},
		{in: "1,,2", err: true},
		{in: "1,x", err: true},
		{in: "0", err: true},
		{in: "-3", err: true},
		{in: "5,5", err: true},
	} {
		got, err := ParsePIDs(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("ParsePIDs(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestSumCPUAddsEveryProcessAndFailsOnAMissingOne(t *testing.T) {
	cpuOf := func(pid int) (time.Duration, error) {
		if pid == 99 {
			return 0, errors.New("no such process")
		}
		return time.Duration(pid) * time.Second, nil
	}
	if got, err := sumCPU([]int{1, 2, 4}, cpuOf); err != nil || got != 7*time.Second {
		t.Fatalf("sum = %v, %v; want 7s", got, err)
	}
	if _, err := sumCPU([]int{1, 99}, cpuOf); err == nil {
		t.Fatal("a process that cannot be read was left out of the sum silently")
	}
}

func TestCPUMeterCountsRedisProcesses(t *testing.T) {
	// This process stands in for a Redis: its CPU lands in the Redis figure.
	m := startCPU(nil, []int{os.Getpid()})
	burnCPU(t, 300*time.Millisecond)
	c := m.per(1000)
	if c.RedisMicros < 100 || c.ServerMicros != 0 {
		t.Fatalf("per op %+v, want Redis near 300 µs and no server figure", c)
	}
	if len(c.ByPID) != 1 || c.ByPID[os.Getpid()] != c.RedisMicros {
		t.Fatalf("by pid %v, want this process's share, the whole Redis figure", c.ByPID)
	}
	// A process that cannot be read leaves the Redis figure out.
	gone := startCPU(nil, []int{os.Getpid(), 1 << 30})
	if c := gone.per(1000); c.RedisMicros != 0 {
		t.Fatalf("per op %+v with an unreadable Redis pid, want no Redis figure", c)
	}
}

// burnCPU spins until this process has used d more CPU time: on a busy
// machine that takes longer than d of wall time.
func burnCPU(t *testing.T, d time.Duration) {
	t.Helper()
	start, deadline := selfCPU(), time.Now().Add(30*time.Second)
	for x := 0; selfCPU()-start < d; x++ {
		if time.Now().After(deadline) {
			t.Fatalf("this process got less than %v of CPU in 30 s", d)
		}
		_ = x * x
	}
}
