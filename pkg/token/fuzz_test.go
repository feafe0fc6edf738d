package token

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary input to the token parser of a verifier that
// accepts HS256, RS256 and ES256. Its JWKS cache is filled in advance and
// marked fresh, so no input reaches the network. Whatever the input, Verify
// must not panic, must wrap ErrInvalid when it refuses, and must never
// accept a token without a subject or an expiry.
func FuzzVerify(f *testing.F) {
	k := testKeys()
	clk := newClock()
	v, err := newVerifier(VerifierOptions{
		Secret:         testSecret,
		JWKSURL:        "http://127.0.0.1:1/jwks.json",
		JWKSRefresh:    1000 * time.Hour,
		JWKSMinRefresh: 1000 * time.Hour,
	}, clk.now)
	if err != nil {
		f.Fatal(err)
	}
	v.keys.set = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk("rsa1", k.rsa, "sig", ""), jwk("ec1", k.ec, "sig", "")}}
	v.keys.fetchedAt, v.keys.triedAt = t0, t0

	now := clk.now()
	f.Add(sign(f, jwt.SigningMethodHS256, testSecret, "", claimsAt(now, jwt.MapClaims{"sid": "s"})))
	f.Add(sign(f, jwt.SigningMethodRS256, k.rsa, "rsa1", claimsAt(now, nil)))
	f.Add(sign(f, jwt.SigningMethodES256, k.ec, "ec1", claimsAt(now, jwt.MapClaims{"jti": "j"})))
	f.Add(sign(f, jwt.SigningMethodES256, k.ec, "", claimsAt(now, nil)))
	f.Add(sign(f, jwt.SigningMethodHS256, testSecret, "", claimsAt(now, jwt.MapClaims{"exp": nil})))
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claimsAt(now, nil)))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJIUzI1NiIsImtpZCI6e319.e30.AAAA")
	f.Add("...")
	f.Add("")

	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(context.Background(), raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if c != (Claims{}) {
				t.Fatalf("claims %+v returned with an error", c)
			}
			return
		}
		if c.Subject == "" || c.ExpiresAt.IsZero() {
			t.Fatalf("accepted %q with claims %+v", raw, c)
		}
	})
}
