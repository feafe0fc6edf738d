package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyJWKS(t *testing.T) {
	k := testKeys()
	octSecret := []byte("a-symmetric-key-nobody-should-publish")
	octKey := json.RawMessage(`{"kty":"oct","kid":"sym","k":"` + base64.RawURLEncoding.EncodeToString(octSecret) + `"}`)
	unknownType := json.RawMessage(`{"kty":"XYZ","kid":"odd"}`)
	brokenRSA := json.RawMessage(`{"kty":"RSA","kid":"broken","n":"!!","e":"AQAB"}`)
	js := newJWKSServer(t)
	js.setRaw(t, []json.RawMessage{octKey, unknownType, brokenRSA},
		jwk("rsa1", k.rsa, "sig", "RS256"),
		jwk("ec1", k.ec, "", "ES256"),
		jwk("enc1", k.ec2, "enc", ""),
		jwk("small", k.rsaSmall, "sig", ""),
		jwk("p384", k.ec384, "sig", ""),
		jwk("rs512only", k.rsa2, "sig", "RS512"),
	)
	clk := newClock()
	v, err := newVerifier(VerifierOptions{JWKSURL: js.URL}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	claims := claimsAt(clk.now(), jwt.MapClaims{"sid": "x"})

	cases := []struct {
		name    string
		token   string
		wantErr error // besides ErrInvalid; nil means success
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa1", claims), nil},
		{"ES256", sign(t, jwt.SigningMethodES256, k.ec, "ec1", claims), nil},
		{"ES256 without kid picks the P-256 key", sign(t, jwt.SigningMethodES256, k.ec, "", claims), nil},
		{"RS256 without kid picks the RSA key", sign(t, jwt.SigningMethodRS256, k.rsa, "", claims), nil},

		{"ES256 naming an RSA kid", sign(t, jwt.SigningMethodES256, k.ec, "rsa1", claims), jwt.ErrTokenUnverifiable},
		{"RS256 naming an EC kid", sign(t, jwt.SigningMethodRS256, k.rsa, "ec1", claims), jwt.ErrTokenUnverifiable},
		{"RS256 signed by another key", sign(t, jwt.SigningMethodRS256, k.rsa2, "rsa1", claims), jwt.ErrTokenSignatureInvalid},
		{"RS384 refused", sign(t, jwt.SigningMethodRS384, k.rsa, "rsa1", claims), jwt.ErrTokenSignatureInvalid},
		{"PS256 refused", sign(t, jwt.SigningMethodPS256, k.rsa, "rsa1", claims), jwt.ErrTokenSignatureInvalid},
		{"ES384 refused", sign(t, jwt.SigningMethodES384, k.ec384, "p384", claims), jwt.ErrTokenSignatureInvalid},
		{"HS256 refused without a secret", sign(t, jwt.SigningMethodHS256, testSecret, "", claims), jwt.ErrTokenSignatureInvalid},
		{"symmetric JWKS key never used", sign(t, jwt.SigningMethodHS256, octSecret, "sym", claims), jwt.ErrTokenSignatureInvalid},
		{"key for encryption ignored", sign(t, jwt.SigningMethodES256, k.ec2, "enc1", claims), jwt.ErrTokenUnverifiable},
		{"RSA key under 2048 bits ignored", sign(t, jwt.SigningMethodRS256, k.rsaSmall, "small", claims), jwt.ErrTokenUnverifiable},
		{"key declared for another alg", sign(t, jwt.SigningMethodRS256, k.rsa2, "rs512only", claims), jwt.ErrTokenUnverifiable},
		{"unknown kid", sign(t, jwt.SigningMethodES256, k.ec2, "nope", claims), jwt.ErrTokenUnverifiable},
		{"kid not a string", signWithHeader(t, jwt.SigningMethodES256, k.ec, "kid", 7, claims), jwt.ErrTokenUnverifiable},
		{"expired RS256", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa1", claimsAt(clk.now(), jwt.MapClaims{"exp": clk.now().Add(-time.Hour).Unix()})), jwt.ErrTokenExpired},
		{"RS256 without sub", sign(t, jwt.SigningMethodRS256, k.rsa, "rsa1", claimsAt(clk.now(), jwt.MapClaims{"sub": nil})), ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Subject != "alice" || c.SessionID != "x" {
					t.Fatalf("claims = %+v", c)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want ErrInvalid wrapping %v", err, tc.wantErr)
			}
		})
	}
	if n := js.hits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (one fetch, then unknown kids rate limited)", n)
	}
}

