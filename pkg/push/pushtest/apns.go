package pushtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxAPNsPayload is APNs' limit for a regular notification.
const MaxAPNsPayload = 4096

// APNsPush is one notification the fake accepted.
type APNsPush struct {
	Token      string
	Topic      string
	PushType   string
	Priority   int // 10 when the header was absent, as APNs assumes
	CollapseID string
	Expiration int64 // apns-expiration, 0 when absent
	ApnsID     string
	Payload    []byte
	Header     http.Header
	// ClientCert is the subject CN of the TLS client certificate, for
	// certificate auth.
	ClientCert string
}

// JSON decodes the payload into v.
func (p APNsPush) JSON(v any) error { return json.Unmarshal(p.Payload, v) }

// APNsServer is a fake APNs provider API: HTTP/2 over TLS,
// POST /3/device/{token}.
//
// It checks:
//   - HTTP/2 and POST (405 MethodNotAllowed, 404 BadPath otherwise);
//   - auth: either "authorization: bearer <JWT>" where the JWT is ES256,
//     verifies with the .p8's public key, has kid = keyID, iss = teamID
//     and an iat within the last hour (403 InvalidProviderToken /
//     ExpiredProviderToken, MissingProviderToken without one), or a TLS
//     client certificate signed by a CA given to TrustClientCA (403
//     BadCertificate);
//   - apns-topic set (400 MissingTopic), apns-push-type one of APNs' types
//     (400 InvalidPushType), apns-priority 10, 5 or 1 and 5 or 1 for
//     background (400 BadPriority), apns-collapse-id at most 64 bytes (400
//     BadCollapseId), apns-expiration an integer (400 BadExpirationDate);
//   - the payload: not empty (400 PayloadEmpty), at most 4096 bytes (413
//     PayloadTooLarge), a JSON object with an "aps" dictionary, an alert
//     for push type alert and content-available 1 without alert for
//     background (400 BadPayload).
//
// A device token that is not hex of 64 to 200 characters gets 400
// BadDeviceToken, one marked Unregister gets 410 Unregistered with a
// timestamp; both are normal answers, not verification failures. Accepted
// pushes get 200 with an apns-id.
type APNsServer struct {
	*base
	keyID, teamID string
	pub           *ecdsa.PublicKey
	clientCAs     *x509.CertPool
	unregistered  map[string]time.Time
	pushes        []APNsPush
}

// NewAPNsServer starts a fake APNs that accepts tokens signed by the .p8 key
// whose public half is pub (nil: token auth always fails), closed when t
// ends.
func NewAPNsServer(t testing.TB, keyID, teamID string, pub *ecdsa.PublicKey) *APNsServer {
	s := &APNsServer{base: newBase(), keyID: keyID, teamID: teamID, pub: pub, unregistered: map[string]time.Time{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.EnableHTTP2 = true
	// Ask for a client certificate, verify it in the handler: one server
	// serves both token and certificate auth.
	s.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// TrustClientCA makes the fake accept TLS client certificates signed by
// (or equal to) cert, for certificate auth.
func (s *APNsServer) TrustClientCA(cert *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clientCAs == nil {
		s.clientCAs = x509.NewCertPool()
	}
	s.clientCAs.AddCert(cert)
}

// TLSConfig is a client TLS configuration that trusts the fake.
func (s *APNsServer) TLSConfig() *tls.Config { return &tls.Config{RootCAs: s.CertPool()} }

// Unregister makes later pushes to token answer 410 Unregistered.
func (s *APNsServer) Unregister(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[strings.ToLower(token)] = time.Now()
}

// Answer makes the next n valid pushes to token answer status with reason
// (and Retry-After when retryAfter is set).
func (s *APNsServer) Answer(token string, n, status int, reason, retryAfter string) {
	s.script(strings.ToLower(token), answer{n: n, status: status, reason: reason, retryAfter: retryAfter})
}

// Pushes returns the accepted pushes, oldest first.
func (s *APNsServer) Pushes() []APNsPush {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]APNsPush(nil), s.pushes...)
}

// WaitPushes waits up to d for at least n accepted pushes and returns them.
func (s *APNsServer) WaitPushes(t testing.TB, n int, d time.Duration) []APNsPush {
	t.Helper()
	s.waitAccepted(t, n, d)
	return s.Pushes()
}

func apnsError(w http.ResponseWriter, status int, reason string, ts time.Time) {
	w.Header().Set("apns-id", uuid())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]any{"reason": reason}
	if !ts.IsZero() {
		body["timestamp"] = ts.UnixMilli()
	}
	_ = json.NewEncoder(w).Encode(body)
}

