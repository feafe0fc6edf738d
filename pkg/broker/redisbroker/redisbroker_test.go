package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/redistest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// factory gives brokers on one redis-server. Brokers made within one test
// share a key prefix (they are nodes of one cluster); different tests get
// different prefixes, so the suite's subtests do not see each other.
func factory(srv *redistest.Server, opts redisbroker.Options) brokertest.Factory {
	return func(t *testing.T, h broker.Handler, r broker.Retention) broker.Broker {
		o := opts
		o.Retention = r
		o.Prefix = testPrefix(t)
		o.Logger = quiet
		return newBroker(t, srv, h, o)
	}
}

func testPrefix(t testing.TB) string {
	h := fnv.New64a()
	_, _ = io.WriteString(h, t.Name())
	return fmt.Sprintf("t%x:", h.Sum64())
}

func newBroker(t testing.TB, srv *redistest.Server, h broker.Handler, opts redisbroker.Options) *redisbroker.Broker {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	// Herald runs the broker over an autopipeliner; so do the tests.
	ap, err := c.AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	// The handler registers after New, as the hub does.
	b, err := redisbroker.New(ap, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	b.RegisterHandler(h)
	t.Cleanup(func() {
		_ = b.Close()
		_ = ap.Close()
		_ = c.Close()
	})
	return b
}

func TestConformance(t *testing.T) {
	brokertest.Run(t, factory(redistest.Start(t), redisbroker.Options{}))
}

func TestClusterConformance(t *testing.T) {
	brokertest.RunCluster(t, factory(redistest.Start(t), redisbroker.Options{}))
}

// TestShardedConformance runs the suites with SPUBLISH/SSUBSCRIBE, which a
// standalone Redis 7 serves like a one-shard cluster.
func TestShardedConformance(t *testing.T) {
	f := factory(redistest.Start(t), redisbroker.Options{Sharded: true})
	brokertest.Run(t, f)
	brokertest.RunCluster(t, f)
}

func TestNewRejectsBadOptions(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := redisbroker.New(c, func(*notification.Event) {}, redisbroker.Options{Prefix: "a{b}:"}); err == nil {
		t.Error("prefix with braces accepted")
	}
	if _, err := redisbroker.New(nil, nil, redisbroker.Options{}); err == nil {
		t.Error("nil client accepted")
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cc.Close()
	if _, err := redisbroker.New(cc, func(*notification.Event) {}, redisbroker.Options{Sharded: true}); err == nil {
		t.Error("sharded pub/sub over a cluster client accepted")
	}
}

func TestClosedBrokerRefusesWork(t *testing.T) {
	srv := redistest.Start(t)
	b := newBroker(t, srv, func(*notification.Event) {}, redisbroker.Options{})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	ctx := context.Background()
	if err := b.Publish(ctx, []*notification.Event{brokertest.Event("a", "x")}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("publish: %v", err)
	}
	if err := b.Subscribe(ctx, "a"); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("subscribe: %v", err)
	}
	if err := b.Ready(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("ready: %v", err)
	}
}

// TestPublishFanOutIsOnePipeline: a batch for many users costs one
// pipeline, not a round trip per user.
func TestPublishFanOutIsOnePipeline(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	hook := &countingHook{}
	c.AddHook(hook)
	b, err := redisbroker.New(c, func(*notification.Event) {}, redisbroker.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	// The first publish also loads the script.
	if err := b.Publish(ctx, []*notification.Event{brokertest.Event("warm", "up")}); err != nil {
		t.Fatal(err)
	}
	const users = 10000
	events := make([]*notification.Event, users)
	for i := range events {
		events[i] = brokertest.Event(fmt.Sprint("user", i), "hello")
	}
	before := hook.snapshot()
	if err := b.Publish(ctx, events); err != nil {
		t.Fatal(err)
	}
	after := hook.snapshot()
	if pipes, cmds := after.pipelines-before.pipelines, after.commands-before.commands; pipes != 1 || cmds != 0 {
		t.Fatalf("fan-out to %d users took %d pipelines and %d single commands", users, pipes, cmds)
	}
	for i, ev := range events {
		if ev.Cursor.Seq != 1 || ev.Cursor.Epoch == "" {
			t.Fatalf("event %d cursor %v", i, ev.Cursor)
		}
	}
}

type counts struct{ pipelines, commands int }

type countingHook struct {
	mu sync.Mutex
	n  counts
}

func (h *countingHook) snapshot() counts {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.n.commands++
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.n.pipelines++
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	br := newBroker(b, srv, func(*notification.Event) {}, redisbroker.Options{})
	ctx := context.Background()
	b.Run("single", func(b *testing.B) {
		ev := brokertest.Event("u", "t")
		batch := []*notification.Event{ev}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := br.Publish(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch1000", func(b *testing.B) {
		evs := make([]*notification.Event, 1000)
		for j := range evs {
			evs[j] = brokertest.Event(fmt.Sprint("u", j), "t")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := br.Publish(ctx, evs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
	})
}

// TestPublishAfterScriptFlush: Redis forgetting its scripts (a restart, SCRIPT
// FLUSH) costs a reload, not a failed publish — also for calls that share a
// pipeline.
func TestPublishAfterScriptFlush(t *testing.T) {
	srv := redistest.Start(t)
	b := newBroker(t, srv, func(*notification.Event) {}, redisbroker.Options{Prefix: testPrefix(t)})
	ctx := context.Background()
	if err := b.Publish(ctx, []*notification.Event{brokertest.Event("a", "0")}); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := brokertest.Event(fmt.Sprintf("u%d", i), "1")
			if err := b.Publish(ctx, []*notification.Event{ev}); err != nil || ev.Cursor.Seq != 1 {
				errs <- fmt.Errorf("publish %d after flush: cursor %v, %v", i, ev.Cursor, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCanceledPublishIsNotApplied: a call whose context ended before its
// turn is neither appended nor published.
func TestCanceledPublishIsNotApplied(t *testing.T) {
	srv := redistest.Start(t)
	b := newBroker(t, srv, func(*notification.Event) {}, redisbroker.Options{Prefix: testPrefix(t)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ev := brokertest.Event("a", "1")
	if err := b.Publish(ctx, []*notification.Event{ev}); !errors.Is(err, context.Canceled) || !ev.Cursor.IsZero() {
		t.Fatalf("canceled publish: %v, cursor %v", err, ev.Cursor)
	}
	evs, head, err := b.History(context.Background(), "a", notification.Cursor{}, 10)
	if err != nil || len(evs) != 0 || !head.IsZero() {
		t.Fatalf("history after a canceled publish: %d events, head %v, %v", len(evs), head, err)
	}
}