func signWithHeader(t *testing.T, method jwt.SigningMethod, key any, name string, value any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header[name] = value
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyBothSecretAndJWKS(t *testing.T) {
	k := testKeys()
	js := newJWKSServer(t, jwk("ec1", k.ec, "sig", "ES256"))
	clk := newClock()
	v, err := newVerifier(VerifierOptions{Secret: testSecret, JWKSURL: js.URL}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{
		"HS256": sign(t, jwt.SigningMethodHS256, testSecret, "", claimsAt(clk.now(), nil)),
		"ES256": sign(t, jwt.SigningMethodES256, k.ec, "ec1", claimsAt(clk.now(), nil)),
	} {
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestJWKSRotationFetchesNewKid(t *testing.T) {
	k := testKeys()
	js := newJWKSServer(t, jwk("k1", k.ec, "sig", ""))
	clk := newClock()
	v, _ := newVerifier(VerifierOptions{JWKSURL: js.URL}, clk.now)
	ctx := context.Background()

	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k.ec, "k1", claimsAt(clk.now(), nil))); err != nil {
		t.Fatalf("k1: %v", err)
	}
	// The issuer rotates: k2 is published next to k1.
	js.setKeys(t, jwk("k1", k.ec, "sig", ""), jwk("k2", k.ec2, "sig", ""))
	clk.advance(DefaultJWKSMinRefresh)
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k.ec2, "k2", claimsAt(clk.now(), nil))); err != nil {
		t.Fatalf("k2 after rotation: %v", err)
	}
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k.ec, "k1", claimsAt(clk.now(), nil))); err != nil {
		t.Fatalf("k1 after rotation: %v", err)
	}
	if n := js.hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
}

func TestJWKSUnknownKidRefreshIsRateLimited(t *testing.T) {
	k := testKeys()
	js := newJWKSServer(t, jwk("k1", k.ec, "sig", ""))
	clk := newClock()
	v, _ := newVerifier(VerifierOptions{JWKSURL: js.URL}, clk.now)
	ctx := context.Background()
	forged := func(kid string) string {
		return sign(t, jwt.SigningMethodES256, k.ec2, kid, claimsAt(clk.now(), nil))
	}

	for i := range 20 {
		if _, err := v.Verify(ctx, forged("forged-"+string(rune('a'+i)))); !errors.Is(err, ErrInvalid) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := js.hits.Load(); n != 1 {
		t.Fatalf("20 unknown kids fetched the JWKS %d times, want 1", n)
	}

	// k2 is published, but a fetch is not due yet: refused until it is.
	js.setKeys(t, jwk("k1", k.ec, "sig", ""), jwk("k2", k.ec2, "sig", ""))
	clk.advance(DefaultJWKSMinRefresh - time.Second)
	if _, err := v.Verify(ctx, forged("k2")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("k2 accepted before a fetch was due: %v", err)
	}
	clk.advance(time.Second)
	if _, err := v.Verify(ctx, forged("k2")); err != nil {
		t.Fatalf("k2 once a fetch was due: %v", err)
	}
	if n := js.hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
}

func TestJWKSConcurrentMissesShareOneFetch(t *testing.T) {
	k := testKeys()
	js := newJWKSServer(t, jwk("k1", k.rsa, "sig", ""))
	gate := make(chan struct{})
	js.setGate(gate)
	clk := newClock()
	v, _ := newVerifier(VerifierOptions{JWKSURL: js.URL}, clk.now)
	raw := sign(t, jwt.SigningMethodRS256, k.rsa, "k1", claimsAt(clk.now(), nil))

	const n = 16
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), raw)
			errs <- err
		})
	}
	waitFor(t, "the fetch to start", func() bool { return js.hits.Load() == 1 })
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if got := js.hits.Load(); got != 1 {
		t.Fatalf("%d concurrent misses fetched the JWKS %d times, want 1", n, got)
	}
}

