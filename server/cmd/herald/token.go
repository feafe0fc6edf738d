package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/heraldhq/herald/pkg/token"
)

// runToken mints an HS256 user token with the configured or persisted
// secret. It is a development aid: production apps mint tokens themselves.
func runToken(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	user := fs.String("user", "", "user id (the token's sub claim)")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the token")
	session := fs.String("session", "", "session id (sid claim); random when empty")
	creds := credentialFlags(fs, false, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("token: --user is required")
	}
	if err := creds.resolve(); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	sid := *session
	if sid == "" {
		sid = token.NewSessionID()
	}
	raw, err := token.Mint([]byte(*creds.jwtSecret), token.Claims{Subject: *user, SessionID: sid, ExpiresAt: time.Now().Add(*ttl)})
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(out, raw)
	return err
}
