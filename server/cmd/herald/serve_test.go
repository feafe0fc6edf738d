package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/server/config"
)

func TestDemoModeOnlyWhenAskedOrTrueZeroConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		demo     bool
		wantAddr string
	}{
		{name: "true zero-config", demo: true, wantAddr: "127.0.0.1:8080"},
		{name: "zero-config with an address", env: map[string]string{"HERALD_ADDR": ":9000"}, demo: true, wantAddr: ":9000"},
		{name: "zero-config, demo refused", args: []string{"--demo=false"}, demo: false, wantAddr: ":8080"},
		{name: "JWT secret without API key", env: map[string]string{"HERALD_JWT_SECRET": strings.Repeat("s", 32)}, demo: false, wantAddr: ":8080"},
		{name: "API key without JWT secret", env: map[string]string{"HERALD_API_KEY": "k"}, demo: false, wantAddr: ":8080"},
		{name: "JWKS without API key", env: map[string]string{"HERALD_JWKS_URL": "https://idp.example/jwks"}, demo: false, wantAddr: ":8080"},
		{name: "both configured", env: map[string]string{"HERALD_JWT_SECRET": strings.Repeat("s", 32), "HERALD_API_KEY": "k"}, demo: false, wantAddr: ":8080"},
		{name: "secret configured, demo asked for", env: map[string]string{"HERALD_JWT_SECRET": strings.Repeat("s", 32), "HERALD_DEMO": "true"}, demo: true, wantAddr: ":8080"},
		{name: "explicit false beats the file's true", args: []string{"--demo=false"}, env: map[string]string{"HERALD_DEMO": "true"}, demo: false, wantAddr: ":8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"HERALD_DATA_DIR": t.TempDir()}
			for k, v := range tc.env {
				env[k] = v
			}
			cfg, err := config.Load(tc.args, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := resolveSecrets(cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.Demo != tc.demo || cfg.Addr != tc.wantAddr {
				t.Fatalf("demo=%v addr=%q, want demo=%v addr=%q", cfg.Demo, cfg.Addr, tc.demo, tc.wantAddr)
			}
			if cfg.JWTSecret == "" && cfg.JWKSURL == "" || cfg.APIKey == "" {
				t.Fatal("secrets left unresolved")
			}
			if !cfg.Demo && cfg.TalkJSSecret != "" {
				t.Fatal("outside demo mode no provider secret is made up")
			}
		})
	}
}

// TestConfiguredSecretNeverMintsDemoTokens is the reporter's case, black
// box: the operator's real secret set, the API key left out.
func TestConfiguredSecretNeverMintsDemoTokens(t *testing.T) {
	n := startProcess(t, "HERALD_DATA_DIR="+t.TempDir(), "HERALD_JWT_SECRET="+procSecret)
	resp, err := http.Post(n.base+"/demo/token", "application/json", bytes.NewReader([]byte(`{"user":"alice"}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /demo/token with a configured secret: %d, want 404", resp.StatusCode)
	}
	if strings.Contains(n.out.String(), "DEMO MODE") {
		t.Fatal("start-up announced demo mode")
	}
}

func TestZeroConfigAnnouncesDemoMode(t *testing.T) {
	n := startProcess(t, "HERALD_DATA_DIR="+t.TempDir())
	waitUntil(t, "demo warning", func() bool { return strings.Contains(n.out.String(), "DEMO MODE") })
	out := n.out.String()
	if !strings.Contains(out, "mints a token for any user") || !strings.Contains(out, "Demo page: "+n.base+"/") {
		t.Fatalf("warning does not say what demo mode gives away and where the page is:\n%s", out)
	}
}

func TestMetricsOffOrOnTheirOwnListener(t *testing.T) {
	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	off := startProcess(t, "HERALD_DATA_DIR="+t.TempDir(), "HERALD_JWT_SECRET="+procSecret, "HERALD_API_KEY="+procAPIKey, "HERALD_METRICS=false")
	if got := status(off.base + "/metrics"); got != http.StatusNotFound {
		t.Errorf("HERALD_METRICS=false: /metrics answered %d, want 404", got)
	}
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	apart := startProcess(t, "HERALD_DATA_DIR="+t.TempDir(), "HERALD_JWT_SECRET="+procSecret, "HERALD_API_KEY="+procAPIKey, "HERALD_METRICS_ADDR="+maddr)
	if got := status(apart.base + "/metrics"); got != http.StatusNotFound {
		t.Errorf("with HERALD_METRICS_ADDR the public /metrics answered %d, want 404", got)
	}
	if got := status("http://" + maddr + "/metrics"); got != http.StatusOK {
		t.Errorf("/metrics on HERALD_METRICS_ADDR answered %d, want 200", got)
	}
}

// TestRedisFormsNeverGenerateSecrets: in every Redis form the nodes must
// share their secrets, so none is generated into one node's data dir.
func TestRedisFormsNeverGenerateSecrets(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"url":      {"HERALD_REDIS_URL": "redis://127.0.0.1:6379/0"},
		"cluster":  {"HERALD_REDIS_CLUSTER_ADDRS": "127.0.0.1:7000,127.0.0.1:7001"},
		"sentinel": {"HERALD_REDIS_SENTINEL_ADDRS": "127.0.0.1:26379", "HERALD_REDIS_SENTINEL_MASTER": "m"},
	} {
		t.Run(name, func(t *testing.T) {
			env["HERALD_DATA_DIR"] = t.TempDir()
			cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			_, err = resolveSecrets(cfg)
			if err == nil || !strings.Contains(err.Error(), "HERALD_API_KEY must be set") {
				t.Fatalf("resolveSecrets: %v, want the shared-secrets error", err)
			}
			if cfg.APIKey != "" || cfg.JWTSecret != "" {
				t.Fatal("a secret was generated")
			}
		})
	}
}
