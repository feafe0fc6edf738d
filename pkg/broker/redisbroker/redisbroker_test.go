package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/broker/brokertest"
	"github.com/heraldhq/herald/pkg/broker/redisbroker"
	"github.com/heraldhq/herald/pkg/notification"
	"github.com/heraldhq/herald/pkg/redistest"
)

// factory gives brokers on one redis-server per test.
func factory(t *testing.T) brokertest.Factory {
	srv := redistest.Start(t)
	return func(t *testing.T, h broker.Handler, r broker.Retention) broker.Broker {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		b, err := redisbroker.New(c, h, redisbroker.Options{Retention: r})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); c.Close() })
		return b
	}
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Run(t, func(t *testing.T, h broker.Handler, r broker.Retention) broker.Broker {
		// Each subtest gets its own key space on the shared server.
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		b, err := redisbroker.New(c, h, redisbroker.Options{Retention: r, Prefix: fmt.Sprintf("t%d:", time.Now().UnixNano())})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); c.Close() })
		return b
	})
}

func TestClusterConformance(t *testing.T) { brokertest.RunCluster(t, factory(t)) }

// TestRedisLosingDataStartsANewEpoch: a Redis restart without persistence
// loses the histories; old cursors must be answered with ErrReset, not
// resolved against the new history.
func TestRedisLosingDataStartsANewEpoch(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	sink := &brokertest.Sink{}
	b, err := redisbroker.New(c, sink.Handle, redisbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	old := brokertest.Event("a", "before")
	if err := b.Publish(ctx, []*notification.Event{old, brokertest.Event("a", "before2")}); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	var fresh *notification.Event
	deadline := time.Now().Add(10 * time.Second)
	for {
		fresh = brokertest.Event("a", "after")
		if err := b.Publish(ctx, []*notification.Event{fresh}); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("publish after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fresh.Cursor.Epoch == old.Cursor.Epoch || fresh.Cursor.Seq != 1 {
		t.Fatalf("after data loss: cursor %v, old %v", fresh.Cursor, old.Cursor)
	}
	if _, _, err := b.History(ctx, "a", old.Cursor, 10); !errors.Is(err, broker.ErrReset) {
		t.Fatalf("old cursor: %v", err)
	}
}

// TestGapIsFilledFromStream: an event appended to the stream without being
// published (as when pub/sub drops it) is delivered before the next one.
func TestGapIsFilledFromStream(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	sink := &brokertest.Sink{}
	b, err := redisbroker.New(c, sink.Handle, redisbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	first := brokertest.Event("a", "1")
	if err := b.Publish(ctx, []*notification.Event{first}); err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(t, "a", 1)
	// Append seq 2 behind pub/sub's back, the way a lost message looks.
	lost := brokertest.Event("a", "2")
	if err := c.HIncrBy(ctx, "herald:{a}:m", "seq", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: "herald:{a}:h", ID: "0-2", Values: []any{"e", lost.MarshalEnvelope()}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, []*notification.Event{brokertest.Event("a", "3")}); err != nil {
		t.Fatal(err)
	}
	got := sink.WaitFor(t, "a", 3)
	if fmt.Sprint(got) != "[1:1 2:2 3:3]" {
		t.Fatalf("got %v", got)
	}
}

func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	br, err := redisbroker.New(c, func(*notification.Event) {}, redisbroker.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	ctx := context.Background()
	b.Run("single", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := br.Publish(ctx, []*notification.Event{brokertest.Event("u", "t")}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("batch1000", func(b *testing.B) {
		evs := make([]*notification.Event, 1000)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			for j := range evs {
				evs[j] = brokertest.Event(fmt.Sprint("u", j), "t")
			}
			if err := br.Publish(ctx, evs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestShardedConformance runs the suite with SPUBLISH/SSUBSCRIBE, which a
// standalone Redis 7 serves like a one-shard cluster.
func TestShardedConformance(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Run(t, func(t *testing.T, h broker.Handler, r broker.Retention) broker.Broker {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		b, err := redisbroker.New(c, h, redisbroker.Options{Retention: r, Sharded: true, Prefix: fmt.Sprintf("s%d:", time.Now().UnixNano())})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); c.Close() })
		return b
	})
}
