package redistest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/redistest"
)

func TestStartServesOnLoopback(t *testing.T) {
	srv := redistest.Start(t)
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") || srv.URL() != "redis://"+srv.Addr()+"/0" {
		t.Fatalf("addr %q url %q", srv.Addr(), srv.URL())
	}
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping via URL: %v", err)
	}
}

func TestRestartWithoutPersistenceLosesData(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c := srv.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	srv.Restart()
	if srv.Addr() != addr {
		t.Fatalf("restart moved the server from %s to %s", addr, srv.Addr())
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("after restart without persistence: %v", err)
	}
}

func TestRestartWithAppendOnlyKeepsData(t *testing.T) {
	srv := redistest.Start(t, redistest.WithAppendOnly(), redistest.WithDir(t.TempDir()))
	ctx := context.Background()
	c := srv.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after restart with AOF: %q %v", v, err)
	}
}

func TestKillStopsTheServer(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	srv.Kill()
	srv.Kill() // idempotent
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping succeeded after Kill")
	}
}
