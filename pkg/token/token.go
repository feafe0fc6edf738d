// Package token owns the credentials Herald accepts from callers: user
// tokens and the server API key.
//
// A user token is a JWT whose sub claim names the user and whose exp claim
// is required. Its session id is the sid claim, else jti. Tokens are signed
// either HS256 with a shared secret, or RS256/ES256 with keys the operator
// publishes as a JWKS; a [Verifier] checks both, pinning each key to the
// algorithms it may verify, so a public key is never used as an HMAC secret.
//
// [Mint] signs HS256 tokens for development tools and tests; production
// apps mint their own.
package token

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalid is wrapped by every error [Verifier.Verify] returns, whatever
// the reason (malformed, bad signature, expired, missing claim, unknown
// key): callers branch on it and answer 401.
var ErrInvalid = errors.New("invalid token")

// ErrKeysUnavailable is wrapped, alongside [ErrInvalid], when a token could
// not be checked because the JWKS could not be fetched. Callers that want to
// tell an outage from a bad token may answer 503 for it.
var ErrKeysUnavailable = errors.New("signing keys unavailable")

// MinSecretLen is the shortest HS256 secret accepted, in bytes. Shorter
// secrets can be brute-forced from a single token.
const MinSecretLen = 16

// maxTokenLen bounds the input of Verify: real tokens are well under 2 KiB,
// and the bound keeps a hostile query string from costing decode work.
const maxTokenLen = 8 << 10

// Claims are the parts of a user token Herald uses.
type Claims struct {
	// Subject is the user id (sub).
	Subject string
	// SessionID identifies the login the token belongs to: sid, else jti.
	// Devices registered with the token are bound to it. May be empty.
	SessionID string
	// ExpiresAt is the exp claim.
	ExpiresAt time.Time
}

// jwtClaims is the wire form of a token's payload.
type jwtClaims struct {
	jwt.RegisteredClaims
	SID string `json:"sid,omitempty"`
}

// claims returns what Herald uses of c.
func (c *jwtClaims) claims() Claims {
	out := Claims{Subject: c.Subject, SessionID: c.SID}
	if out.SessionID == "" {
		out.SessionID = c.ID
	}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	return out
}

// Mint returns an HS256 token for c signed with secret, with sub, exp, iat
// and, when c.SessionID is set, sid. Subject and ExpiresAt are required.
func Mint(secret []byte, c Claims) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("token mint: secret must be at least %d bytes", MinSecretLen)
	}
	if c.Subject == "" {
		return "", errors.New("token mint: subject is required")
	}
	if c.ExpiresAt.IsZero() {
		return "", errors.New("token mint: expiry is required")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			IssuedAt:  jwt.NewNumericDate(time.Now()),
		},
		SID: c.SessionID,
	})
	s, err := t.SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("token mint: sign: %w", err)
	}
	return s, nil
}

// NewSessionID returns a random session id: 128 bits, URL-safe base64
// without padding (22 characters).
func NewSessionID() string {
	var b [16]byte
	// crypto/rand.Read never fails; it aborts the program if the system
	// cannot provide randomness.
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// APIKeyEqual reports whether got equals want, in time that depends only on
// their lengths, so a caller cannot learn the key byte by byte. An empty
// want never matches: an unset key must not open the API.
func APIKeyEqual(got, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
