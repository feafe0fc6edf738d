package loadgen

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU is the CPU time spent per operation of a run (a delivered
// notification, an accepted webhook, a delivered fan-out frame), in
// microseconds: the server's, when its PID is known, the Redis processes'
// together, when theirs are, and the load tool's own. On a machine they
// share, the sum bounds the rate.
type CPU struct {
	ServerMicros float64 `json:"server_us_per_op,omitempty"`
	RedisMicros  float64 `json:"redis_us_per_op,omitempty"`
	ToolMicros   float64 `json:"tool_us_per_op"`
}

// cpuMeter measures CPU time over a stretch of a run.
type cpuMeter struct {
	pid                 int
	redisPIDs           []int
	server, redis, tool time.Duration
	redisErr            error // a Redis process could not be read at the start
}

func startCPU(pid int, redisPIDs []int) *cpuMeter {
	m := &cpuMeter{pid: pid, redisPIDs: redisPIDs, tool: selfCPU()}
	if pid > 0 {
		m.server, _ = ProcessCPU(pid)
	}
	if len(redisPIDs) > 0 {
		m.redis, m.redisErr = sumCPU(redisPIDs, ProcessCPU)
	}
	return m
}

// per returns the CPU spent since the start over ops operations. The
// Redis figure is left out when any of the processes could not be read at
// either end: a partial sum would understate it.
func (m *cpuMeter) per(ops int64) CPU {
	if ops <= 0 {
		return CPU{}
	}
	var c CPU
	c.ToolMicros = micros(selfCPU()-m.tool) / float64(ops)
	if m.pid > 0 {
		if now, err := ProcessCPU(m.pid); err == nil {
			c.ServerMicros = micros(now-m.server) / float64(ops)
		}
	}
	if len(m.redisPIDs) > 0 && m.redisErr == nil {
		if now, err := sumCPU(m.redisPIDs, ProcessCPU); err == nil {
			c.RedisMicros = micros(now-m.redis) / float64(ops)
		}
	}
	return c
}

// sumCPU adds up the CPU time of pids, read by cpuOf; one that cannot be
// read fails the sum.
func sumCPU(pids []int, cpuOf func(pid int) (time.Duration, error)) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		d, err := cpuOf(pid)
		if err != nil {
			return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
		}
		total += d
	}
	return total, nil
}

// ParsePIDs reads a comma-separated list of process ids ("4242,4243");
// blanks around commas are allowed, empty items, duplicates and ids below
// 1 are not.
func ParsePIDs(s string) ([]int, error) {
	var pids []int
	seen := map[int]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		pid, err := strconv.Atoi(item)
		if err != nil || pid < 1 {
			return nil, fmt.Errorf("pid %q: want a positive integer", item)
		}
		if seen[pid] {
			return nil, fmt.Errorf("pid %d given twice", pid)
		}
		seen[pid] = true
		pids = append(pids, pid)
	}
	return pids, nil
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessCPU returns the user and system CPU time pid has used (Linux).
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime, fields 14 and 15 of /proc/PID/stat,
// counted after the command name (which may hold spaces and parentheses).
// /proc reports them in USER_HZ, 100 per second on Linux.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}
