// Package token verifies and mints the user tokens Herald accepts: JWTs
// with sub (the user), exp, and a session id (sid, else jti), signed HS256
// with a shared secret or RS256/ES256 with keys published as a JWKS.
package token

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalid wraps every reason a token is refused; callers answer 401.
var ErrInvalid = errors.New("invalid token")

// Claims are the parts of a token Herald uses.
type Claims struct {
	Subject   string
	SessionID string
	ExpiresAt time.Time
}

// VerifierOptions configure a Verifier. At least one of Secret and JWKSURL
// must be set.
type VerifierOptions struct {
	Secret   []byte        // HS256 secret
	JWKSURL  string        // RS256/ES256 keys
	Issuer   string        // required iss when set
	Audience string        // required aud when set
	Leeway   time.Duration // clock skew allowed (default 30s)
	JWKS     JWKSOptions
}

// Verifier checks user tokens.
type Verifier struct {
	opts VerifierOptions
	jwks *jwks
}

// NewVerifier returns a verifier for opts.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	if len(opts.Secret) == 0 && opts.JWKSURL == "" {
		return nil, errors.New("token: a secret or a JWKS URL is required")
	}
	if opts.Leeway == 0 {
		opts.Leeway = 30 * time.Second
	}
	v := &Verifier{opts: opts}
	if opts.JWKSURL != "" {
		v.jwks = newJWKS(opts.JWKSURL, opts.JWKS)
	}
	return v, nil
}

type claims struct {
	jwt.RegisteredClaims
	SID string `json:"sid,omitempty"`
}

// Verify parses and checks raw, returning its claims.
func (v *Verifier) Verify(ctx context.Context, raw string) (Claims, error) {
	if len(raw) > 8192 {
		return Claims{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	methods := make([]string, 0, 3)
	if len(v.opts.Secret) > 0 {
		methods = append(methods, "HS256")
	}
	if v.jwks != nil {
		methods = append(methods, "RS256", "ES256")
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.opts.Leeway),
	}
	if v.opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(v.opts.Issuer))
	}
	if v.opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(v.opts.Audience))
	}
	var c claims
	_, err := jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case "HS256":
			// The secret only ever verifies HS256: a public key is never
			// used as an HMAC secret.
			return v.opts.Secret, nil
		case "RS256", "ES256":
			kid, _ := t.Header["kid"].(string)
			return v.jwks.key(ctx, kid, t.Method.Alg())
		}
		return nil, fmt.Errorf("unexpected algorithm %s", t.Method.Alg())
	}, popts...)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Subject == "" {
		return Claims{}, fmt.Errorf("%w: sub is required", ErrInvalid)
	}
	out := Claims{Subject: c.Subject, SessionID: c.SID}
	if out.SessionID == "" {
		out.SessionID = c.ID
	}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	return out, nil
}

// Mint signs an HS256 token for c; used by development tools and tests.
func Mint(secret []byte, c Claims) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("token: empty secret")
	}
	if c.Subject == "" || c.ExpiresAt.IsZero() {
		return "", errors.New("token: subject and expiry are required")
	}
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			IssuedAt:  jwt.NewNumericDate(now),
		},
		SID: c.SessionID,
	})
	s, err := t.SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// NewSessionID returns a random session id.
func NewSessionID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// APIKeyEqual compares API keys in constant time.
func APIKeyEqual(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
