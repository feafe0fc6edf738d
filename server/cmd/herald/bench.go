package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/heraldhq/herald/pkg/loadgen"
	"github.com/heraldhq/herald/pkg/token"
)

// runBench drives a running node: "herald bench idle|unicast|fanout".
func runBench(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("bench: scenario required: idle, unicast or fanout")
	}
	scenario, args := args[0], args[1:]
	fs := flag.NewFlagSet("bench "+scenario, flag.ContinueOnError)
	base := fs.String("server", envOr("HERALD_SERVER", "http://127.0.0.1:8080"), "node URL (loopback only)")
	creds := credentialFlags(fs, true, true)
	transport := fs.String("transport", "ws", "ws or sse")
	sessions := fs.Int("sessions", 1000, "live sessions to open (one user each)")
	pid := fs.Int("pid", 0, "server PID, to report its RSS growth per connection")
	messages := fs.Int("messages", 20000, "unicast: notifications to send")
	rate := fs.Float64("rate", 0, "unicast: notifications per second (0: as fast as possible)")
	workers := fs.Int("workers", 32, "unicast: concurrent API callers")
	rounds := fs.Int("rounds", 20, "fanout: rounds")
	timeout := fs.Duration("timeout", 5*time.Minute, "hard bound on the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := creds.resolve(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	key := []byte(*creds.jwtSecret)
	opts := loadgen.Options{
		BaseURL: *base, APIKey: *creds.apiKey, Transport: *transport, Sessions: *sessions,
		ServerPID: *pid, Timeout: *timeout,
		MintToken: func(user string) (string, error) {
			return token.Mint(key, token.Claims{Subject: user, SessionID: user, ExpiresAt: time.Now().Add(time.Hour)})
		},
		Progress: func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) },
	}
	var res any
	var err error
	switch scenario {
	case "idle":
		res, err = loadgen.Idle(ctx, opts)
	case "unicast":
		res, err = loadgen.Unicast(ctx, loadgen.UnicastOptions{Options: opts, Messages: *messages, Rate: *rate, Workers: *workers})
	case "fanout":
		res, err = loadgen.Fanout(ctx, loadgen.FanoutOptions{Options: opts, Rounds: *rounds})
	default:
		return fmt.Errorf("bench: unknown scenario %q", scenario)
	}
	if err != nil {
		return fmt.Errorf("bench %s: %w", scenario, err)
	}
	human, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintf(os.Stderr, "%s\n", human)
	line, _ := json.Marshal(res)
	_, err = fmt.Fprintf(out, "%s\n", line)
	return err
}
