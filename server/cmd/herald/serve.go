package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/heraldhq/herald/server"
	"github.com/heraldhq/herald/server/config"
)

func runServe(ctx context.Context, args []string) error {
	cfg, err := config.Load(args, os.LookupEnv)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	generated, err := resolveSecrets(cfg)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	mode := "embedded"
	if cfg.RedisURL != "" {
		mode = "redis"
	}
	log.Info("herald listening", "addr", ln.Addr().String(), "mode", mode, "data_dir", cfg.DataDir)
	if generated {
		printFirstStart(cfg, ln.Addr())
	}

	if cfg.PprofAddr != "" {
		startPprof(cfg.PprofAddr, log)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		_ = srv.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	stop()
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// resolveSecrets fills a missing JWT secret and API key from the data
// directory, generating them on first start. A cluster shares its secrets
// through configuration, never through one node's disk.
func resolveSecrets(cfg *config.Config) (generated bool, err error) {
	needSecret := cfg.JWTSecret == "" && cfg.JWKSURL == ""
	if !needSecret && cfg.APIKey != "" {
		return false, nil
	}
	if cfg.RedisURL != "" {
		return false, errors.New("HERALD_JWT_SECRET (or HERALD_JWKS_URL) and HERALD_API_KEY must be set when HERALD_REDIS_URL is: every node of a cluster needs the same ones")
	}
	sec, created, err := server.LoadOrCreateSecrets(cfg.DataDir)
	if err != nil {
		return false, err
	}
	if needSecret {
		cfg.JWTSecret = sec.JWTSecret
	}
	if cfg.APIKey == "" {
		cfg.APIKey = sec.APIKey
	}
	// Zero-config mode: the demo page and its signed sample webhooks work
	// out of the box.
	cfg.Demo = true
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&cfg.TalkJSSecret, sec.TalkJSSecret)
	if cfg.CometChatUser == "" && cfg.CometChatPassword == "" {
		cfg.CometChatUser, cfg.CometChatPassword = sec.CometChatUser, sec.CometChatPassword
	}
	fill(&cfg.WebhookSecret, sec.WebhookSecret)
	return created, nil
}

func printFirstStart(cfg *config.Config, addr net.Addr) {
	base := "http://" + addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok && (tcp.IP.IsUnspecified() || tcp.IP == nil) {
		base = fmt.Sprintf("http://localhost:%d", tcp.Port)
	}
	fmt.Fprintf(os.Stderr, `
First start: generated credentials in %s/secrets.json
  API key:       %s
  Mint a token:  herald token --user alice --data-dir %s
  Stream:        curl -N "%s/v1/sse?token=$(herald token --user alice --data-dir %s)"
  Send:          herald send --server %s --data-dir %s --to alice --title Hello --body "It works"

`, cfg.DataDir, cfg.APIKey, cfg.DataDir, base, cfg.DataDir, base, cfg.DataDir)
}

func newLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if strings.EqualFold(cfg.LogFormat, "json") {
		h = slog.NewJSONHandler(os.Stderr, opts)
	} else {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l
}
