// Package safedial keeps push traffic from reaching the inside of the
// network (server-side request forgery through a crafted Web Push
// subscription or webhook URL). Its dialer checks the address it is about to
// connect to, after DNS resolution, so a name that resolves to a public
// address when registered and to 127.0.0.1 when used (DNS rebinding) is still
// refused. Loopback, private (RFC 1918, fc00::/7), link-local, unspecified,
// multicast, CGNAT (100.64.0.0/10) and other non-routable addresses are
// forbidden unless an allow entry names the host or covers the address.
package safedial

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrForbidden is wrapped by every refusal, at dial time or by CheckEndpoint.
var ErrForbidden = errors.New("safedial: forbidden address")

var extraForbidden = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT, RFC 6598
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"), // discard-only
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Forbidden reports whether ip is an address push traffic must not reach
// without an allow entry.
func Forbidden(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is6() && nat64.Contains(ip) {
		// The well-known NAT64 prefix embeds an IPv4 address in its last 32 bits.
		b := ip.As16()
		return Forbidden(netip.AddrFrom4([4]byte(b[12:])))
	}
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return true
	}
	for _, p := range extraForbidden {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// allowList is the parsed form of allow entries: CIDRs, single IPs and host
// names (compared case-insensitively, without a trailing dot).
type allowList struct {
	prefixes []netip.Prefix
	hosts    map[string]bool
}

func parseAllow(allow []string) allowList {
	a := allowList{hosts: map[string]bool{}}
	for _, e := range allow {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
			ip = ip.Unmap()
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		a.hosts[normHost(e)] = true
	}
	return a
}

func normHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

func (a allowList) host(h string) bool { return a.hosts[normHost(h)] }

func (a allowList) ip(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (a allowList) check(ip netip.Addr) error {
	if Forbidden(ip) && !a.ip(ip) {
		return fmt.Errorf("%w: %s is loopback, private, link-local or otherwise internal", ErrForbidden, ip.Unmap())
	}
	return nil
}

// Dialer returns a DialContext function that refuses forbidden addresses at
// connect time. A host named in allow is dialled without the check.
func Dialer(allow []string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	a := parseAllow(allow)
	base := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	guarded := base
	guarded.Control = func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: unparsable address %q", ErrForbidden, address)
		}
		return a.check(ap.Addr())
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(addr); err == nil && a.host(host) {
			return base.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// Transport returns an HTTP transport whose every connection goes through
// Dialer(allow). It ignores proxy settings: a proxy would make the check
// look at the proxy instead of the target.
func Transport(allow []string) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           Dialer(allow),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client returns an HTTP client on Transport(allow) that does not follow
// redirects (a push service or webhook has no reason to redirect, and a
// redirect is another way to pick the target) and gives up after 30 s.
func Client(allow []string) *http.Client {
	return &http.Client{
		Transport: Transport(allow),
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// CheckEndpoint vets a push endpoint when a device registers it, from the
// URL alone: it must be https (http only for an allowed host), name a host
// and no credentials, use port 443 unless its host is allowed, and, when
// the host is an IP literal (or localhost), that address must not be
// forbidden unless allowed. It does no DNS lookup: a name is resolved and
// its addresses checked when it is dialled (Dialer), so a resolver's
// hiccup at registration cannot refuse a good subscription, and a name
// that later resolves inside the network is still caught.
func CheckEndpoint(u string, allow []string) error {
	pu, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("safedial: invalid URL: %w", err)
	}
	host := pu.Hostname()
	if host == "" || pu.Opaque != "" {
		return fmt.Errorf("safedial: URL %q has no host", u)
	}
	if pu.User != nil {
		return fmt.Errorf("safedial: URL must not carry credentials")
	}
	a := parseAllow(allow)
	allowed := a.host(host)
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if h := normHost(host); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		// RFC 6761: always loopback, no lookup needed to know it.
		ips = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	}
	if !allowed && len(ips) > 0 {
		for _, ip := range ips {
			if err := a.check(ip); err != nil {
				return err
			}
		}
		allowed = a.ip(ips[0])
	}
	switch pu.Scheme {
	case "https":
	case "http":
		if !allowed {
			return fmt.Errorf("safedial: URL must be https (http only for allowed hosts)")
		}
	default:
		return fmt.Errorf("safedial: URL scheme %q is not https", pu.Scheme)
	}
	if p := pu.Port(); p != "" && p != "443" && !allowed {
		return fmt.Errorf("%w: port %s (push endpoints use 443 unless their host is allowed)", ErrForbidden, p)
	}
	return nil
}
