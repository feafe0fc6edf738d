package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name under which StartSentinel's sentinels monitor
// the primary.
const SentinelMaster = "herald"

// SentinelDownAfter is how long the sentinels wait for an unreachable
// primary before they fail over. Short, so failover tests stay fast.
const SentinelDownAfter = 1000 * time.Millisecond

// Sentinel is a primary, its replica and three sentinels monitoring them,
// owned by one test.
type Sentinel struct {
	t         testing.TB
	servers   []*Server // the primary and the replica, in start order
	sentinels []*Server
	opts      sentinelOptions
}

// SentinelOption configures StartSentinel.
type SentinelOption func(*sentinelOptions)

type sentinelOptions struct {
	dataPassword, sentinelPassword string
}

// WithPasswords makes the primary and the replica require data (requirepass,
// with masterauth for the replica and auth-pass for the sentinels) and the
// sentinels require sentinel (requirepass in sentinel mode, sentinel-pass
// between them). Empty leaves that side open.
func WithPasswords(data, sentinel string) SentinelOption {
	return func(o *sentinelOptions) { o.dataPassword, o.sentinelPassword = data, sentinel }
}

// StartSentinel runs a primary, a replica of it and three redis-sentinels
// on free loopback ports, waits until the replica is in sync and every
// sentinel names the primary and knows the two other sentinels and the
// replica, and stops them all when the test ends. It skips the test when
// redis-server or redis-sentinel is missing, unless HERALD_REQUIRE_REDIS=1.
func StartSentinel(t testing.TB, opts ...SentinelOption) *Sentinel {
	t.Helper()
	bin := lookPath(t, "redis-server")
	sbin := lookPath(t, "redis-sentinel")
	s := &Sentinel{t: t}
	for _, o := range opts {
		o(&s.opts)
	}
	dataPass, sentPass := s.opts.dataPassword, s.opts.sentinelPassword
	var dataAuth []Option
	if dataPass != "" {
		dataAuth = []Option{func(c *config) { c.password = dataPass }, withArgs("--requirepass", dataPass, "--masterauth", dataPass)}
	}
	primary := start(t, bin, dataAuth...)
	replica := start(t, bin, append(dataAuth, withArgs("--replicaof", "127.0.0.1", strconv.Itoa(primary.port)))...)
	s.servers = []*Server{primary, replica}
	for range 3 {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(conf, nil, 0o644); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		args := []string{
			"--sentinel", "monitor", SentinelMaster, "127.0.0.1", strconv.Itoa(primary.port), "2",
			"--sentinel", "down-after-milliseconds", SentinelMaster, strconv.Itoa(int(SentinelDownAfter.Milliseconds())),
			"--sentinel", "failover-timeout", SentinelMaster, "10000",
		}
		if dataPass != "" {
			args = append(args, "--sentinel", "auth-pass", SentinelMaster, dataPass)
		}
		if sentPass != "" {
			args = append(args, "--requirepass", sentPass, "--sentinel", "sentinel-pass", sentPass)
		}
		s.sentinels = append(s.sentinels, start(t, sbin, WithDir(dir), func(c *config) { c.sentinel, c.password = conf, sentPass }, withArgs(args...)))
	}
	s.waitAgreed(primary, "agree on the primary")
	return s
}

// Addrs are the sentinels' host:port.
func (s *Sentinel) Addrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, n := range s.sentinels {
		addrs[i] = n.Addr()
	}
	return addrs
}

// MasterName is the monitored primary's name.
func (s *Sentinel) MasterName() string { return SentinelMaster }

// Servers are the two data servers, primary and replica in either role.
func (s *Sentinel) Servers() []*Server { return s.servers }

// Client returns a new failover client of the set, closed when the test
// ends.
func (s *Sentinel) Client() *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: SentinelMaster, SentinelAddrs: s.Addrs(),
		Password: s.opts.dataPassword, SentinelPassword: s.opts.sentinelPassword,
	})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Primary is the data server the first answering sentinel names primary.
func (s *Sentinel) Primary() *Server {
	s.t.Helper()
	for _, sn := range s.sentinels {
		if !sn.running() {
			continue
		}
		if addr, err := s.masterAddr(sn); err == nil {
			return s.byAddr(addr)
		}
	}
	s.t.Fatal("redistest: no sentinel names a primary")
	return nil
}

