package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyHS256(t *testing.T) {
	v, err := NewVerifier(VerifierOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour).Unix()
	cases := []struct {
		name   string
		token  string
		wantOK bool
		sid    string
	}{
		{"valid with sid", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice", "exp": future, "sid": "s1"}), true, "s1"},
		{"valid with jti", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice", "exp": future, "jti": "j1"}), true, "j1"},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}), false, ""},
		{"missing exp", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "alice"}), false, ""},
		{"missing sub", sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"exp": future}), false, ""},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret!!"), "", jwt.MapClaims{"sub": "alice", "exp": future}), false, ""},
		{"HS512 not allowed", sign(t, jwt.SigningMethodHS512, secret, "", jwt.MapClaims{"sub": "alice", "exp": future}), false, ""},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", jwt.MapClaims{"sub": "alice", "exp": future}), false, ""},
		{"garbage", "a.b.c", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.token)
			if tc.wantOK {
				if err != nil || c.Subject != "alice" || c.SessionID != tc.sid {
					t.Fatalf("claims %+v err %v", c, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
		})
	}
}

func TestMintRoundTrip(t *testing.T) {
	raw, err := Mint(secret, Claims{Subject: "bob", SessionID: "s9", ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(VerifierOptions{Secret: secret})
	c, err := v.Verify(context.Background(), raw)
	if err != nil || c.Subject != "bob" || c.SessionID != "s9" {
		t.Fatalf("%+v %v", c, err)
	}
}

// jwksServer serves a key set that the test can replace.
type jwksServer struct {
	mu   sync.Mutex
	keys jose.JSONWebKeySet
	hits int
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits++
	_ = json.NewEncoder(w).Encode(s.keys)
}

func (s *jwksServer) set(keys ...jose.JSONWebKey) {
	s.mu.Lock()
	s.keys = jose.JSONWebKeySet{Keys: keys}
	s.mu.Unlock()
}

func TestVerifyJWKS(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rotated, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	js := &jwksServer{}
	js.set(
		jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "rsa1", Algorithm: "RS256", Use: "sig"},
		jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "ec1", Algorithm: "ES256", Use: "sig"},
	)
	srv := httptest.NewServer(js)
	defer srv.Close()
	v, err := NewVerifier(VerifierOptions{JWKSURL: srv.URL, JWKS: JWKSOptions{MinRefresh: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour).Unix()
	claims := jwt.MapClaims{"sub": "carol", "exp": future, "sid": "x"}
	ctx := context.Background()

	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claims)},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, "ec1", claims)},
	} {
		if c, err := v.Verify(ctx, tc.tok); err != nil || c.Subject != "carol" {
			t.Fatalf("%s: %+v %v", tc.name, c, err)
		}
	}
	// A key of the wrong type for the header's algorithm is refused.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, ecKey, "rsa1", claims)); err == nil {
		t.Fatal("ES256 token verified with an RSA kid")
	}
	// Unknown kid: refused until the set publishes it, then accepted.
	tok := sign(t, jwt.SigningMethodES256, rotated, "ec2", claims)
	if _, err := v.Verify(ctx, tok); err == nil {
		t.Fatal("unknown kid accepted")
	}
	js.set(jose.JSONWebKey{Key: &rotated.PublicKey, KeyID: "ec2", Algorithm: "ES256", Use: "sig"})
	time.Sleep(5 * time.Millisecond)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// HS256 is not accepted when only a JWKS is configured.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodHS256, secret, "", claims)); err == nil {
		t.Fatal("HS256 accepted without a secret")
	}
}

// TestAlgorithmConfusion: an HS256 token whose secret is the RSA public key
// (a classic attack) must not verify when JWKS and a secret are configured.
func TestAlgorithmConfusion(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	js := &jwksServer{}
	js.set(jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "rsa1", Use: "sig"})
	srv := httptest.NewServer(js)
	defer srv.Close()
	v, _ := NewVerifier(VerifierOptions{Secret: secret, JWKSURL: srv.URL})
	forged := sign(t, jwt.SigningMethodHS256, pubPEM, "rsa1", jwt.MapClaims{"sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()})
	if _, err := v.Verify(context.Background(), forged); err == nil {
		t.Fatal("HS256 token signed with the RSA public key verified")
	}
}

func TestJWKSRefreshIsRateLimited(t *testing.T) {
	js := &jwksServer{}
	srv := httptest.NewServer(js)
	defer srv.Close()
	v, _ := NewVerifier(VerifierOptions{JWKSURL: srv.URL, JWKS: JWKSOptions{MinRefresh: time.Hour}})
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := 0; i < 20; i++ {
		tok := sign(t, jwt.SigningMethodES256, ecKey, "nope", jwt.MapClaims{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()})
		_, _ = v.Verify(context.Background(), tok)
	}
	if js.hits != 1 {
		t.Fatalf("JWKS fetched %d times for unknown kids, want 1", js.hits)
	}
}

func TestAPIKeyEqual(t *testing.T) {
	if !APIKeyEqual("abc", "abc") || APIKeyEqual("abc", "abd") || APIKeyEqual("", "abc") {
		t.Fatal("APIKeyEqual")
	}
}

func FuzzVerify(f *testing.F) {
	good, _ := Mint(secret, Claims{Subject: "a", ExpiresAt: time.Now().Add(time.Hour)})
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("...")
	v, _ := NewVerifier(VerifierOptions{Secret: secret})
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(context.Background(), raw)
		if err == nil && c.Subject == "" {
			t.Fatal("verified a token without subject")
		}
	})
}
