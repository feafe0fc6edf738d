// Package config holds Herald's configuration: one struct, its defaults in
// one place, and loading with the precedence flag > HERALD_* environment >
// herald.yaml > default.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config is everything a node can be told. Environment names are
// HERALD_ + the upper snake of the setting's name; flags are its kebab
// case; herald.yaml keys its snake case.
type Config struct {
	Addr           string
	DataDir        string
	RedisURL       string
	RedisSharded   bool
	NodeID         string
	JWTSecret      string
	JWKSURL        string
	APIKey         string
	AllowedOrigins []string
	AckTimeout     time.Duration

	TalkJSSecret      string
	NotiflySecret     string
	AmitySecret       string
	CometChatUser     string
	CometChatPassword string
	WebhookSecret     string

	VAPIDPublicKey   string
	VAPIDPrivateKey  string
	VAPIDSubject     string
	FCMCredentials   string
	FCMEndpoint      string
	APNsKeyFile      string
	APNsKeyID        string
	APNsTeamID       string
	APNsTopic        string
	APNsEnv          string
	APNsHost         string
	PushAllowPrivate []string

	HistoryMaxCount int
	HistoryMaxAge   time.Duration
	ShutdownTimeout time.Duration
	WSReadLimit     int64
	WriteTimeout    time.Duration
	PingInterval    time.Duration
	SessionQueue    int
	PresenceTTL     time.Duration
	LogLevel        string
	LogFormat       string
	Demo            bool
}

// Default returns the configuration of a zero-config node.
func Default() *Config {
	return &Config{
		Addr:            ":8080",
		DataDir:         "./data",
		AckTimeout:      5 * time.Second,
		APNsEnv:         "production",
		HistoryMaxCount: 1000,
		HistoryMaxAge:   7 * 24 * time.Hour,
		ShutdownTimeout: 15 * time.Second,
		WSReadLimit:     4096,
		WriteTimeout:    10 * time.Second,
		PingInterval:    25 * time.Second,
		SessionQueue:    256,
		PresenceTTL:     15 * time.Second,
		LogLevel:        "info",
		LogFormat:       "text",
	}
}

// Validate reports every problem at once, each naming its variable.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, msg string) { errs = append(errs, fmt.Errorf("HERALD_%s: %s", name, msg)) }
	if c.Addr == "" {
		bad("ADDR", "must not be empty")
	}
	if c.RedisURL == "" && c.DataDir == "" {
		bad("DATA_DIR", "must not be empty in embedded mode")
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") && !strings.HasPrefix(c.RedisURL, "unix://") {
		bad("REDIS_URL", "must start with redis://, rediss:// or unix://")
	}
	if c.JWTSecret == "" && c.JWKSURL == "" {
		bad("JWT_SECRET", "a JWT secret or HERALD_JWKS_URL is required")
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 16 {
		bad("JWT_SECRET", "must be at least 16 characters")
	}
	if c.JWKSURL != "" && !strings.HasPrefix(c.JWKSURL, "https://") && !strings.HasPrefix(c.JWKSURL, "http://") {
		bad("JWKS_URL", "must be an http(s) URL")
	}
	if c.APIKey == "" {
		bad("API_KEY", "is required")
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			bad("ALLOWED_ORIGINS", fmt.Sprintf("%q is not an origin (scheme://host[:port]) or *", o))
		}
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"ACK_TIMEOUT", c.AckTimeout}, {"HISTORY_MAX_AGE", c.HistoryMaxAge}, {"SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
		{"WRITE_TIMEOUT", c.WriteTimeout}, {"PING_INTERVAL", c.PingInterval}, {"PRESENCE_TTL", c.PresenceTTL},
	}
	for _, p := range positive {
		if p.d <= 0 {
			bad(p.name, "must be positive")
		}
	}
	if c.HistoryMaxCount <= 0 {
		bad("HISTORY_MAX_COUNT", "must be positive")
	}
	if c.SessionQueue <= 0 {
		bad("SESSION_QUEUE", "must be positive")
	}
	if c.WSReadLimit < 128 {
		bad("WS_READ_LIMIT", "must be at least 128 bytes")
	}
	switch c.APNsEnv {
	case "production", "sandbox", "development":
	default:
		bad("APNS_ENV", "must be production or sandbox")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("LOG_LEVEL", "must be debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("LOG_FORMAT", "must be text or json")
	}
	return errors.Join(errs...)
}

// LogValue prints the configuration with secrets masked.
func (c *Config) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, s := range settings(c) {
		v := s.get()
		if s.secret && v != "" {
			v = "REDACTED"
		}
		attrs = append(attrs, slog.String(s.name, v))
	}
	return slog.GroupValue(attrs...)
}
