package pushtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxWebPushBody is the largest encrypted body the fake accepts, like
// the real push services.
const MaxWebPushBody = 4096

// WebPush is one push the fake accepted.
type WebPush struct {
	Endpoint string
	Payload  []byte // decrypted, padding removed
	TTL      int
	Urgency  string // "" when the header was absent
	Topic    string
	// From the VAPID JWT.
	Subject  string
	Audience string
	Expires  time.Time
	VAPIDKey string // the k= parameter
	Header   http.Header
}

// JSON decodes the payload into v.
func (p WebPush) JSON(v any) error { return json.Unmarshal(p.Payload, v) }

type subscription struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// WebPushServer is a fake Web Push service (RFC 8030 + 8291 + 8292).
//
// For each POST to a subscription endpoint it checks:
//   - Authorization is "vapid t=<JWT>, k=<key>", the JWT is ES256 and
//     verifies with k, aud is the endpoint's origin, exp is in the future
//     and at most 24 h away, sub is a mailto: or https: URI (and not
//     "mailto:mailto:"); 401 otherwise, 403 when k is not the key the
//     subscription was made for (RequireVAPIDKey);
//   - TTL is present and a non-negative integer, Urgency is one of
//     very-low/low/normal/high, Topic is at most 32 base64url characters,
//     Content-Encoding is aes128gcm; 400 otherwise;
//   - the body is at most 4096 bytes, one RFC 8188 record whose header
//     carries a 65-byte keyid (the sender's ephemeral key), and decrypts
//     with keys derived per RFC 8291 from the subscription's private key
//     and auth secret, ending in the 0x02 delimiter and zero padding; 400
//     otherwise (413 when too large).
//
// Then it answers a scripted status if one is queued, else 201 and records
// the push. Unknown endpoints get 404, unsubscribed ones 410.
type WebPushServer struct {
	*base
	requiredKey string
	subs        map[string]*subscription
	gone        map[string]bool
	pushes      []WebPush
}

// NewWebPushServer starts a fake Web Push service, closed when t ends.
func NewWebPushServer(t testing.TB) *WebPushServer {
	s := &WebPushServer{base: newBase(), subs: map[string]*subscription{}, gone: map[string]bool{}}
	s.start(t, http.HandlerFunc(s.serve), false)
	return s
}

// NewSubscription makes a subscription whose endpoint is on the fake, as a
// browser's PushManager.subscribe would: a fresh P-256 key pair and auth
// secret, both base64url.
func (s *WebPushServer) NewSubscription() (endpoint, p256dh, auth string) {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	id := randomHex(12)
	s.mu.Lock()
	s.subs[id] = &subscription{key: key, auth: secret}
	s.mu.Unlock()
	return s.URL() + "/push/" + id,
		base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		base64.RawURLEncoding.EncodeToString(secret)
}

// RequireVAPIDKey makes the fake answer 403 to pushes signed with any other
// VAPID public key (base64url), like a subscription made with that
// applicationServerKey. Empty accepts any key.
func (s *WebPushServer) RequireVAPIDKey(public string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requiredKey = strings.TrimRight(public, "=")
}

// Unsubscribe makes every later push to endpoint answer 410 Gone.
func (s *WebPushServer) Unsubscribe(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone[endpoint] = true
}

// Answer makes the next n valid pushes to endpoint answer status (with
// Retry-After when retryAfter is not empty) instead of 201.
func (s *WebPushServer) Answer(endpoint string, n, status int, retryAfter string) {
	s.script(endpoint, answer{n: n, status: status, retryAfter: retryAfter})
}

// Pushes returns the accepted pushes, oldest first.
func (s *WebPushServer) Pushes() []WebPush {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]WebPush(nil), s.pushes...)
}

