package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/heraldhq/herald/server"
)

// credentials are the secrets the development commands need: from flags,
// else the environment, else the ones "herald serve" generated in the data
// directory.
type credentials struct {
	apiKey, jwtSecret, dataDir *string
}

func credentialFlags(fs *flag.FlagSet, apiKey, jwtSecret bool) credentials {
	var c credentials
	if apiKey {
		c.apiKey = fs.String("api-key", os.Getenv("HERALD_API_KEY"), "server API key (default: $HERALD_API_KEY, else the data dir's)")
	}
	if jwtSecret {
		c.jwtSecret = fs.String("jwt-secret", os.Getenv("HERALD_JWT_SECRET"), "HS256 secret for user tokens (default: $HERALD_JWT_SECRET, else the data dir's)")
	}
	c.dataDir = fs.String("data-dir", envOr("HERALD_DATA_DIR", "./data"), "data directory holding generated secrets")
	return c
}

// resolve fills what flags and environment left empty from the data dir.
func (c credentials) resolve() error {
	missing := (c.apiKey != nil && *c.apiKey == "") || (c.jwtSecret != nil && *c.jwtSecret == "")
	if !missing {
		return nil
	}
	sec, err := server.LoadSecrets(*c.dataDir)
	if err != nil {
		return fmt.Errorf("no credentials given and none generated in %s (start \"herald serve\" once, or pass them): %w", *c.dataDir, err)
	}
	if c.apiKey != nil && *c.apiKey == "" {
		*c.apiKey = sec.APIKey
	}
	if c.jwtSecret != nil && *c.jwtSecret == "" {
		*c.jwtSecret = sec.JWTSecret
	}
	return nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}
