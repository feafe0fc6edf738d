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
// microseconds: the server's (summed over its nodes), when their PIDs are
// known, the Redis processes' together, when theirs are, and the load
// tool's own; ByPID has each process's share. On a machine they share, the
// sum bounds the rate.
type CPU struct {
	ServerMicros float64         `json:"server_us_per_op,omitempty"`
	RedisMicros  float64         `json:"redis_us_per_op,omitempty"`
	ToolMicros   float64         `json:"tool_us_per_op"`
	ByPID        map[int]float64 `json:"us_per_op_by_pid,omitempty"`
}

// cpuMeter measures CPU time over a stretch of a run.
type cpuMeter struct {
	server, redis cpuGroup
	tool          time.Duration
}

// cpuGroup is the processes of one figure and their CPU at the start; a
// process that cannot be read at the start leaves the figure out.
type cpuGroup struct {
	pids  []int
	start []time.Duration
	err   error
}

func startGroup(pids []int) cpuGroup {
	g := cpuGroup{pids: pids, start: make([]time.Duration, len(pids))}
	for i, pid := range pids {
		if g.start[i], g.err = ProcessCPU(pid); g.err != nil {
			break
		}
	}
	return g
}

// since returns the group's CPU since the start per process, and false
// when any process could not be read at either end: a partial sum would
// understate the figure.
func (g cpuGroup) since() ([]time.Duration, bool) {
	if len(g.pids) == 0 || g.err != nil {
		return nil, false
	}
	d := make([]time.Duration, len(g.pids))
	for i, pid := range g.pids {
		now, err := ProcessCPU(pid)
		if err != nil {
			return nil, false
		}
		d[i] = now - g.start[i]
	}
	return d, true
}

func startCPU(serverPIDs, redisPIDs []int) *cpuMeter {
	return &cpuMeter{server: startGroup(serverPIDs), redis: startGroup(redisPIDs), tool: selfCPU()}
}

// per returns the CPU spent since the start over ops operations.
func (m *cpuMeter) per(ops int64) CPU {
	if ops <= 0 {
		return CPU{}
	}
	c := CPU{ToolMicros: micros(selfCPU()-m.tool) / float64(ops)}
	for _, g := range []struct {
		group *cpuGroup
		total *float64
	}{{&m.server, &c.ServerMicros}, {&m.redis, &c.RedisMicros}} {
		d, ok := g.group.since()
		if !ok {
			continue
		}
		if c.ByPID == nil {
			c.ByPID = map[int]float64{}
		}
		for i, pid := range g.group.pids {
			us := micros(d[i]) / float64(ops)
			c.ByPID[pid] = us
			*g.total += us
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
