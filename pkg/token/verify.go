package token

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of [VerifierOptions].
const (
	DefaultLeeway         = 30 * time.Second
	DefaultJWKSRefresh    = time.Hour
	DefaultJWKSMinRefresh = 30 * time.Second
	defaultFetchTimeout   = 10 * time.Second
)

// VerifierOptions configure a [Verifier]. At least one of Secret and
// JWKSURL must be set; with both, HS256 tokens are checked against the
// secret and RS256/ES256 tokens against the JWKS.
type VerifierOptions struct {
	// Secret verifies HS256 tokens, and nothing else. Empty disables HS256.
	Secret []byte
	// JWKSURL is an http(s) URL serving a JSON Web Key Set whose RSA
	// (2048 bits or more) and P-256 keys verify RS256 and ES256 tokens.
	// Empty disables both algorithms.
	JWKSURL string
	// Issuer, when set, must equal the iss claim.
	Issuer string
	// Audience, when set, must be one of the aud claim's values.
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// DefaultLeeway; negative means none.
	Leeway time.Duration
	// HTTPClient fetches the JWKS. Nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// JWKSRefresh is the age after which the key set is fetched again in
	// the background, on the next verification that uses it. Zero means
	// DefaultJWKSRefresh.
	JWKSRefresh time.Duration
	// JWKSMinRefresh is the least time between two fetches prompted by
	// unknown key ids (or by failures), so a stream of forged kids cannot
	// hammer the key server. Zero means DefaultJWKSMinRefresh.
	JWKSMinRefresh time.Duration
}

// Verifier checks user tokens. It is safe for concurrent use.
type Verifier struct {
	secret []byte
	keys   *keySet // nil without a JWKS URL
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for opts. It does no I/O: the JWKS is
// fetched by the first Verify that needs it.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	return newVerifier(opts, time.Now)
}

// newVerifier is NewVerifier with a clock, so tests can move time.
func newVerifier(opts VerifierOptions, now func() time.Time) (*Verifier, error) {
	if len(opts.Secret) == 0 && opts.JWKSURL == "" {
		return nil, errors.New("token verifier: a secret or a JWKS URL is required")
	}
	if len(opts.Secret) > 0 && len(opts.Secret) < MinSecretLen {
		return nil, fmt.Errorf("token verifier: secret must be at least %d bytes", MinSecretLen)
	}
	if opts.JWKSRefresh < 0 || opts.JWKSMinRefresh < 0 {
		return nil, errors.New("token verifier: JWKS refresh intervals must not be negative")
	}
	switch {
	case opts.Leeway == 0:
		opts.Leeway = DefaultLeeway
	case opts.Leeway < 0:
		opts.Leeway = 0
	}

	v := &Verifier{}
	var methods []string
	if len(opts.Secret) > 0 {
		// Copied so a caller reusing its slice cannot change the key.
		v.secret = append([]byte(nil), opts.Secret...)
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if opts.JWKSURL != "" {
		u, err := url.Parse(opts.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("token verifier: the JWKS URL must be an absolute http(s) URL")
		}
		v.keys = newKeySet(opts, now)
		methods = append(methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}

	popts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(now),
	}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	v.parser = jwt.NewParser(popts...)
	return v, nil
}

// Verify checks raw's signature, algorithm, expiry (with leeway), not-before
// and, when configured, issuer and audience, and returns its claims. A
// token without sub or exp is refused. Every error wraps [ErrInvalid].
//
// Verify does network I/O only when the token names a JWKS key not yet
// cached (at most one fetch per JWKSMinRefresh, shared by concurrent
// callers, bounded by ctx); a due periodic refresh runs in the background.
func (v *Verifier) Verify(ctx context.Context, raw string) (Claims, error) {
	if raw == "" {
		return Claims{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(raw) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, maxTokenLen)
	}
	var c jwtClaims
	_, err := v.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		return v.key(ctx, t)
	})
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.Subject == "" {
		return Claims{}, fmt.Errorf("%w: sub claim is required", ErrInvalid)
	}
	return c.claims(), nil
}

// key returns the key that may verify t. The parser has already refused
// algorithms outside the configured set; the switch repeats the pinning so
// that each kind of key only ever meets its own algorithms.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: a token with critical extensions we do not
		// implement must be refused.
		return nil, errors.New("crit header is not supported")
	}
	switch alg := t.Method.Alg(); alg {
	case jwt.SigningMethodHS256.Alg():
		if v.secret == nil {
			return nil, errors.New("HS256 is not accepted")
		}
		return v.secret, nil
	case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg():
		if v.keys == nil {
			return nil, fmt.Errorf("%s is not accepted", alg)
		}
		var kid string
		if h, ok := t.Header["kid"]; ok {
			if kid, ok = h.(string); !ok {
				return nil, errors.New("kid header must be a string")
			}
		}
		return v.keys.lookup(ctx, kid, alg)
	default:
		return nil, fmt.Errorf("%s is not accepted", alg)
	}
}