// WaitPushes waits up to d for at least n accepted pushes and returns them.
func (s *WebPushServer) WaitPushes(t testing.TB, n int, d time.Duration) []WebPush {
	t.Helper()
	s.waitAccepted(t, n, d)
	return s.Pushes()
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func (s *WebPushServer) serve(w http.ResponseWriter, r *http.Request) {
	s.count()
	reject := func(status int, format string, args ...any) {
		msg := s.fail("webpush %s %s: "+format, append([]any{r.Method, r.URL.Path}, args...)...)
		http.Error(w, msg, status)
	}
	if r.Method != http.MethodPost {
		reject(http.StatusMethodNotAllowed, "method must be POST")
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	endpoint := s.URL() + r.URL.Path
	s.mu.Lock()
	sub := s.subs[id]
	gone := s.gone[endpoint]
	required := s.requiredKey
	s.mu.Unlock()
	if !ok || sub == nil {
		http.Error(w, "no such subscription", http.StatusNotFound)
		return
	}
	if gone {
		http.Error(w, "push subscription has unsubscribed or expired", http.StatusGone)
		return
	}

	vapid, err := verifyVAPID(r.Header.Get("Authorization"), s.URL())
	if err != nil {
		reject(http.StatusUnauthorized, "VAPID: %v", err)
		return
	}
	if required != "" && vapid.key != required {
		reject(http.StatusForbidden, "VAPID key %s is not the subscription's applicationServerKey", vapid.key)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 {
		reject(http.StatusBadRequest, "TTL header %q must be a non-negative integer", r.Header.Get("TTL"))
		return
	}
	urgency := r.Header.Get("Urgency")
	switch urgency {
	case "", "very-low", "low", "normal", "high":
	default:
		reject(http.StatusBadRequest, "Urgency %q is not very-low, low, normal or high", urgency)
		return
	}
	topic := r.Header.Get("Topic")
	if topic != "" && !topicRE.MatchString(topic) {
		reject(http.StatusBadRequest, "Topic %q must be 1-32 base64url characters", topic)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		reject(http.StatusBadRequest, "Content-Encoding %q, want aes128gcm", ce)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxWebPushBody+1))
	if err != nil {
		reject(http.StatusBadRequest, "read body: %v", err)
		return
	}
	if len(body) > MaxWebPushBody {
		reject(http.StatusRequestEntityTooLarge, "body over %d bytes", MaxWebPushBody)
		return
	}
	plain, err := decrypt(sub, body)
	if err != nil {
		reject(http.StatusBadRequest, "decrypt: %v", err)
		return
	}

	if a, ok := s.scripted(endpoint); ok {
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		http.Error(w, http.StatusText(a.status), a.status)
		return
	}
	msgID := randomHex(8)
	s.accept(func() {
		s.pushes = append(s.pushes, WebPush{
			Endpoint: endpoint, Payload: plain, TTL: ttl, Urgency: urgency, Topic: topic,
			Subject: vapid.sub, Audience: vapid.aud, Expires: vapid.exp, VAPIDKey: vapid.key,
			Header: r.Header.Clone(),
		})
	})
	w.Header().Set("Location", s.URL()+"/message/"+msgID)
	w.WriteHeader(http.StatusCreated)
}

type vapidClaims struct {
	sub, aud, key string
	exp           time.Time
}

// verifyVAPID checks an RFC 8292 Authorization header for a push to a
// service whose origin is origin.
func verifyVAPID(header, origin string) (vapidClaims, error) {
	var c vapidClaims
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return c, fmt.Errorf("Authorization %q is not the vapid scheme", truncate(header, 40))
	}
	var tok string
	for _, p := range strings.Split(rest, ",") {
		p = strings.TrimSpace(p)
		if v, ok := strings.CutPrefix(p, "t="); ok {
			tok = v
		} else if v, ok := strings.CutPrefix(p, "k="); ok {
			c.key = strings.TrimRight(v, "=")
		}
	}
	if tok == "" || c.key == "" {
		return c, errors.New("vapid needs both t= and k=")
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.key)
	if err != nil {
		return c, fmt.Errorf("k= is not base64url: %v", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return c, fmt.Errorf("k= is not an uncompressed P-256 point: %v", err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired())
	if err != nil {
		return c, fmt.Errorf("JWT: %v", err)
	}
	aud, _ := claims["aud"].(string)
	if aud != origin {
		return c, fmt.Errorf("JWT aud %q, want the push service origin %q", aud, origin)
	}
	c.aud = aud
	exp, _ := claims.GetExpirationTime()
	c.exp = exp.Time
	if c.exp.After(time.Now().Add(24 * time.Hour)) {
		return c, fmt.Errorf("JWT exp %s is more than 24 h away", c.exp.Format(time.RFC3339))
	}
	c.sub, _ = claims["sub"].(string)
	switch {
	case strings.HasPrefix(c.sub, "mailto:mailto:"):
		return c, fmt.Errorf("JWT sub %q has a doubled mailto:", c.sub)
	case strings.HasPrefix(c.sub, "mailto:") && strings.Contains(c.sub, "@"):
	case strings.HasPrefix(c.sub, "https://"):
		if u, err := url.Parse(c.sub); err != nil || u.Host == "" {
			return c, fmt.Errorf("JWT sub %q is not a valid https URL", c.sub)
		}
	default:
		return c, fmt.Errorf("JWT sub %q must be a mailto: address or https URL", c.sub)
	}
	return c, nil
}

// decrypt opens an RFC 8291 aes128gcm body for sub.
func decrypt(sub *subscription, body []byte) ([]byte, error) {
	// RFC 8188 header: salt(16) | rs(4) | idlen(1) | keyid(idlen).
	if len(body) < 21 {
		return nil, errors.New("body shorter than the aes128gcm header")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idlen := int(body[20])
	if idlen != 65 {
		return nil, fmt.Errorf("keyid length %d, want 65 (the sender's uncompressed P-256 key)", idlen)
	}
	if len(body) < 21+idlen+16 {
		return nil, errors.New("body shorter than header plus one AEAD tag")
	}
	asPublic := body[21 : 21+idlen]
	record := body[21+idlen:]
	if rs < 18 {
		return nil, fmt.Errorf("record size %d below 18", rs)
	}
	if uint32(len(record)) > rs {
		return nil, fmt.Errorf("ciphertext of %d bytes is more than one record of %d (Web Push allows one)", len(record), rs)
	}
	peer, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return nil, fmt.Errorf("keyid is not a P-256 point: %v", err)
	}
	shared, err := sub.key.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("ECDH: %v", err)
	}
	// RFC 8291 §3.4: IKM from the ECDH secret, keyed by the auth secret and
	// bound to both public keys.
	info := append([]byte("WebPush: info\x00"), sub.key.PublicKey().Bytes()...)
	info = append(info, asPublic...)
	ikm, err := hkdf.Key(sha256.New, shared, sub.auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, fmt.Errorf("AEAD open failed (wrong keys or derivation): %v", err)
	}
	// RFC 8188 §2: data, then a delimiter (0x02 in the last record), then zeros.
	end := len(plain) - 1
	for end >= 0 && plain[end] == 0 {
		end--
	}
	if end < 0 || plain[end] != 2 {
		return nil, errors.New("no 0x02 last-record padding delimiter")
	}
	return plain[:end], nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
