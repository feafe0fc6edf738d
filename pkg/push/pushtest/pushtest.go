// Package pushtest runs fake push services on loopback for tests: a Web
// Push service, APNs and FCM. Each fake checks the real protocol (it
// decrypts, verifies signatures and tokens, validates headers and payloads)
// and answers like the real service, so a sender that passes against the
// fake speaks the protocol, not just "some HTTP".
//
// Every fake records what it accepted, counts requests, and records each
// request that failed verification; AssertNoFailures fails a test that
// produced any. Answers can be scripted per device (410, 429 with
// Retry-After, …) for the next N requests.
//
// The fakes serve TLS with httptest's certificate: use CertPool (or
// TLSConfig/Client) in-process, or write CertPEM to a file and point
// SSL_CERT_FILE at it for a child process.
package pushtest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// base is what every fake shares: the TLS server, the failure log, the
// request counter and the scripted answers.
type base struct {
	srv *httptest.Server

	mu       sync.Mutex
	failures []string
	requests int
	accepted int
	scripts  map[string][]answer
	notify   chan struct{} // closed and replaced whenever something is accepted
}

// answer is a scripted reply for the next n requests to one device.
type answer struct {
	n          int
	status     int
	retryAfter string // Retry-After header, when set
	reason     string // provider reason (APNs reason, FCM errorCode)
}

func newBase() *base {
	return &base{scripts: map[string][]answer{}, notify: make(chan struct{})}
}

func (b *base) start(t testing.TB, h http.Handler, http2 bool) {
	b.srv = httptest.NewUnstartedServer(h)
	b.srv.EnableHTTP2 = http2
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
}

// URL is the fake's base URL, https://127.0.0.1:port.
func (b *base) URL() string { return b.srv.URL }

// CertPool trusts the fake's certificate.
func (b *base) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(b.srv.Certificate())
	return p
}

// CertPEM is the fake's certificate in PEM, for SSL_CERT_FILE.
func (b *base) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.srv.Certificate().Raw})
}

// Client is an HTTP client that trusts the fake.
func (b *base) Client() *http.Client { return b.srv.Client() }

// Requests is how many requests arrived, whatever their fate.
func (b *base) Requests() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests
}

// Failures lists the requests that failed verification, one line each.
func (b *base) Failures() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.failures...)
}

// AssertNoFailures fails t for each request that failed verification.
func (b *base) AssertNoFailures(t testing.TB) {
	t.Helper()
	for _, f := range b.Failures() {
		t.Errorf("push fake rejected a request: %s", f)
	}
}

// Reset forgets failures; tests that provoke a rejection on purpose call it
// before AssertNoFailures.
func (b *base) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = nil
}

func (b *base) count() {
	b.mu.Lock()
	b.requests++
	b.mu.Unlock()
}

func (b *base) fail(format string, args ...any) string {
	msg := fmt.Sprintf(format, args...)
	b.mu.Lock()
	b.failures = append(b.failures, msg)
	b.mu.Unlock()
	return msg
}

// script queues an answer for the next a.n requests to key.
func (b *base) script(key string, a answer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.scripts[key] = append(b.scripts[key], a)
}

// scripted takes the next scripted answer for key, if any.
func (b *base) scripted(key string) (answer, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.scripts[key]
	if len(q) == 0 {
		return answer{}, false
	}
	a := q[0]
	q[0].n--
	if q[0].n <= 0 {
		q = q[1:]
	}
	if len(q) == 0 {
		delete(b.scripts, key)
	} else {
		b.scripts[key] = q
	}
	return a, true
}

// accept runs record under the lock and wakes waiters.
func (b *base) accept(record func()) {
	b.mu.Lock()
	record()
	b.accepted++
	close(b.notify)
	b.notify = make(chan struct{})
	b.mu.Unlock()
}

// waitAccepted blocks until at least n deliveries were accepted or d passes.
func (b *base) waitAccepted(t testing.TB, n int, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		got, ch := b.accepted, b.notify
		b.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("push fake: %d deliveries accepted after %s, want %d (failures: %q)", got, d, n, b.Failures())
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func uuid() string {
	h := randomHex(16)
	return strings.ToUpper(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32])
}
