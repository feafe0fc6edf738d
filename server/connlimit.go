package server

import (
	"bufio"
	"hash/maphash"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connLimiter caps the concurrent connections of each client address
// (HERALD_MAX_CONNS_PER_IP). A direct client is counted per TCP
// connection, at accept; a client behind a trusted proxy
// (HERALD_TRUSTED_PROXIES) is counted per request or live stream, by the
// forwarded address the proxy gives, since the proxy's own connections
// carry many clients. Nobody else's forwarded address is believed.
type connLimiter struct {
	max     int
	trusted []netip.Prefix
	seed    maphash.Seed
	shards  [32]connShard
	refused prometheus.Counter
}

type connShard struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

// newConnLimiter returns a limiter of max connections per address (0: no
// cap) that believes the forwarded addresses of the trusted proxies, each
// an IP address or a CIDR prefix.
func newConnLimiter(max int, trusted []string, reg prometheus.Registerer) (*connLimiter, error) {
	l := &connLimiter{max: max, seed: maphash.MakeSeed()}
	for _, t := range trusted {
		p, err := parsePrefix(t)
		if err != nil {
			return nil, err
		}
		l.trusted = append(l.trusted, p)
	}
	for i := range l.shards {
		l.shards[i].n = make(map[netip.Addr]int)
	}
	l.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_connections_refused_total",
		Help: "Connections and requests refused because their client address had HERALD_MAX_CONNS_PER_IP open.",
	})
	if reg != nil {
		reg.MustRegister(l.refused)
	}
	return l, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (l *connLimiter) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l *connLimiter) shard(a netip.Addr) *connShard {
	b := a.As16()
	return &l.shards[maphash.Bytes(l.seed, b[:])%uint64(len(l.shards))]
}

// acquire takes one of a's slots; false when all are in use.
func (l *connLimiter) acquire(a netip.Addr) bool {
	sh := l.shard(a)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.n[a] >= l.max {
		return false
	}
	sh.n[a]++
	return true
}

func (l *connLimiter) release(a netip.Addr) {
	sh := l.shard(a)
	sh.mu.Lock()
	if sh.n[a] <= 1 {
		delete(sh.n, a)
	} else {
		sh.n[a]--
	}
	sh.mu.Unlock()
}

func addrOf(remote net.Addr) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// clientAddr is the address a request comes from: the peer's, or, when
// the peer is a trusted proxy, the nearest untrusted one in
// X-Forwarded-For (the proxy appends the address it saw; what the client
// wrote further left is not believed). forwarded says which.
func (l *connLimiter) clientAddr(r *http.Request) (a netip.Addr, forwarded bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	peer := ap.Addr().Unmap()
	if !l.isTrusted(peer) {
		return peer, false
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return peer, false // a malformed hop: believe nothing past it
			}
			if hop = hop.Unmap(); !l.isTrusted(hop) {
				return hop, true
			}
		}
	}
	return peer, false
}

// Listener counts each accepted connection against its peer's address;
// one over the cap is answered 429 and closed. Trusted proxies are not
// counted here: their clients are, per request, by Middleware.
func (l *connLimiter) Listener(ln net.Listener) net.Listener {
	if l.max <= 0 {
		return ln
	}
	return &limitedListener{Listener: ln, l: l}
}

type limitedListener struct {
	net.Listener
	l *connLimiter
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a, ok := addrOf(c.RemoteAddr())
		if !ok || ll.l.isTrusted(a) {
			return c, nil
		}
		if !ll.l.acquire(a) {
			ll.l.refused.Inc()
			go refuseConn(c)
			continue
		}
		return &limitedConn{Conn: c, release: func() { ll.l.release(a) }}, nil
	}
}

// refusedBody is errTooManyConns as writeError encodes it, written
// before any request is read.
var refusedBody = `{"error":{"code":"` + errTooManyConns.Code + `","message":"` + errTooManyConns.Message + `"}}` + "\n"

// refuseConn answers a connection over the cap with a 429 and closes it,
// without reading its request.
func refuseConn(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.Write([]byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(refusedBody)) + "\r\n\r\n" + refusedBody))
	_ = c.Close()
}

// limitedConn gives its slot back when closed, however it is closed
// (by net/http, or by a live transport after a hijack). It passes the
// socket through for the writers that write to it directly.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}

func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Middleware counts the requests and live streams of clients behind
// trusted proxies against their forwarded address.
func (l *connLimiter) Middleware(next http.Handler) http.Handler {
	if l.max <= 0 || len(l.trusted) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, forwarded := l.clientAddr(r)
		if !forwarded {
			next.ServeHTTP(w, r)
			return
		}
		if !l.acquire(a) {
			l.refused.Inc()
			w.Header().Set("Retry-After", "5")
			writeError(w, errTooManyConns)
			return
		}
		slot := &slotWriter{ResponseWriter: w}
		slot.release = sync.OnceFunc(func() { l.release(a) })
		next.ServeHTTP(slot, r)
		if !slot.hijacked {
			slot.release()
		}
	})
}

// slotWriter keeps a forwarded client's slot for as long as a hijacked
// connection (a live stream) stays open.
type slotWriter struct {
	http.ResponseWriter
	release  func()
	hijacked bool
}

func (w *slotWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	return &limitedConn{Conn: c, release: w.release}, brw, nil
}

func (w *slotWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *slotWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
