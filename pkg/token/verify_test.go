package token

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyHS256(t *testing.T) {
	clk := newClock()
	v, err := newVerifier(VerifierOptions{Secret: testSecret}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	now := clk.now()
	hs := func(extra jwt.MapClaims) string {
		return sign(t, jwt.SigningMethodHS256, testSecret, "", claimsAt(now, extra))
	}
	valid := hs(nil)
	parts := strings.Split(valid, ".")
	forgedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","exp":` + strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + `}`))
	k := testKeys()

	cases := []struct {
		name    string
		token   string
		wantSID string
		wantErr error // besides ErrInvalid; nil means success
	}{
		{name: "valid", token: valid},
		{name: "sid is the session", token: hs(jwt.MapClaims{"sid": "s1"}), wantSID: "s1"},
		{name: "jti is the session without sid", token: hs(jwt.MapClaims{"jti": "j1"}), wantSID: "j1"},
		{name: "sid wins over jti", token: hs(jwt.MapClaims{"sid": "s1", "jti": "j1"}), wantSID: "s1"},
		{name: "expired within leeway", token: hs(jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()})},
		{name: "not before within leeway", token: hs(jwt.MapClaims{"nbf": now.Add(10 * time.Second).Unix()})},
		{name: "issuer and audience ignored when not configured", token: hs(jwt.MapClaims{"iss": "x", "aud": "y"})},

		{name: "expired", token: hs(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()}), wantErr: jwt.ErrTokenExpired},
		{name: "missing exp", token: hs(jwt.MapClaims{"exp": nil}), wantErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "not yet valid", token: hs(jwt.MapClaims{"nbf": now.Add(5 * time.Minute).Unix()}), wantErr: jwt.ErrTokenNotValidYet},
		{name: "missing sub", token: hs(jwt.MapClaims{"sub": nil}), wantErr: ErrInvalid},
		{name: "empty sub", token: hs(jwt.MapClaims{"sub": ""}), wantErr: ErrInvalid},
		{name: "sub not a string", token: hs(jwt.MapClaims{"sub": 42}), wantErr: jwt.ErrTokenMalformed},
		{name: "exp not a number", token: hs(jwt.MapClaims{"exp": "tomorrow"}), wantErr: jwt.ErrTokenMalformed},
		{name: "sid not a string", token: hs(jwt.MapClaims{"sid": 7}), wantErr: jwt.ErrTokenMalformed},
		{name: "wrong secret", token: sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret!!"), "", claimsAt(now, nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "tampered payload", token: parts[0] + "." + forgedPayload + "." + parts[2], wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "signature stripped", token: parts[0] + "." + parts[1] + ".", wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "HS384 refused", token: sign(t, jwt.SigningMethodHS384, testSecret, "", claimsAt(now, nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "HS512 refused", token: sign(t, jwt.SigningMethodHS512, testSecret, "", claimsAt(now, nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "alg none refused", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claimsAt(now, nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "RS256 refused without a JWKS", token: sign(t, jwt.SigningMethodRS256, k.rsa, "k1", claimsAt(now, nil)), wantErr: jwt.ErrTokenSignatureInvalid},
		{name: "crit header refused", token: withHeader(t, "crit", []string{"exp"}, claimsAt(now, nil)), wantErr: jwt.ErrTokenUnverifiable},
		{name: "empty", token: "", wantErr: ErrInvalid},
		{name: "garbage", token: "not a token", wantErr: jwt.ErrTokenMalformed},
		{name: "two segments", token: parts[0] + "." + parts[1], wantErr: jwt.ErrTokenMalformed},
		{name: "bad base64", token: "eyJ!.eyJ!.sig", wantErr: jwt.ErrTokenMalformed},
		{name: "too long", token: valid + strings.Repeat("A", maxTokenLen), wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Subject != "alice" || c.SessionID != tc.wantSID || c.ExpiresAt.IsZero() {
					t.Fatalf("claims = %+v, want sub alice, session %q, an expiry", c, tc.wantSID)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want ErrInvalid wrapping %v", err, tc.wantErr)
			}
			if c != (Claims{}) {
				t.Fatalf("claims %+v returned with an error", c)
			}
		})
	}
}

// withHeader signs an HS256 token with an extra header field.
func withHeader(t *testing.T, name string, value any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header[name] = value
	s, err := tok.SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyExpiresAtAndSubject(t *testing.T) {
	clk := newClock()
	v, _ := newVerifier(VerifierOptions{Secret: testSecret}, clk.now)
	exp := clk.now().Add(90 * time.Minute)
	raw := sign(t, jwt.SigningMethodHS256, testSecret, "", jwt.MapClaims{"sub": "bob", "exp": exp.Unix(), "sid": "s-1"})
	got, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{Subject: "bob", SessionID: "s-1", ExpiresAt: exp}
	if got.Subject != want.Subject || got.SessionID != want.SessionID || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("claims = %+v, want %+v", got, want)
	}
}