// KillPrimary SIGKILLs the current primary and returns it.
func (s *Sentinel) KillPrimary() *Server {
	s.t.Helper()
	p := s.Primary()
	p.Kill()
	return p
}

// WaitFailover waits until every sentinel names another primary than
// killed and that server answers as a primary.
func (s *Sentinel) WaitFailover(killed *Server) {
	s.t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		why := s.failedOver(killed)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: sentinels did not fail over from %s within %s: %s", killed.Addr(), clusterTimeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Sentinel) failedOver(killed *Server) string {
	var addr string
	for _, sn := range s.sentinels {
		a, err := s.masterAddr(sn)
		if err != nil {
			return err.Error()
		}
		if a == killed.Addr() || (addr != "" && a != addr) {
			return "sentinels still name " + a
		}
		addr = a
	}
	return s.role(addr, "master")
}

// waitAgreed waits until the replica is in sync and every sentinel names
// primary and knows the other two sentinels and the replica.
func (s *Sentinel) waitAgreed(primary *Server, what string) {
	s.t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		why := s.disagreement(primary)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: sentinels did not %s within %s: %s", what, clusterTimeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Sentinel) disagreement(primary *Server) string {
	for _, srv := range s.servers {
		if srv != primary {
			if why := s.role(srv.Addr(), "slave"); why != "" {
				return why
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, sn := range s.sentinels {
		addr, err := s.masterAddr(sn)
		if err != nil {
			return err.Error()
		}
		if addr != primary.Addr() {
			return sn.Addr() + " names " + addr
		}
		c := s.sentinelClient(sn)
		m, err := c.Master(ctx, SentinelMaster).Result()
		_ = c.Close()
		if err != nil {
			return sn.Addr() + ": " + err.Error()
		}
		if m["num-other-sentinels"] != "2" || m["num-slaves"] != "1" {
			return fmt.Sprintf("%s knows %s other sentinels and %s replicas", sn.Addr(), m["num-other-sentinels"], m["num-slaves"])
		}
	}
	return ""
}

// role reports why the server at addr is not in the given role ("master",
// or "slave" with its link up), or "".
func (s *Sentinel) role(addr, want string) string {
	c := redis.NewClient(&redis.Options{Addr: addr, Password: s.opts.dataPassword, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return addr + ": " + err.Error()
	}
	f := infoFields(info)
	if f["role"] != want {
		return addr + " is " + f["role"]
	}
	if want == "slave" && f["master_link_status"] != "up" {
		return addr + " replica link " + f["master_link_status"]
	}
	return ""
}

func (s *Sentinel) sentinelClient(sn *Server) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), Password: s.opts.sentinelPassword, MaxRetries: -1, DialTimeout: time.Second})
}

func (s *Sentinel) masterAddr(sn *Server) (string, error) {
	c := s.sentinelClient(sn)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	hp, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", sn.Addr(), err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel %s: master addr %v", sn.Addr(), hp)
	}
	return hp[0] + ":" + hp[1], nil
}

func (s *Sentinel) byAddr(addr string) *Server {
	for _, n := range s.servers {
		if n.Addr() == addr {
			return n
		}
	}
	s.t.Fatalf("redistest: %s is not a server of this sentinel set", addr)
	return nil
}

// FlushAll empties the primary, so tests can share one set.
func (s *Sentinel) FlushAll() {
	s.t.Helper()
	p := s.Primary()
	cl := p.Client()
	defer cl.Close()
	if err := cl.FlushAll(context.Background()).Err(); err != nil {
		s.t.Fatalf("redistest: flush %s: %v", p.Addr(), err)
	}
}

// KillServers SIGKILLs the primary and the replica; the sentinels stay.
func (s *Sentinel) KillServers() {
	for _, n := range s.servers {
		n.Kill()
	}
}

// RestartServers starts the data servers again and waits until the
// sentinels agree on a primary again.
func (s *Sentinel) RestartServers() {
	s.t.Helper()
	for _, n := range s.servers {
		if !n.running() {
			n.Restart()
		}
	}
	deadline := time.Now().Add(clusterTimeout)
	for {
		var why string
		for _, sn := range s.sentinels {
			addr, err := s.masterAddr(sn)
			if err != nil {
				why = err.Error()
				break
			}
			if why = s.role(addr, "master"); why != "" {
				break
			}
		}
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: no primary after the restart within %s: %s", clusterTimeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
