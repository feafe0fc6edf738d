package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/pkg/token"
	"github.com/heraldhq/herald/server"
	"github.com/heraldhq/herald/server/cmd/herald/loadgen"
)

// runBench drives a running node: "herald bench idle|unicast|fanout|read|ingest";
// with --peer, a Centrifugo server instead, for comparison.
func runBench(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("bench: scenario required: idle, unicast, fanout, read or ingest")
	}
	scenario, args := args[0], args[1:]
	fs := flag.NewFlagSet("bench "+scenario, flag.ContinueOnError)
	base := fs.String("server", envOr("HERALD_SERVER", "http://127.0.0.1:8080"), "node URL (loopback only)")
	sendTo := fs.String("send-server", "", "node the API calls and webhooks go to (default --server): measure across a cluster")
	creds := credentialFlags(fs, true, true)
	transport := fs.String("transport", "ws", "ws or sse")
	peer := fs.String("peer", "", "drive another server the same way, for comparison: centrifugo (v6; idle, unicast, fanout over ws;\n"+
		"--api-key is its http_api.key, --jwt-secret its client.token.hmac_secret_key; it needs a channel namespace \"user\",\n"+
		"and http_api.error_mode \"transport\" for refused sends to count as errors)")
	sessions := fs.Int("sessions", 1000, "live sessions to open (one user each)")
	pid := fs.Int("pid", 0, "server PID: idle reports its RSS growth per connection, the others its CPU time per operation")
	var nodePIDs, redisPIDs pidList
	fs.Var(&nodePIDs, "node-pid", "the cluster's other node PIDs, comma-separated or repeated: their CPU is added to --pid's")
	const redisUsage = "Redis PIDs, comma-separated or repeated (every process of a Cluster): unicast, fanout and ingest\n" +
		"report their summed CPU time per operation (cpu.redis_us_per_op)"
	fs.Var(&redisPIDs, "redis-pid", redisUsage)
	fs.Var(&redisPIDs, "redis-pids", "the same as --redis-pid")
	messages := fs.Int("messages", 20000, "unicast: notifications to send")
	rate := fs.Float64("rate", 0, "unicast: notifications per second (0: as fast as possible)")
	workers := fs.Int("workers", 32, "unicast: concurrent API callers")
	rounds := fs.Int("rounds", 20, "fanout: rounds")
	reads := fs.Int("reads", 5000, "read: notifications to mark read, one API call each")
	timeout := fs.Duration("timeout", 5*time.Minute, "hard bound on the run")
	provider := fs.String("provider", "talkjs", "ingest: talkjs or herald (Standard Webhooks)")
	secret := fs.String("secret", "", "ingest: the provider's signing secret (default: $HERALD_TALKJS_SECRET / $HERALD_WEBHOOK_SECRET, else the data dir's)")
	users := fs.Int("users", 0, "ingest: distinct recipients (default 1000)")
	cpuProfile := fs.String("cpuprofile", "", "write the load tool's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if scenario == "ingest" {
		if *peer != "" {
			return fmt.Errorf("bench ingest: --peer %s: ingest drives Herald's own webhooks; use idle, unicast or fanout", *peer)
		}
		return benchIngest(ctx, out, loadgen.IngestOptions{
			Options: loadgen.Options{BaseURL: *base, SendURL: *sendTo, Users: *users, ServerPID: *pid, NodePIDs: nodePIDs, RedisPIDs: redisPIDs, Timeout: *timeout,
				Progress: func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }},
			Provider: *provider, Secret: *secret, Messages: *messages, Rate: *rate, Workers: *workers,
		}, *creds.dataDir)
	}
	mint, err := benchTokens(*peer, creds)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	opts := loadgen.Options{
		BaseURL: *base, SendURL: *sendTo, APIKey: *creds.apiKey, Transport: *transport, Sessions: *sessions,
		ServerPID: *pid, NodePIDs: nodePIDs, RedisPIDs: redisPIDs, Timeout: *timeout, Peer: *peer, MintToken: mint,
		Progress: func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) },
	}
	var res any
	switch scenario {
	case "idle":
		res, err = loadgen.Idle(ctx, opts)
	case "unicast":
		res, err = loadgen.Unicast(ctx, loadgen.UnicastOptions{Options: opts, Messages: *messages, Rate: *rate, Workers: *workers})
	case "fanout":
		res, err = loadgen.Fanout(ctx, loadgen.FanoutOptions{Options: opts, Rounds: *rounds})
	case "read":
		res, err = loadgen.Read(ctx, loadgen.ReadOptions{Options: opts, Reads: *reads, Workers: *workers})
	default:
		return fmt.Errorf("bench: unknown scenario %q", scenario)
	}
	if err != nil {
		return fmt.Errorf("bench %s: %w", scenario, err)
	}
	return report(out, res)
}

// benchTokens returns the session token minter for the server driven. A
// peer's secrets must be given: the data dir holds Herald's.
func benchTokens(peer string, creds credentials) (func(user string) (string, error), error) {
	switch peer {
	case "":
		if err := creds.resolve(); err != nil {
			return nil, err
		}
		key := []byte(*creds.jwtSecret)
		return func(user string) (string, error) {
			return token.Mint(key, token.Claims{Subject: user, SessionID: user, ExpiresAt: time.Now().Add(time.Hour)})
		}, nil
	case loadgen.PeerCentrifugo:
		if *creds.apiKey == "" || *creds.jwtSecret == "" {
			return nil, errors.New("--peer centrifugo needs --api-key (its http_api.key) and --jwt-secret (its client.token.hmac_secret_key)")
		}
		key := []byte(*creds.jwtSecret)
		return func(user string) (string, error) { return loadgen.CentrifugoToken(key, user, time.Hour) }, nil
	}
	return nil, fmt.Errorf("--peer %q: want %s or none (Herald)", peer, loadgen.PeerCentrifugo)
}

// benchIngest runs the ingest scenario; the signing secret comes from the
// flag, the environment, or the data dir a zero-config node wrote.
func benchIngest(ctx context.Context, out io.Writer, o loadgen.IngestOptions, dataDir string) error {
	if o.Secret == "" {
		env := map[string]string{"talkjs": "HERALD_TALKJS_SECRET", "herald": "HERALD_WEBHOOK_SECRET"}[o.Provider]
		o.Secret = os.Getenv(env)
	}
	if o.Secret == "" {
		sec, err := server.LoadSecrets(dataDir)
		if err != nil {
			return fmt.Errorf("bench ingest: no --secret and none generated in %s: %w", dataDir, err)
		}
		o.Secret = map[string]string{"talkjs": sec.TalkJSSecret, "herald": sec.WebhookSecret}[o.Provider]
	}
	res, err := loadgen.Ingest(ctx, o)
	if err != nil {
		return fmt.Errorf("bench ingest: %w", err)
	}
	return report(out, res)
}

// report prints a human summary on stderr and one JSON line on out.
func report(out io.Writer, res any) error {
	human, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintf(os.Stderr, "%s\n", human)
	line, _ := json.Marshal(res)
	_, err := fmt.Fprintf(out, "%s\n", line)
	return err
}

// pidList is a flag of process ids: "1,2,3", or the flag repeated.
type pidList []int

func (l *pidList) String() string {
	s := make([]string, len(*l))
	for i, pid := range *l {
		s[i] = strconv.Itoa(pid)
	}
	return strings.Join(s, ",")
}

func (l *pidList) Set(v string) error {
	pids, err := loadgen.ParsePIDs(v)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if slices.Contains(*l, pid) {
			return fmt.Errorf("pid %d given twice", pid)
		}
	}
	*l = append(*l, pids...)
	return nil
}