func TestJWKSPeriodicRefreshDropsRemovedKeys(t *testing.T) {
	k := testKeys()
	js := newJWKSServer(t, jwk("old", k.ec, "sig", ""))
	clk := newClock()
	v, _ := newVerifier(VerifierOptions{JWKSURL: js.URL, JWKSRefresh: time.Hour}, clk.now)
	ctx := context.Background()
	old := func() string { return sign(t, jwt.SigningMethodES256, k.ec, "old", claimsAt(clk.now(), nil)) }
	next := func() string { return sign(t, jwt.SigningMethodES256, k.ec2, "new", claimsAt(clk.now(), nil)) }

	if _, err := v.Verify(ctx, old()); err != nil {
		t.Fatal(err)
	}
	js.setKeys(t, jwk("new", k.ec2, "sig", ""))
	clk.advance(59 * time.Minute)
	if _, err := v.Verify(ctx, old()); err != nil {
		t.Fatalf("cached key before the refresh interval: %v", err)
	}
	if n := js.hits.Load(); n != 1 {
		t.Fatalf("fetched %d times before the refresh interval, want 1", n)
	}

	// Due: the stale set still answers while a refresh runs behind it.
	clk.advance(time.Minute)
	if _, err := v.Verify(ctx, old()); err != nil {
		t.Fatalf("stale key while refreshing: %v", err)
	}
	waitFor(t, "the background refresh", func() bool { return js.hits.Load() == 2 })
	if _, err := v.Verify(ctx, next()); err != nil {
		t.Fatalf("new key after the refresh: %v", err)
	}
	if _, err := v.Verify(ctx, old()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("removed key still verifies after the refresh: %v", err)
	}
}

func TestJWKSFailedRefreshKeepsCachedKeys(t *testing.T) {
	k := testKeys()
	js := newJWKSServer(t, jwk("k1", k.ec, "sig", ""))
	clk := newClock()
	v, _ := newVerifier(VerifierOptions{JWKSURL: js.URL}, clk.now)
	ctx := context.Background()
	k1 := func() string { return sign(t, jwt.SigningMethodES256, k.ec, "k1", claimsAt(clk.now(), nil)) }

	if _, err := v.Verify(ctx, k1()); err != nil {
		t.Fatal(err)
	}
	js.setResponse(http.StatusInternalServerError, []byte("down"))
	clk.advance(DefaultJWKSRefresh)
	if _, err := v.Verify(ctx, k1()); err != nil {
		t.Fatalf("cached key while the key server fails: %v", err)
	}
	waitFor(t, "the failed refresh", func() bool { return js.hits.Load() == 2 })
	waitFor(t, "the refresh to finish", func() bool {
		v.keys.mu.Lock()
		defer v.keys.mu.Unlock()
		return v.keys.inflight == nil
	})
	if _, err := v.Verify(ctx, k1()); err != nil {
		t.Fatalf("cached key after a failed refresh: %v", err)
	}

	// An unknown kid during the outage says the keys are unavailable, both
	// when it prompts a fetch and when the last fetch failed.
	unknown := sign(t, jwt.SigningMethodES256, k.ec2, "k2", claimsAt(clk.now(), nil))
	for _, step := range []time.Duration{DefaultJWKSMinRefresh, time.Second} {
		clk.advance(step)
		_, err := v.Verify(ctx, unknown)
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("after %v: err = %v, want ErrInvalid and ErrKeysUnavailable", step, err)
		}
	}
}