var pushTypes = map[string]bool{
	"alert": true, "background": true, "location": true, "voip": true, "complication": true,
	"fileprovider": true, "mdm": true, "liveactivity": true, "pushtotalk": true, "widgets": true,
}

func (s *APNsServer) serve(w http.ResponseWriter, r *http.Request) {
	s.count()
	reject := func(status int, reason, format string, args ...any) {
		s.fail("apns %s %s: %s: "+format, append([]any{r.Method, r.URL.Path, reason}, args...)...)
		apnsError(w, status, reason, time.Time{})
	}
	if r.ProtoMajor != 2 {
		reject(http.StatusBadRequest, "BadRequest", "APNs speaks HTTP/2 only, got %s", r.Proto)
		return
	}
	if r.Method != http.MethodPost {
		reject(http.StatusMethodNotAllowed, "MethodNotAllowed", "method must be POST")
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok || token == "" {
		reject(http.StatusNotFound, "BadPath", "path must be /3/device/{token}")
		return
	}
	cn, status, reason, err := s.authenticate(r)
	if err != nil {
		reject(status, reason, "%v", err)
		return
	}
	topic := r.Header.Get("apns-topic")
	if topic == "" {
		reject(http.StatusBadRequest, "MissingTopic", "apns-topic header missing")
		return
	}
	pushType := r.Header.Get("apns-push-type")
	if !pushTypes[pushType] {
		reject(http.StatusBadRequest, "InvalidPushType", "apns-push-type %q", pushType)
		return
	}
	prio := 10
	if p := r.Header.Get("apns-priority"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || (n != 10 && n != 5 && n != 1) || (pushType == "background" && n == 10) {
			reject(http.StatusBadRequest, "BadPriority", "apns-priority %q for push type %s", p, pushType)
			return
		}
		prio = n
	} else if pushType == "background" {
		reject(http.StatusBadRequest, "BadPriority", "background pushes need apns-priority 5")
		return
	}
	collapse := r.Header.Get("apns-collapse-id")
	if len(collapse) > 64 {
		reject(http.StatusBadRequest, "BadCollapseId", "apns-collapse-id of %d bytes", len(collapse))
		return
	}
	var exp int64
	if e := r.Header.Get("apns-expiration"); e != "" {
		if exp, err = strconv.ParseInt(e, 10, 64); err != nil || exp < 0 {
			reject(http.StatusBadRequest, "BadExpirationDate", "apns-expiration %q", e)
			return
		}
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, MaxAPNsPayload+1))
	if err != nil {
		reject(http.StatusBadRequest, "BadPayload", "read: %v", err)
		return
	}
	if len(payload) == 0 {
		reject(http.StatusBadRequest, "PayloadEmpty", "empty payload")
		return
	}
	if len(payload) > MaxAPNsPayload {
		reject(http.StatusRequestEntityTooLarge, "PayloadTooLarge", "payload over %d bytes", MaxAPNsPayload)
		return
	}
	if err := checkAPS(payload, pushType); err != nil {
		reject(http.StatusBadRequest, "BadPayload", "%v", err)
		return
	}

	if len(token) < 64 || len(token) > 200 || len(token)%2 != 0 {
		apnsError(w, http.StatusBadRequest, "BadDeviceToken", time.Time{})
		return
	}
	if _, err := hex.DecodeString(token); err != nil {
		apnsError(w, http.StatusBadRequest, "BadDeviceToken", time.Time{})
		return
	}
	key := strings.ToLower(token)
	s.mu.Lock()
	since, gone := s.unregistered[key]
	s.mu.Unlock()
	if gone {
		apnsError(w, http.StatusGone, "Unregistered", since)
		return
	}
	if a, ok := s.scripted(key); ok {
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		apnsError(w, a.status, a.reason, time.Time{})
		return
	}
	id := r.Header.Get("apns-id")
	if id == "" {
		id = uuid()
	}
	s.accept(func() {
		s.pushes = append(s.pushes, APNsPush{
			Token: token, Topic: topic, PushType: pushType, Priority: prio, CollapseID: collapse,
			Expiration: exp, ApnsID: id, Payload: payload, Header: r.Header.Clone(), ClientCert: cn,
		})
	})
	w.Header().Set("apns-id", id)
	w.WriteHeader(http.StatusOK)
}

