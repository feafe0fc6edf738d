package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/heraldhq/herald/pkg/token"
	"github.com/heraldhq/herald/server"
)

// runToken mints an HS256 user token with the configured or persisted
// secret. It is a development aid: production apps mint tokens themselves.
func runToken(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	user := fs.String("user", "", "user id (the token's sub claim)")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the token")
	session := fs.String("session", "", "session id (sid claim); random when empty")
	secret := fs.String("jwt-secret", os.Getenv("HERALD_JWT_SECRET"), "HS256 secret (default: $HERALD_JWT_SECRET, else the data dir's)")
	dataDir := fs.String("data-dir", envOr("HERALD_DATA_DIR", "./data"), "data directory holding generated secrets")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("token: --user is required")
	}
	key := *secret
	if key == "" {
		sec, err := server.LoadSecrets(*dataDir)
		if err != nil {
			return fmt.Errorf("token: no --jwt-secret and no generated secret (start \"herald serve\" once first): %w", err)
		}
		key = sec.JWTSecret
	}
	sid := *session
	if sid == "" {
		sid = token.NewSessionID()
	}
	raw, err := token.Mint([]byte(key), token.Claims{Subject: *user, SessionID: sid, ExpiresAt: time.Now().Add(*ttl)})
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(out, raw)
	return err
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}
