package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Secrets are the credentials zero-config mode generates on first start and
// keeps in the data directory, so tokens and API keys survive restarts.
type Secrets struct {
	JWTSecret string `json:"jwt_secret"`
	APIKey    string `json:"api_key"`
	// Webhook credentials, so the demo page can send signed sample
	// webhooks through a zero-config node.
	TalkJSSecret      string `json:"talkjs_secret,omitempty"`
	CometChatUser     string `json:"cometchat_user,omitempty"`
	CometChatPassword string `json:"cometchat_password,omitempty"`
	WebhookSecret     string `json:"webhook_secret,omitempty"`
}

const secretsFile = "secrets.json"

// LoadSecrets reads the persisted secrets of dataDir.
func LoadSecrets(dataDir string) (Secrets, error) {
	var s Secrets
	b, err := os.ReadFile(filepath.Join(dataDir, secretsFile))
	if err != nil {
		return s, fmt.Errorf("read secrets: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parse %s: %w", secretsFile, err)
	}
	return s, nil
}

// LoadOrCreateSecrets returns the persisted secrets, generating and writing
// any that are missing. created reports whether anything was generated.
func LoadOrCreateSecrets(dataDir string) (s Secrets, created bool, err error) {
	s, err = LoadSecrets(dataDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}
	if s.JWTSecret == "" {
		s.JWTSecret = randomString(32)
		created = true
	}
	if s.APIKey == "" {
		s.APIKey = "hk_" + randomString(24)
		created = true
	}
	for _, f := range []struct {
		v    *string
		make func() string
	}{
		{&s.TalkJSSecret, func() string { return randomString(24) }},
		{&s.CometChatUser, func() string { return "herald" }},
		{&s.CometChatPassword, func() string { return randomString(18) }},
		{&s.WebhookSecret, func() string { return "whsec_" + randomBase64(24) }},
	} {
		if *f.v == "" {
			*f.v = f.make()
			created = true
		}
	}
	if !created {
		return s, false, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return s, false, fmt.Errorf("create data dir: %w", err)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	tmp := filepath.Join(dataDir, secretsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return s, false, fmt.Errorf("write secrets: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dataDir, secretsFile)); err != nil {
		return s, false, fmt.Errorf("write secrets: %w", err)
	}
	return s, true, nil
}

func randomBase64(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
