package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMintRoundTrip(t *testing.T) {
	v, err := NewVerifier(VerifierOptions{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	cases := []struct {
		name string
		in   Claims
	}{
		{"with session", Claims{Subject: "bob", SessionID: "s9", ExpiresAt: exp}},
		{"without session", Claims{Subject: "carol", ExpiresAt: exp}},
		{"unicode subject", Claims{Subject: "zoë@example.com", SessionID: NewSessionID(), ExpiresAt: exp}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := Mint(testSecret, tc.in)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if alg := headerAlg(t, raw); alg != "HS256" {
				t.Fatalf("alg = %q, want HS256", alg)
			}
			got, err := v.Verify(context.Background(), raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Subject != tc.in.Subject || got.SessionID != tc.in.SessionID || !got.ExpiresAt.Equal(tc.in.ExpiresAt) {
				t.Fatalf("claims = %+v, want %+v", got, tc.in)
			}
		})
	}
}

func headerAlg(t *testing.T, raw string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Alg string }
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Alg
}

func TestMintRejects(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	cases := []struct {
		name   string
		secret []byte
		c      Claims
	}{
		{"no secret", nil, Claims{Subject: "a", ExpiresAt: exp}},
		{"short secret", []byte("0123456789abcde"), Claims{Subject: "a", ExpiresAt: exp}},
		{"no subject", testSecret, Claims{ExpiresAt: exp}},
		{"no expiry", testSecret, Claims{Subject: "a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if raw, err := Mint(tc.secret, tc.c); err == nil {
				t.Fatalf("Mint = %q, want an error", raw)
			}
		})
	}
}

func TestNewSessionIDIsUniqueAndURLSafe(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewSessionID()
		if len(id) != 22 {
			t.Fatalf("len(%q) = %d, want 22", id, len(id))
		}
		if strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("%q is not URL-safe", id)
		}
		if seen[id] {
			t.Fatalf("duplicate session id %q", id)
		}
		seen[id] = true
	}
}

func TestAPIKeyEqual(t *testing.T) {
	cases := []struct {
		name      string
		got, want string
		equal     bool
	}{
		{"same", "hk_abc123", "hk_abc123", true},
		{"last byte differs", "hk_abc124", "hk_abc123", false},
		{"prefix", "hk_abc", "hk_abc123", false},
		{"longer", "hk_abc1234", "hk_abc123", false},
		{"case differs", "HK_ABC123", "hk_abc123", false},
		{"empty got", "", "hk_abc123", false},
		{"unset key never matches", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := APIKeyEqual(tc.got, tc.want); got != tc.equal {
				t.Fatalf("APIKeyEqual(%q, %q) = %v, want %v", tc.got, tc.want, got, tc.equal)
			}
		})
	}
}
