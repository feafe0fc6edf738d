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
	if cfg.UsesRedis() {
		mode = "redis"
	}
	log.Info("herald listening", "addr", ln.Addr().String(), "mode", mode, "data_dir", cfg.DataDir)
	if generated {
		printFirstStart(cfg, ln.Addr())
	}
	if cfg.Demo {
		log.Warn("demo mode is on: /demo/token mints tokens for any user", "addr", ln.Addr().String())
		printDemoWarning(ln.Addr())
	}

	if cfg.PprofAddr != "" {
		startPprof(cfg.PprofAddr, log)
	}
	if cfg.Metrics && cfg.MetricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, srv.MetricsHandler(), log)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
		defer stopMetrics()
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
// directory, generating them on first start, and settles demo mode. A
// cluster shares its secrets through configuration, never through one
// node's disk.
//
// Demo mode mints tokens for anyone, so it is on only when asked for
// (--demo, HERALD_DEMO) or in true zero-config, where nothing that
// authenticates anyone was configured; an explicit false always wins.
// Zero-config demo mode listens on loopback unless HERALD_ADDR says
// otherwise, so a first try on a laptop is not a token mint on the LAN.
func resolveSecrets(cfg *config.Config) (generated bool, err error) {
	needSecret := cfg.JWTSecret == "" && cfg.JWKSURL == ""
	needKey := cfg.APIKey == ""
	zeroConfig := needSecret && needKey
	if !cfg.Given("demo") {
		cfg.Demo = zeroConfig
	}
	if zeroConfig && cfg.Demo && !cfg.Given("addr") {
		cfg.Addr = zeroConfigDemoAddr
	}
	if !needSecret && !needKey {
		return false, nil
	}
	if cfg.UsesRedis() {
		return false, errors.New("HERALD_JWT_SECRET (or HERALD_JWKS_URL) and HERALD_API_KEY must be set in Redis mode (HERALD_REDIS_URL, HERALD_REDIS_CLUSTER_ADDRS or HERALD_REDIS_SENTINEL_ADDRS): every node of a cluster needs the same ones")
	}
	sec, created, err := server.LoadOrCreateSecrets(cfg.DataDir)
	if err != nil {
		return false, err
	}
	if needSecret {
		cfg.JWTSecret = sec.JWTSecret
	}
	if needKey {
		cfg.APIKey = sec.APIKey
	}
	if !cfg.Demo {
		return created, nil
	}
	// The demo page's signed sample webhooks need provider credentials.
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

// zeroConfigDemoAddr is where zero-config demo mode listens when no
// address is given: loopback only.
const zeroConfigDemoAddr = "127.0.0.1:8080"

// baseURL is how a browser on this machine reaches the listener.
func baseURL(addr net.Addr) string {
	if tcp, ok := addr.(*net.TCPAddr); ok && (tcp.IP == nil || tcp.IP.IsUnspecified()) {
		return fmt.Sprintf("http://localhost:%d", tcp.Port)
	}
	return "http://" + addr.String()
}

func printFirstStart(cfg *config.Config, addr net.Addr) {
	base := baseURL(addr)
	fmt.Fprintf(os.Stderr, `
First start: generated credentials in %s/secrets.json
  API key:       %s
  Mint a token:  herald token --user alice --data-dir %s
  Stream:        curl -N "%s/v1/sse?token=$(herald token --user alice --data-dir %s)"
  Send:          herald send --server %s --data-dir %s --to alice --title Hello --body "It works"

`, cfg.DataDir, cfg.APIKey, cfg.DataDir, base, cfg.DataDir, base, cfg.DataDir)
}

// printDemoWarning says loudly, on every start in demo mode, what demo
// mode gives away and where the demo page is.
func printDemoWarning(addr net.Addr) {
	exposed := "only this machine can reach it (loopback)"
	if tcp, ok := addr.(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		exposed = "ANYONE WHO CAN REACH THIS PORT can mint a token for any user and send notifications"
	}
	fmt.Fprintf(os.Stderr, `
*** DEMO MODE: POST /demo/token mints a token for any user; %s.
*** Demo page: %s/
*** Turn it off with --demo=false (HERALD_DEMO=false); it is off whenever a JWT secret or an API key is configured.

`, exposed, baseURL(addr))
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
