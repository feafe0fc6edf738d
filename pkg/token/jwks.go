package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// maxJWKSSize bounds a key set download; real sets are a few KiB.
const maxJWKSSize = 1 << 20

// minRSABits is the smallest RSA modulus accepted from a key set.
const minRSABits = 2048

// keySet caches the verification keys published at a JWKS URL.
//
// A kid missing from the cache prompts a fetch that every caller waiting
// for it shares, at most one per minRefresh. A cache older than refresh is
// fetched again in the background while the cached keys keep serving, and
// a failed fetch keeps them too: a key server outage does not log everyone
// out, and a removed key stops verifying once the server answers again.
type keySet struct {
	url        string
	client     *http.Client
	refresh    time.Duration
	minRefresh time.Duration
	now        func() time.Time

	mu        sync.Mutex
	set       jose.JSONWebKeySet // usable keys only, see parseKeySet
	fetchedAt time.Time          // last successful fetch; zero before it
	triedAt   time.Time          // start of the last fetch, whatever its outcome
	lastErr   error              // outcome of the last finished fetch
	inflight  *fetchCall         // the fetch under way, if any
}

// fetchCall is one fetch; err is set before done is closed.
type fetchCall struct {
	done chan struct{}
	err  error
}

func newKeySet(opts VerifierOptions, now func() time.Time) *keySet {
	s := &keySet{
		url:        opts.JWKSURL,
		client:     opts.HTTPClient,
		refresh:    opts.JWKSRefresh,
		minRefresh: opts.JWKSMinRefresh,
		now:        now,
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: defaultFetchTimeout}
	}
	if s.refresh == 0 {
		s.refresh = DefaultJWKSRefresh
	}
	if s.minRefresh == 0 {
		s.minRefresh = DefaultJWKSMinRefresh
	}
	return s
}

// lookup returns the key (or keys, as a jwt.VerificationKeySet) that may
// verify a token signed with alg whose header names kid. An empty kid
// selects every cached key that fits alg.
func (s *keySet) lookup(ctx context.Context, kid, alg string) (any, error) {
	s.mu.Lock()
	now := s.now()
	key, known, err := s.match(kid, alg)
	if known {
		if now.Sub(s.fetchedAt) >= s.refresh && s.mayFetch(now) {
			s.start(now)
		}
		s.mu.Unlock()
		return key, err
	}
	call := s.inflight
	if call == nil {
		if !s.mayFetch(now) {
			lastErr := s.lastErr
			s.mu.Unlock()
			if lastErr != nil {
				return nil, fmt.Errorf("unknown key id %q: %w", kid, lastErr)
			}
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		call = s.start(now)
	}
	s.mu.Unlock()

	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the JWKS: %w", ErrKeysUnavailable, context.Cause(ctx))
	}
	if call.err != nil {
		return nil, call.err
	}
	s.mu.Lock()
	key, known, err = s.match(kid, alg)
	s.mu.Unlock()
	if !known {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	return key, err
}

// mayFetch reports whether a new fetch may start now. Callers hold mu.
func (s *keySet) mayFetch(now time.Time) bool {
	return s.inflight == nil && (s.triedAt.IsZero() || now.Sub(s.triedAt) >= s.minRefresh)
}

// start begins a fetch in its own goroutine, which ends when the download
// does (bounded by defaultFetchTimeout and the client's timeout). It is not
// tied to the context of the request that prompted it, since every waiting
// request shares its result. Callers hold mu.
func (s *keySet) start(now time.Time) *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	s.inflight, s.triedAt = call, now
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), defaultFetchTimeout)
		defer cancel()
		set, err := s.download(ctx)
		if err != nil {
			err = fmt.Errorf("%w: fetch JWKS: %w", ErrKeysUnavailable, err)
		}
		s.mu.Lock()
		if err == nil {
			s.set, s.fetchedAt = set, s.now()
		}
		s.lastErr, s.inflight, call.err = err, nil, err
		s.mu.Unlock()
		close(call.done)
	}()
	return call
}

// match finds the cached keys for kid that fit alg. known reports whether
// the cache can answer at all: false sends the caller to fetch. A kid that
// is cached but of another kind than alg needs is known, and an error.
// Callers hold mu.
func (s *keySet) match(kid, alg string) (key any, known bool, err error) {
	var fit []jwt.VerificationKey
	for _, k := range s.set.Keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if kid != "" {
			known = true
		}
		if fits(k, alg) {
			fit = append(fit, k.Key)
		}
	}
	switch {
	case len(fit) == 1:
		return fit[0], true, nil
	case len(fit) > 1:
		// Key ids need not be unique (RFC 7517 §4.5); try each.
		return jwt.VerificationKeySet{Keys: fit}, true, nil
	case known:
		return nil, true, fmt.Errorf("key %q cannot verify %s", kid, alg)
	default:
		return nil, false, nil
	}
}

// fits reports whether k may verify a token signed with alg. Only public
// keys pass parseKeySet, so a symmetric key from a JWKS never gets here.
func fits(k jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return alg == jwt.SigningMethodRS256.Alg()
	case *ecdsa.PublicKey:
		return alg == jwt.SigningMethodES256.Alg() && pk.Curve == elliptic.P256()
	default:
		return false
	}
}

// download GETs and parses the key set.
func (s *keySet) download(ctx context.Context) (jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return jose.JSONWebKeySet{}, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("read: %w", err)
	}
	if len(body) > maxJWKSSize {
		return jose.JSONWebKeySet{}, fmt.Errorf("larger than %d bytes", maxJWKSSize)
	}
	return parseKeySet(body)
}

// parseKeySet decodes a JWKS document, keeping the keys Herald may verify
// with: public RSA keys of at least minRSABits and public P-256 keys, whose
// use is unset or "sig". Each key is decoded on its own so that one key of
// a type go-jose does not know (RFC 7517 §5 says to ignore those) does not
// discard the whole set. Private and symmetric keys are dropped: a JWKS is
// public, and a symmetric key in it would let anyone mint tokens.
func parseKeySet(body []byte) (jose.JSONWebKeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("parse: %w", err)
	}
	if doc.Keys == nil {
		return jose.JSONWebKeySet{}, errors.New("parse: no keys member")
	}
	var set jose.JSONWebKeySet
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := json.Unmarshal(raw, &k); err != nil {
			continue
		}
		if (k.Use != "" && k.Use != "sig") || !k.IsPublic() {
			continue
		}
		switch pk := k.Key.(type) {
		case *rsa.PublicKey:
			if pk.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey:
			if pk.Curve != elliptic.P256() {
				continue
			}
		default:
			continue
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}