// authenticate checks the provider token or the client certificate. It
// returns the certificate's CN for certificate auth.
func (s *APNsServer) authenticate(r *http.Request) (cn string, status int, reason string, err error) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			leaf := r.TLS.PeerCertificates[0]
			s.mu.Lock()
			pool := s.clientCAs
			s.mu.Unlock()
			if pool == nil {
				return "", http.StatusForbidden, "BadCertificate", fmt.Errorf("client certificate %q but no trusted CA", leaf.Subject.CommonName)
			}
			inter := x509.NewCertPool()
			for _, c := range r.TLS.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return "", http.StatusForbidden, "BadCertificate", fmt.Errorf("client certificate: %v", err)
			}
			return leaf.Subject.CommonName, 0, "", nil
		}
		return "", http.StatusForbidden, "MissingProviderToken", fmt.Errorf("no authorization header and no client certificate")
	}
	tok, ok := strings.CutPrefix(authz, "bearer ")
	if !ok {
		return "", http.StatusForbidden, "InvalidProviderToken", fmt.Errorf("authorization %q is not a bearer token", truncate(authz, 20))
	}
	if s.pub == nil {
		return "", http.StatusForbidden, "InvalidProviderToken", fmt.Errorf("fake has no .p8 public key")
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return s.pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(s.teamID), jwt.WithIssuedAt())
	if err != nil {
		return "", http.StatusForbidden, "InvalidProviderToken", fmt.Errorf("provider token: %v", err)
	}
	if kid, _ := parsed.Header["kid"].(string); kid != s.keyID {
		return "", http.StatusForbidden, "InvalidProviderToken", fmt.Errorf("provider token kid %q, want %q", kid, s.keyID)
	}
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		return "", http.StatusForbidden, "InvalidProviderToken", fmt.Errorf("provider token without iat")
	}
	if time.Since(iat.Time) > time.Hour {
		return "", http.StatusForbidden, "ExpiredProviderToken", fmt.Errorf("provider token issued %s ago", time.Since(iat.Time).Round(time.Second))
	}
	return "", 0, "", nil
}

func checkAPS(payload []byte, pushType string) error {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(payload, &p); err != nil {
		return fmt.Errorf("payload is not a JSON object: %v", err)
	}
	var aps map[string]json.RawMessage
	if err := json.Unmarshal(p["aps"], &aps); err != nil || aps == nil {
		return fmt.Errorf("payload has no aps dictionary")
	}
	_, hasAlert := aps["alert"]
	_, hasBadge := aps["badge"]
	_, hasSound := aps["sound"]
	if hasBadge {
		var n int
		if err := json.Unmarshal(aps["badge"], &n); err != nil || n < 0 {
			return fmt.Errorf("aps.badge %s is not a count", aps["badge"])
		}
	}
	switch pushType {
	case "alert":
		// Apple: an alert push interacts with the user: an alert, a sound
		// or a badge.
		if !hasAlert && !hasBadge && !hasSound {
			return fmt.Errorf("push type alert without aps.alert, badge or sound")
		}
	case "background":
		var ca int
		if err := json.Unmarshal(aps["content-available"], &ca); err != nil || ca != 1 {
			return fmt.Errorf("push type background needs aps.content-available 1")
		}
		if hasAlert || hasBadge || hasSound {
			return fmt.Errorf("push type background must not carry an alert, badge or sound")
		}
	}
	return nil
}

// NewP8Key makes an APNs-style auth key: a P-256 key as PKCS#8 PEM (the
// .p8 file's format), and the key itself for NewAPNsServer.
func NewP8Key() (p8 []byte, key *ecdsa.PrivateKey, err error) {
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	p8, err = EncodeP8(key)
	return p8, key, err
}

// EncodeP8 writes key in the .p8 format (PKCS#8 PEM).
func EncodeP8(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