func TestJWKSUnavailable(t *testing.T) {
	k := testKeys()
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"server error", http.StatusInternalServerError, `{"keys":[]}`},
		{"not found", http.StatusNotFound, "no"},
		{"not JSON", http.StatusOK, "<html>"},
		{"no keys member", http.StatusOK, `{"data":[]}`},
		{"keys not a list", http.StatusOK, `{"keys":{}}`},
		{"too large", http.StatusOK, `{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSSize) + `"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			js := newJWKSServer(t)
			js.setResponse(tc.status, []byte(tc.body))
			v, _ := NewVerifier(VerifierOptions{JWKSURL: js.URL})
			_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodES256, k.ec, "k1", claimsAt(time.Now(), nil)))
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("err = %v, want ErrInvalid and ErrKeysUnavailable", err)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		js := newJWKSServer(t)
		js.Close()
		v, _ := NewVerifier(VerifierOptions{JWKSURL: js.URL})
		_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodES256, k.ec, "k1", claimsAt(time.Now(), nil)))
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("err = %v, want ErrInvalid and ErrKeysUnavailable", err)
		}
	})
}

func TestJWKSWaitHonoursContext(t *testing.T) {
	k := testKeys()
	js := newJWKSServer(t, jwk("k1", k.ec, "sig", ""))
	gate := make(chan struct{})
	js.setGate(gate)
	defer close(gate)
	v, _ := NewVerifier(VerifierOptions{JWKSURL: js.URL})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k.ec, "k1", claimsAt(time.Now(), nil)))
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrInvalid, ErrKeysUnavailable and the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Verify returned after %v, long past its deadline", d)
	}
}

func TestParseKeySetKeepsOnlyVerificationKeys(t *testing.T) {
	k := testKeys()
	marshal := func(key jose.JSONWebKey) json.RawMessage {
		b, err := json.Marshal(key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	private := jose.JSONWebKey{Key: k.ec, KeyID: "private"}
	cases := []struct {
		name    string
		entry   json.RawMessage
		wantKid string // empty: dropped
	}{
		{"RSA 2048", marshal(jwk("rsa", k.rsa, "sig", "")), "rsa"},
		{"P-256", marshal(jwk("ec", k.ec, "", "")), "ec"},
		{"P-384 dropped", marshal(jwk("p384", k.ec384, "", "")), ""},
		{"RSA 1024 dropped", marshal(jwk("small", k.rsaSmall, "", "")), ""},
		{"encryption key dropped", marshal(jwk("enc", k.ec, "enc", "")), ""},
		{"private key dropped", marshal(private), ""},
		{"symmetric key dropped", json.RawMessage(`{"kty":"oct","kid":"oct","k":"c2VjcmV0"}`), ""},
		{"unknown type dropped", json.RawMessage(`{"kty":"XYZ","kid":"x"}`), ""},
		{"malformed dropped", json.RawMessage(`{"kty":"EC","kid":"bad","crv":"P-256","x":"AA","y":"AA"}`), ""},
		{"not an object dropped", json.RawMessage(`"hello"`), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"keys": []json.RawMessage{tc.entry}})
			set, err := parseKeySet(body)
			if err != nil {
				t.Fatalf("parseKeySet: %v", err)
			}
			switch {
			case tc.wantKid == "" && len(set.Keys) != 0:
				t.Fatalf("kept %+v, want it dropped", set.Keys[0])
			case tc.wantKid != "" && (len(set.Keys) != 1 || set.Keys[0].KeyID != tc.wantKid):
				t.Fatalf("kept %d keys, want %q", len(set.Keys), tc.wantKid)
			}
		})
	}
}
