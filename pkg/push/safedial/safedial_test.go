package safedial

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestForbidden(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true}, {"127.8.9.10", true}, {"::1", true},
		{"10.1.2.3", true}, {"172.16.0.1", true}, {"172.31.255.255", true}, {"192.168.1.1", true},
		{"169.254.169.254", true}, {"fe80::1", true}, {"fc00::1", true}, {"fd12:3456::1", true},
		{"0.0.0.0", true}, {"::", true}, {"224.0.0.1", true}, {"ff02::1", true},
		{"100.64.0.1", true}, {"100.127.255.255", true}, {"255.255.255.255", true},
		{"::ffff:127.0.0.1", true}, {"::ffff:10.0.0.1", true}, {"64:ff9b::a00:1", true},
		{"8.8.8.8", false}, {"172.32.0.1", false}, {"100.128.0.1", false},
		{"2001:4860:4860::8888", false}, {"::ffff:8.8.8.8", false}, {"64:ff9b::808:808", false},
	} {
		if got := Forbidden(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Forbidden(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
}

// dialTo opens a TCP connection with Dialer(allow) to addr, returning the
// dial error.
func dialTo(t *testing.T, allow []string, addr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := Dialer(allow)(ctx, "tcp", addr)
	if err == nil {
		c.Close()
	}
	return err
}

func TestDialRefusesInternalAddressesWithoutAllowance(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	// The check runs before connect, so these need no listener.
	for _, addr := range []string{"127.0.0.1:" + port, "10.0.0.1:443", "169.254.169.254:80", "[::1]:443", "100.64.0.1:443"} {
		if err := dialTo(t, nil, addr); !errors.Is(err, ErrForbidden) {
			t.Errorf("dial %s: err = %v, want ErrForbidden", addr, err)
		}
	}
	// A name that resolves to loopback is refused at dial time too.
	if err := dialTo(t, nil, "localhost:"+port); !errors.Is(err, ErrForbidden) {
		t.Errorf("dial localhost: err = %v, want ErrForbidden", err)
	}

	for _, allow := range [][]string{{"127.0.0.1"}, {"127.0.0.0/8"}, {"localhost"}, {"LocalHost."}} {
		addr := "127.0.0.1:" + port
		if allow[0] != "127.0.0.1" && allow[0] != "127.0.0.0/8" {
			addr = "localhost:" + port
		}
		if err := dialTo(t, allow, addr); err != nil {
			t.Errorf("allow %v, dial %s: %v", allow, addr, err)
		}
	}
	// An allowance for one range does not open another.
	if err := dialTo(t, []string{"127.0.0.1/32"}, "10.0.0.1:443"); !errors.Is(err, ErrForbidden) {
		t.Errorf("allow 127.0.0.1/32, dial 10.0.0.1: %v", err)
	}
}

func TestClientRefusesLoopbackServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, err := Client(nil).Get(srv.URL)
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v, want ErrForbidden", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1 is loopback") {
		t.Errorf("error does not say why: %v", err)
	}
	resp, err := Client([]string{"127.0.0.1/32"}).Get(srv.URL)
	if err != nil {
		t.Fatalf("allowed: %v", err)
	}
	resp.Body.Close()
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://10.0.0.1/", http.StatusFound)
	}))
	defer srv.Close()
	resp, err := Client([]string{"127.0.0.1"}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want the 302 itself", resp.StatusCode)
	}
}

func TestCheckEndpointLooksAtTheURLOnly(t *testing.T) {
	for _, tc := range []struct {
		url   string
		allow []string
		ok    bool
	}{
		{"https://fcm.googleapis.com/fcm/send/abc", nil, true},
		{"https://updates.push.services.mozilla.com:443/wpush/v2/x", nil, true},
		// No lookup: a name that does not resolve (yet, or now) is accepted,
		// and checked when dialled.
		{"https://push.does-not-exist.invalid/abc", nil, true},
		{"https://8.8.8.8/push/abc", nil, true},
		{"http://8.8.8.8/push/abc", nil, false}, // https only
		{"ftp://8.8.8.8/", nil, false},
		{"https://fcm.googleapis.com:8443/fcm/send/abc", nil, false}, // port
		{"https://8.8.8.8:22/", nil, false},
		{"https://127.0.0.1/push", nil, false},
		{"https://10.0.0.5/push", nil, false},
		{"https://169.254.169.254/latest/meta-data", nil, false},
		{"https://[::1]/push", nil, false},
		{"https://localhost/push", nil, false},
		{"https://api.localhost/push", nil, false},
		{"https://user:pw@8.8.8.8/", nil, false},
		{"https:///nohost", nil, false},
		{"https://127.0.0.1:8443/push", []string{"127.0.0.1/32"}, true},
		{"http://127.0.0.1:8080/push", []string{"127.0.0.1"}, true},
		{"https://localhost:8443/push", []string{"localhost"}, true},
		{"https://localhost:8443/push", []string{"127.0.0.0/8", "::1/128"}, true},
		{"https://push.test:8443/push", []string{"push.test"}, true},
		{"https://10.0.0.5/push", []string{"127.0.0.1/32"}, false},
		{"https://10.0.0.5:8443/push", []string{"10.0.0.0/8"}, true},
	} {
		err := CheckEndpoint(tc.url, tc.allow)
		if (err == nil) != tc.ok {
			t.Errorf("CheckEndpoint(%q, %v) = %v, want ok=%v", tc.url, tc.allow, err, tc.ok)
		}
	}
}