func TestVerifyIssuerAndAudience(t *testing.T) {
	clk := newClock()
	v, err := newVerifier(VerifierOptions{Secret: testSecret, Issuer: "https://auth.example", Audience: "herald"}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		extra   jwt.MapClaims
		wantErr error
	}{
		{"both match", jwt.MapClaims{"iss": "https://auth.example", "aud": "herald"}, nil},
		{"audience list contains ours", jwt.MapClaims{"iss": "https://auth.example", "aud": []string{"other", "herald"}}, nil},
		{"wrong issuer", jwt.MapClaims{"iss": "https://evil.example", "aud": "herald"}, jwt.ErrTokenInvalidIssuer},
		{"missing issuer", jwt.MapClaims{"aud": "herald"}, jwt.ErrTokenRequiredClaimMissing},
		{"wrong audience", jwt.MapClaims{"iss": "https://auth.example", "aud": "other"}, jwt.ErrTokenInvalidAudience},
		{"missing audience", jwt.MapClaims{"iss": "https://auth.example"}, jwt.ErrTokenRequiredClaimMissing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := sign(t, jwt.SigningMethodHS256, testSecret, "", claimsAt(clk.now(), tc.extra))
			_, err := v.Verify(context.Background(), raw)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want ErrInvalid wrapping %v", err, tc.wantErr)
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	cases := []struct {
		name    string
		leeway  time.Duration
		expired time.Duration // how long ago the token expired
		wantOK  bool
	}{
		{"default tolerates 10s", 0, 10 * time.Second, true},
		{"default refuses 31s", 0, 31 * time.Second, false},
		{"custom tolerates 90s", 2 * time.Minute, 90 * time.Second, true},
		{"negative means none", -1, time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			v, err := newVerifier(VerifierOptions{Secret: testSecret, Leeway: tc.leeway}, clk.now)
			if err != nil {
				t.Fatal(err)
			}
			raw := sign(t, jwt.SigningMethodHS256, testSecret, "", claimsAt(clk.now(), jwt.MapClaims{"exp": clk.now().Add(-tc.expired).Unix()}))
			_, err = v.Verify(context.Background(), raw)
			if (err == nil) != tc.wantOK {
				t.Fatalf("err = %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
}

func TestNewVerifierRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opts VerifierOptions
	}{
		{"nothing configured", VerifierOptions{}},
		{"empty secret slice", VerifierOptions{Secret: []byte{}}},
		{"short secret", VerifierOptions{Secret: []byte("short")}},
		{"JWKS URL not http", VerifierOptions{JWKSURL: "ftp://keys.example/jwks.json"}},
		{"JWKS URL relative", VerifierOptions{JWKSURL: "/jwks.json"}},
		{"JWKS URL unparsable", VerifierOptions{JWKSURL: "http://[::1"}},
		{"negative refresh", VerifierOptions{JWKSURL: "https://keys.example/jwks.json", JWKSRefresh: -time.Second}},
		{"negative min refresh", VerifierOptions{JWKSURL: "https://keys.example/jwks.json", JWKSMinRefresh: -time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := NewVerifier(tc.opts); err == nil {
				t.Fatalf("NewVerifier(%+v) = %v, want an error", tc.opts, v)
			}
		})
	}
}

func TestVerifierCopiesSecret(t *testing.T) {
	secret := append([]byte(nil), testSecret...)
	v, err := NewVerifier(VerifierOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Mint(testSecret, Claims{Subject: "alice", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	secret[0] ^= 0xff
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("changing the caller's slice changed the key: %v", err)
	}
}

// TestAlgorithmConfusion: an attacker who knows an RSA public key signs an
// HS256 token using the key's bytes as the HMAC secret. A verifier that let
// the token's alg pick how to use a JWKS key would accept it.
func TestAlgorithmConfusion(t *testing.T) {
	k := testKeys()
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkixPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})

	js := newJWKSServer(t, jwk("rsa1", k.rsa, "sig", ""))
	clk := newClock()
	verifiers := map[string]VerifierOptions{
		"JWKS only":       {JWKSURL: js.URL},
		"secret and JWKS": {Secret: testSecret, JWKSURL: js.URL},
	}
	secrets := map[string][]byte{"PKIX PEM": pkixPEM, "PKCS1 PEM": pkcs1PEM, "DER": der, "modulus": k.rsa.N.Bytes()}

	for vname, opts := range verifiers {
		v, err := newVerifier(opts, clk.now)
		if err != nil {
			t.Fatal(err)
		}
		// The kid is real: the genuine RS256 token verifies.
		if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, k.rsa, "rsa1", claimsAt(clk.now(), nil))); err != nil {
			t.Fatalf("%s: genuine RS256 token: %v", vname, err)
		}
		for sname, secret := range secrets {
			t.Run(vname+"/"+sname, func(t *testing.T) {
				forged := sign(t, jwt.SigningMethodHS256, secret, "rsa1", claimsAt(clk.now(), jwt.MapClaims{"sub": "mallory"}))
				c, err := v.Verify(context.Background(), forged)
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("HS256 token signed with the RSA public key verified: %+v, %v", c, err)
				}
			})
		}
	}
}
