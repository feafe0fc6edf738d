// Package loadgen drives a running Herald node for measurements: it opens
// many live sessions from loopback source addresses, sends notifications
// through the server API, and reports connection cost, throughput and
// end-to-end latency. It drives a Centrifugo server the same way, for
// comparison (peer_centrifugo.go). It only ever targets loopback
// addresses, and every run is bounded in count and time.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options describe one run.
type Options struct {
	BaseURL   string                            // e.g. http://127.0.0.1:8080 (loopback only)
	SendURL   string                            // node the API calls go to (default BaseURL): another node of the cluster
	APIKey    string                            // server API key
	MintToken func(user string) (string, error) // user token for a session
	Transport string                            // "ws" or "sse"
	Sessions  int                               // live sessions to open, one user each
	Users     int                               // distinct users (default Sessions)
	ServerPID int                               // when set, its RSS growth (idle) or CPU per operation is reported
	NodePIDs  []int                             // the cluster's other nodes: their CPU is added to the server's
	RedisPIDs []int                             // when set, the Redis processes' summed CPU per operation is reported
	Sources   int                               // 127.0.0.x source addresses to spread over (default 64: 15,000 sessions stay under HERALD_MAX_CONNS_PER_IP)
	Timeout   time.Duration                     // hard bound on the whole run (default 5m)
	Progress  func(format string, args ...any)  // progress lines; nil for none
	Peer      string                            // server driven: "" for Herald, or PeerCentrifugo
}

func (o *Options) defaults() error {
	if o.SendURL == "" {
		o.SendURL = o.BaseURL
	}
	for _, raw := range []string{o.BaseURL, o.SendURL} {
		if err := loopbackOnly(raw); err != nil {
			return err
		}
	}
	if o.Transport == "" {
		o.Transport = "ws"
	}
	if o.Transport != "ws" && o.Transport != "sse" {
		return fmt.Errorf("loadgen: transport %q: want ws or sse", o.Transport)
	}
	if err := o.checkPeer(); err != nil {
		return err
	}
	if o.Users <= 0 {
		o.Users = o.Sessions
	}
	if o.Sources <= 0 {
		o.Sources = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	return nil
}

// loopbackOnly refuses a URL whose host is not on 127.0.0.0/8.
func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("loadgen: url: %w", err)
	}
	host := u.Hostname()
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("loadgen: resolve %s: %v", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("loadgen: %s is not a loopback address; load is only sent to 127.0.0.0/8", host)
		}
	}
	return nil
}

// dialerFor spreads outgoing connections over 127.0.0.2.. so one machine
// can open more connections than one source address has ephemeral ports.
func dialerFor(i, sources int) *net.Dialer {
	ip := net.IPv4(127, 0, byte(i%sources/250), byte(2+i%sources%250))
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
}

// serverPIDs are the processes whose CPU is the server's.
func (o *Options) serverPIDs() []int {
	var pids []int
	if o.ServerPID > 0 {
		pids = append(pids, o.ServerPID)
	}
	return append(pids, o.NodePIDs...)
}

func userName(i int) string { return "lg" + strconv.Itoa(i) }

// userNames are the first n users' names.
func userNames(n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = userName(i)
	}
	return users
}

// RSS returns the resident set size of pid in bytes (Linux).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, errors.New("VmRSS not found")
}

// counter is a tiny atomic counter with a name for progress lines.
type counter struct{ n atomic.Int64 }

func (c *counter) add(d int64) int64 { return c.n.Add(d) }
func (c *counter) get() int64        { return c.n.Load() }

// drive runs do(i) for each i in [0, n) on workers goroutines, at rate per
// second (0: as fast as they go), calling progress about once a second,
// until ctx ends. Workers take the next i from a counter and, when paced,
// wait for its moment themselves: a channel hand-off from a dispatcher
// would cost the tool a goroutine wake-up per operation.
func drive(ctx context.Context, n, workers int, rate float64, progress func(), do func(i int)) {
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	start := time.Now()
	var next atomic.Int64
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				progress()
			case <-stop:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if wait := time.Until(start.Add(time.Duration(i) * interval)); interval > 0 && wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return
					}
				}
				do(i)
			}
		}()
	}
	wg.Wait()
	close(stop)
}
