package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// JWKSOptions tune the key cache.
type JWKSOptions struct {
	Client     *http.Client  // default: 10 s timeout
	Refresh    time.Duration // periodic refresh (default 1h)
	MinRefresh time.Duration // at most one fetch per this on unknown kids (default 30s)
}

// jwks caches the keys of a JWKS URL, refreshing periodically and when a
// token names a key it does not know, at most once per MinRefresh.
type jwks struct {
	url  string
	opts JWKSOptions

	mu      sync.Mutex
	keys    map[string]any
	fetched time.Time
	tried   time.Time
}

func newJWKS(url string, opts JWKSOptions) *jwks {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Refresh <= 0 {
		opts.Refresh = time.Hour
	}
	if opts.MinRefresh <= 0 {
		opts.MinRefresh = 30 * time.Second
	}
	return &jwks{url: url, opts: opts}
}

func (j *jwks) key(ctx context.Context, kid, alg string) (any, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	k, ok := j.keys[kid]
	stale := time.Since(j.fetched) > j.opts.Refresh
	if (!ok || stale) && time.Since(j.tried) >= j.opts.MinRefresh {
		j.tried = time.Now()
		keys, err := j.fetch(ctx)
		if err != nil && j.keys == nil {
			return nil, err
		}
		if err == nil {
			j.keys, j.fetched = keys, time.Now()
		}
		k, ok = j.keys[kid]
	}
	if !ok {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	switch k.(type) {
	case *rsa.PublicKey:
		if alg != "RS256" {
			return nil, fmt.Errorf("key %q is RSA, token says %s", kid, alg)
		}
	case *ecdsa.PublicKey:
		if alg != "ES256" {
			return nil, fmt.Errorf("key %q is ECDSA, token says %s", kid, alg)
		}
	}
	return k, nil
}

func (j *jwks) fetch(ctx context.Context) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	resp, err := j.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks fetch: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("jwks read: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("jwks parse: %w", err)
	}
	keys := make(map[string]any, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch pk := k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			keys[k.KeyID] = pk
		}
	}
	return keys, nil
}
